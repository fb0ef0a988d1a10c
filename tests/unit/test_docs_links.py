"""Every relative link in the repository's Markdown resolves: the file exists and, when the link
names an anchor, the target has a heading with that anchor as GitHub renders it. Docs are moved
and sections renamed; a reader following a link must never land on nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"(?<!\!)\[(?:[^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# A bare mention of a Markdown file in prose (`docs/operator.md`, "see security.md").
MENTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b")


@dataclass(frozen=True)
class Link:
    """A link as written in ``source`` at ``line``."""

    source: Path
    line: int
    target: str


def markdown_files(root: Path) -> list[Path]:
    """The repository's Markdown, without hidden directories (.venv, .git, caches)."""
    return sorted(
        p
        for p in root.rglob("*.md")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def prose_lines(text: str, *, inline_code: bool = False) -> Iterator[tuple[int, str]]:
    """Numbered lines outside fenced code blocks, inline code removed unless asked for."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line if inline_code else INLINE_CODE.sub("", line)


def links(source: Path) -> list[Link]:
    """Relative links of ``source`` (links with a scheme, such as https: or mailto:, left out)."""
    found = []
    for number, line in prose_lines(source.read_text()):
        for match in LINK.finditer(line):
            target = match.group(1)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                found.append(Link(source, number, target))
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped, spaces to
    hyphens (before the numbering of repeats)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown document, repeats numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    result = set()
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken(link: Link) -> str | None:
    """Why ``link`` leads nowhere, or None when it resolves."""
    path_part, _, anchor = link.target.partition("#")
    target = (link.source.parent / path_part).resolve() if path_part else link.source
    if not target.exists():
        return f"no file {path_part}"
    if anchor and target.suffix == ".md" and anchor not in anchors(target.read_text()):
        return f"no heading #{anchor} in {path_part or 'this file'}"
    return None


def dangling_mentions(source: Path) -> list[str]:
    """Markdown files named in prose that exist neither beside ``source`` nor from the
    repository's root."""
    missing = []
    for number, line in prose_lines(source.read_text(), inline_code=True):
        for match in MENTION.finditer(LINK.sub("", line)):
            name = match.group(1)
            if not (source.parent / name).exists() and not (REPO / name).exists():
                missing.append(f"{number}: {name}")
    return missing


def docs_named_in(text: str) -> set[str]:
    """The ``docs/NAME.md`` files a source file's comments and strings name."""
    return set(re.findall(r"(?<![\w/.-])(docs/[\w-]+\.md)\b", text))


DOCS = markdown_files(REPO)
CODE_ROOTS = ("bridge-image", "operator", "tests", "scripts", "helm", "crds", "examples", "bench")
CODE_SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".tpl", ".txt", ".js", ".html", ".toml"}


def test_the_docs_are_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in DOCS}
    assert {"README.md", "CHANGES.md", "docs/architecture.md", "docs/glossary.md"} <= names


@pytest.mark.parametrize("source", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(source: Path) -> None:
    problems = [
        f"{link.line}: {link.target}: {why}" for link in links(source) if (why := broken(link))
    ]
    assert problems == []


@pytest.mark.parametrize("source", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_markdown_file_named_exists(source: Path) -> None:
    assert dangling_mentions(source) == []


def test_every_doc_the_code_names_exists() -> None:
    """Comments and messages that send a reader to a doc send them somewhere."""
    named = {
        f"{path.relative_to(REPO)}: {doc}"
        for root in CODE_ROOTS
        for path in (REPO / root).rglob("*")
        if path.suffix in CODE_SUFFIXES and path.is_file() and path != Path(__file__)
        for doc in docs_named_in(path.read_text(errors="replace"))
        if not (REPO / doc).exists()
    }
    assert named == set()


def test_the_checker_sees_what_it_must(tmp_path: Path) -> None:
    """The check itself: a missing file, a missing anchor, a repeated heading, code left out."""
    (tmp_path / "b.md").write_text("# Set-up and `tests` (contract)\n## Again\n## Again\n")
    source = tmp_path / "a.md"
    source.write_text(
        "[ok](b.md#set-up-and-tests-contract) [two](b.md#again-1) [web](https://x.example/y.md)\n"
        "[gone](c.md) [no anchor](b.md#nowhere) ![picture](img.png)\n"
        "```\n[in code](missing.md)\n```\n`[inline](missing.md)`\n"
    )
    found = {link.target: broken(link) for link in links(source)}
    assert found == {
        "b.md#set-up-and-tests-contract": None,
        "b.md#again-1": None,
        "c.md": "no file c.md",
        "b.md#nowhere": "no heading #nowhere in b.md",
    }
    source.write_text("See b.md and docs/gone.md, and `gone.md`.\n```\nfenced.md\n```\n")
    assert dangling_mentions(source) == ["1: docs/gone.md", "1: gone.md"]
    assert docs_named_in("# see docs/spec.md and mydocs/x.md") == {"docs/spec.md"}
