"""scripts/generate.py: the files written from the code's single sources are current, and a
generated file edited by hand (or left behind by a changed source) is found and rewritten."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "generate.py"
CRD_COPY = Path("helm") / "crds" / "siprtmpbridges.siprtmp.io.yaml"
SPEC_DOC = Path("docs") / "spec.md"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def script() -> ModuleType:
    loaded = importlib.util.spec_from_file_location("generate", SCRIPT)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def test_the_generated_files_are_current() -> None:
    """The CRD and its chart copy, docs/spec.md's field tables, docs/operator.md's settings."""
    checked = generate("--check")
    assert checked.returncode == 0, checked.stderr


def test_a_stale_file_is_named_and_rewritten_and_the_prose_around_it_kept(tmp_path: Path) -> None:
    module = script()
    generated = [*module.GENERATED_FILES, *module.GENERATED]
    assert {CRD_COPY, SPEC_DOC} <= set(generated)
    for path in generated:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    assert generate("--check", "--root", str(tmp_path)).returncode == 0

    crd, doc = tmp_path / CRD_COPY, tmp_path / SPEC_DOC
    crd.write_text(crd.read_text().replace("maximum: 65535", "maximum: 65536", 1))
    prose, ports = "# The `SipRtmpBridge` spec\n", "| 1\N{EN DASH}65535 |"  # connection.sipPort
    assert doc.read_text().count(ports) == 1
    edited = doc.read_text().replace(ports, ports.replace("5 |", "6 |"))
    doc.write_text(edited.replace(prose, f"{prose}Added.\n"))
    checked = generate("--check", "--root", str(tmp_path))
    assert checked.returncode == 1
    named = checked.stderr.split("stale: ", 1)[1].split(" (", 1)[0].split(", ")
    assert sorted(named) == sorted(map(str, (CRD_COPY, SPEC_DOC)))
    assert crd.read_text() != (REPO / CRD_COPY).read_text()  # --check writes nothing

    assert generate("--root", str(tmp_path)).returncode == 0
    assert generate("--check", "--root", str(tmp_path)).returncode == 0
    assert crd.read_text() == (REPO / CRD_COPY).read_text()
    assert ports in doc.read_text() and f"{prose}Added.\n" in doc.read_text()
