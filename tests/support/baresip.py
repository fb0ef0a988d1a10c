"""baresip as the far end: a real softphone answering the bridge's delayed offer with audio and
H.264 video, offered the way it offers them (H.264 twice, packetization modes 0 and 1). The
video is read from a file (its avformat module) and encoded by baresip itself (avcodec:
libx264); the audio is ausine's 1 kHz tone, since baresip 1.0's avformat audio source overruns
its stack on the first decoded frame (Debian 12's build).

Everything stays on loopback: SIP and RTP bind 127.0.0.1 (``net_interface``, ``sip_listen``),
the account never registers (``regint=0``), no STUN, TURN or ICE module is loaded, and DNS, which
baresip sets up at start, points at 127.0.0.1 rather than the host's resolvers. ``config_text``
refuses any other address.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MODULES = ("g711.so", "ausine.so", "avformat.so", "avcodec.so", "fakevideo.so")
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def config_text(sip_port: int, rtp_low: int, rtp_high: int, media: Path) -> str:
    """baresip's ``config``: the file is the camera, ausine the microphone (48 kHz stereo is all
    it makes; baresip resamples for PCMU), video is shown nowhere (fakevideo), nothing is
    played (no audio player)."""
    lines = [
        "poll_method poll",
        "net_interface 127.0.0.1",
        f"sip_listen 127.0.0.1:{sip_port}",
        "dns_server 127.0.0.1:53",
        f"rtp_ports {rtp_low}-{rtp_high}",
        "audio_source ausine,1000",
        "ausrc_srate 48000",
        "ausrc_channels 2",
        "audio_player nil,nil",
        "audio_alert nil,nil",
        f"video_source avformat,{media}",
        "video_display fakevideo,nil",
        "video_size 320x240",
        "video_bitrate 500000",
        "video_fps 25",
        "module_path /usr/lib/baresip/modules",
        *(f"module {name}" for name in MODULES),
        "module_app account.so",
    ]
    text = "\n".join(lines) + "\n"
    for address in _ADDRESS.findall(text):
        assert ipaddress.ip_address(address).is_loopback, f"baresip would reach {address}"
    return text


@dataclass
class BaresipPeer:
    """One baresip answering one call on ``port``, hanging up when it quits after ``seconds``."""

    workdir: Path
    port: int
    rtp_low: int
    media: Path
    seconds: int
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def uri(self) -> str:
        return f"sip:far@127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "baresip.log"

    def start(self) -> BaresipPeer:
        assert shutil.which("baresip"), (
            "baresip is not installed (scripts/test.sh installs baresip-core, baresip-ffmpeg)"
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "config").write_text(
            config_text(self.port, self.rtp_low, self.rtp_low + 9, self.media)
        )
        (self.workdir / "accounts").write_text(
            "<sip:far@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU\n"
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["baresip", "-f", str(self.workdir), "-t", str(self.seconds), "-s"],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = 10) -> None:
        """Until baresip listens (it prints "baresip is ready." once its modules are loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "baresip is ready." in self.log.read_text(errors="replace"):
                return
            assert self.process is not None and self.process.poll() is None, self.text()
            time.sleep(0.05)
        raise AssertionError(f"baresip did not start: {self.text()[-2000:]}")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
