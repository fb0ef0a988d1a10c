#!/usr/bin/env python3
"""Write the files generated from the code's single sources, or check that they are current.

Each generated part lives in a file between two marker lines, so the hand-written text around
it stays as it is:
- docs/operator.md, the settings table: from the fields of ``siprtmp_operator.settings.Settings``.

Usage: .venv/bin/python scripts/generate.py [--check]
    --check   write nothing; exit 1 naming each stale file (the unit tier runs this).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from siprtmp_operator.settings import settings_table

REPO = Path(__file__).resolve().parents[1]
#: file → (marker name, the generator of the text between its markers)
GENERATED: dict[Path, tuple[str, Callable[[], str]]] = {
    REPO / "docs" / "operator.md": ("settings", settings_table),
}


def markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- generated: {name} (scripts/generate.py; edit the source, not this) -->\n",
        f"<!-- end generated: {name} -->\n",
    )


def regenerated(text: str, name: str, body: str) -> str:
    """``text`` with what stands between ``name``'s markers replaced by ``body``."""
    begin, end = markers(name)
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise SystemExit(f"generate: the markers for {name!r} are missing")
    return f"{head}{begin}{body}{end}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    check = parser.parse_args().check
    stale = []
    for path, (name, generate) in GENERATED.items():
        text = path.read_text()
        wanted = regenerated(text, name, generate())
        if wanted != text:
            stale.append(path.relative_to(REPO))
            if not check:
                path.write_text(wanted)
    if check and stale:
        names = ", ".join(map(str, stale))
        print(f"generate: stale: {names} (run scripts/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
