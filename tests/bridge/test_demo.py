"""The README's first command: the built-in demo proves the tone went through the bridge."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_bridges_the_tone_and_proves_it() -> None:
    executable = Path(sys.executable).parent / "sip-rtmp-bridge"
    result = subprocess.run(
        [str(executable), "demo", "--seconds", "3", "--frequency", "660"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "Assertion" not in result.stderr  # no pjsua assert: every object freed in order
    (proof,) = result.stdout.strip().splitlines()  # the verdict alone; status goes to stderr
    match = re.search(r"demo: OK: .* ([\d.]+) s of it is a ([\d.]+) Hz tone", proof)
    assert match, proof
    assert float(match.group(1)) > 2.5
    assert abs(float(match.group(2)) - 660) < 5
