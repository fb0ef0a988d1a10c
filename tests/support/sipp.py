"""Run SIPp as the far end of a call, from the scenario templates in tests/scenarios."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@dataclass
class SippPeer:
    """One SIPp UAS process handling ``calls`` calls (``-m``), then exiting."""

    scenario: str
    port: int
    media_port: int
    workdir: Path
    values: dict[str, str] = field(default_factory=dict)
    transport: str = "u1"
    calls: int = 1
    #: Where SIPp listens and what it puts in SDP: loopback, or the host end of the real-node
    #: tier's pod bridge.
    host: str = "127.0.0.1"
    extra_args: tuple[str, ...] = ()  # e.g. "-aa": answer INFO/NOTIFY/OPTIONS/UPDATE with 200
    #: A command SIPp is run under, such as ``ip netns exec NS`` (support/netem.py).
    wrapper: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"sip:bridge-test@{self.host}:{self.port}"

    def start(self) -> SippPeer:
        template = (SCENARIOS / self.scenario).read_text()
        for key, value in {"name": self.scenario, **self.values}.items():
            template = template.replace("{{" + key + "}}", value)
        assert "{{" not in template, f"unfilled placeholder in {self.scenario}"
        scenario = self.workdir / f"sipp-{self.port}-{self.scenario}"
        scenario.write_text(template)
        command = [
            *self.wrapper,
            "sipp",
            "-sf",
            str(scenario),
            "-i",
            self.host,
            "-mi",
            self.host,
            "-p",
            str(self.port),
            "-mp",
            str(self.media_port),
            "-t",
            self.transport,
            "-m",
            str(self.calls),
            "-timeout",
            "90s",
            "-nostdin",
            "-trace_msg",
            "-trace_err",
            "-message_file",
            str(self.message_log),
            "-error_file",
            str(self.error_log),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.3)  # SIPp binds within a few ms; give it a moment before we dial
        return self

    @property
    def message_log(self) -> Path:
        return self.workdir / f"sipp-{self.port}-messages.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / f"sipp-{self.port}-errors.log"

    def messages(self) -> str:
        return self.message_log.read_text(errors="replace") if self.message_log.exists() else ""

    def wait(self, timeout: float) -> int:
        """SIPp's exit code: 0 when the scenario ran to its end (e.g. it received our BYE)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
