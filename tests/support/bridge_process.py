"""Run the real ``sip-rtmp-bridge`` CLI as a child process and read what it reports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class BridgeProcess:
    spec: dict[str, Any]
    workdir: Path
    status_port: int = 0
    extra_args: list[str] = field(default_factory=list)
    spec_format: str = "json"
    #: Added to the test's own environment (e.g. SSL_CERT_FILE for a trusted test CA).
    env: dict[str, str] = field(default_factory=dict)
    #: Stderr appended to this file (as a shell's ``2>>FILE``) instead of read from a pipe.
    stderr_file: Path | None = None
    #: A command the bridge is run under (one that ends in ``exec``, keeping its pid), such as
    #: support/slow_dns.py's mount namespace with a resolv.conf of its own.
    wrapper: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    stderr_text: str = ""

    @property
    def termination_log(self) -> Path:
        return self.workdir / "termination-log"

    def start(self) -> BridgeProcess:
        spec_path = self.workdir / f"spec.{self.spec_format}"
        text = json.dumps(self.spec) if self.spec_format == "json" else yaml.safe_dump(self.spec)
        spec_path.write_text(text)
        executable = Path(sys.executable).parent / "sip-rtmp-bridge"
        command = [
            *self.wrapper,
            str(executable),
            "run",
            "--spec",
            str(spec_path),
            "--status-host",
            "127.0.0.1",
            "--status-port",
            str(self.status_port),
            "--termination-log",
            str(self.termination_log),
            "--sip-log-level",
            "3",
            *self.extra_args,
        ]
        with contextlib.ExitStack() as files:
            stderr: Any = subprocess.PIPE
            if self.stderr_file is not None:
                stderr = files.enter_context(self.stderr_file.open("ab"))
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()
        return self

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.process is not None
        if self.process.stderr is None:
            return
        for line in self.process.stderr:
            self.stderr_text += line

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self._reader.join(5)
        self._err_reader.join(5)
        return code

    def wait_for(self, predicate: Any, timeout: float) -> dict[str, Any]:
        """The first status line for which ``predicate`` holds, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if predicate(line):
                    return line
            if self.process is not None and self.process.poll() is not None:
                time.sleep(0.2)
                for line in list(self.lines):
                    if predicate(line):
                        return line
                break
            time.sleep(0.05)
        raise AssertionError(
            f"no status line matched; last: {self.lines[-1:]}\nstderr: {self.stderr_text[-3000:]}"
        )

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    @property
    def final(self) -> dict[str, Any]:
        return self.lines[-1]

    def phases(self) -> list[str]:
        seen: list[str] = []
        for line in self.lines:
            if not seen or seen[-1] != line["phase"]:
                seen.append(line["phase"])
        return seen

    def call_states(self) -> list[str]:
        seen: list[str] = []
        for line in self.lines:
            if not seen or seen[-1] != line["call"]["state"]:
                seen.append(line["call"]["state"])
        return seen
