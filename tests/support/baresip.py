"""baresip as the far end: a real softphone answering the bridge's offer with audio (PCMU or
G.722) or its delayed offer with audio and H.264 video, offered the way it offers them (H.264
twice, packetization modes 0 and 1). The video is read from a file (its avformat module) and
encoded by baresip itself (avcodec: libx264); the audio is ausine's tone, since baresip 1.0's
avformat audio source overruns its stack on the first decoded frame (Debian 12's build).

A test drives the call through baresip's own commands (hold, resume, reinvite, sndcode: its
menu module) sent over ctrl_tcp, and reads the keys baresip received from its log.

Everything stays on loopback: SIP and RTP bind 127.0.0.1 (``net_interface``, ``sip_listen``),
the account never registers (``regint=0``), no STUN, TURN or ICE module is loaded, and DNS, which
baresip sets up at start, points at 127.0.0.1 rather than the host's resolvers. ``config_text``
refuses any other address.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.video_pcap import picture_filter

AUDIO_MODULES = ("g711.so", "g722.so", "ausine.so", "ctrl_tcp.so")
VIDEO_MODULES = ("avformat.so", "avcodec.so", "fakevideo.so")
#: How baresip 1.0 logs a key it received: an RFC 4733 event (when it starts; its end is logged
#: again with end=1), or an application/dtmf-relay INFO.
_RECEIVED_DTMF = {
    "RFC2833": re.compile(r"received event: '(.)' \(end=0\)"),
    "INFO": re.compile(r"call: received DTMF: '(.)'"),
}
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def config_text(
    sip_port: int,
    rtp_low: int,
    rtp_high: int,
    media: Path | None,
    control_port: int,
    tone_hz: int = 1000,
    srtp: bool = False,
) -> str:
    """baresip's ``config``: ausine the microphone (48 kHz stereo is all it makes; baresip
    resamples for the codec), nothing is played (no audio player); with ``media``, the file is
    the camera and video is shown nowhere (fakevideo), without it no video module is loaded
    and baresip offers and answers audio alone. ctrl_tcp takes commands on ``control_port``;
    ``srtp`` loads the SDES module an account's ``mediaenc`` names."""
    video = [
        f"video_source avformat,{media}",
        "video_display fakevideo,nil",
        "video_size 320x240",
        "video_bitrate 500000",
        "video_fps 25",
    ]
    lines = [
        "poll_method poll",
        "net_interface 127.0.0.1",
        f"sip_listen 127.0.0.1:{sip_port}",
        "dns_server 127.0.0.1:53",
        f"rtp_ports {rtp_low}-{rtp_high}",
        f"audio_source ausine,{tone_hz}",
        "ausrc_srate 48000",
        "ausrc_channels 2",
        "audio_player nil,nil",
        "audio_alert nil,nil",
        *(video if media is not None else []),
        f"ctrl_tcp_listen 127.0.0.1:{control_port}",
        "module_path /usr/lib/baresip/modules",
        *(f"module {name}" for name in AUDIO_MODULES),
        *(f"module {name}" for name in (VIDEO_MODULES if media is not None else ())),
        *(["module srtp.so"] if srtp else []),
        "module_app account.so",
        "module_app menu.so",
    ]
    text = "\n".join(lines) + "\n"
    for address in _ADDRESS.findall(text):
        assert ipaddress.ip_address(address).is_loopback, f"baresip would reach {address}"
    return text


#: A moving picture (FFmpeg's testsrc2) for a camera whose encoder must spend its bitrate, as
#: a phone's does on a face: the still test picture costs baresip's libx264 a few kb/s.
BUSY_PICTURE = "testsrc2=s=320x240:r=25"


def camera_file(directory: Path, seconds: float, picture: str | None = None) -> Path:
    """What baresip's camera gives: the test picture (or another FFmpeg source, ``picture``)
    as H.264 in a file, which baresip decodes and encodes again itself. Video only (the
    module's docstring says why)."""
    kind = "" if picture is None else f"-{picture.partition('=')[0]}"
    path = directory / f"baresip-camera{kind}-{seconds:g}s.mkv"
    if not path.exists():
        subprocess.run(
            [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                "-f", "lavfi", "-i", picture or picture_filter(), "-t", str(seconds),
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", str(path),
            ],
            check=True,
        )  # fmt: skip
    return path


@dataclass
class BaresipPeer:
    """One baresip answering one call on ``port``, hanging up when it quits after ``seconds``;
    video from ``media`` (None: audio only), audio ``audio_codec`` at ``tone_hz``; SRTP as
    its account's ``mediaenc`` says (``srtp-mand``: RTP/SAVP only, in offers and answers)."""

    workdir: Path
    port: int
    rtp_low: int
    media: Path | None
    seconds: int
    control_port: int
    audio_codec: str = "PCMU"
    tone_hz: int = 1000
    mediaenc: str | None = None
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
            config_text(
                self.port,
                self.rtp_low,
                self.rtp_low + 9,
                self.media,
                self.control_port,
                self.tone_hz,
                srtp=self.mediaenc is not None,
            )
        )
        mediaenc = f";mediaenc={self.mediaenc}" if self.mediaenc else ""
        (self.workdir / "accounts").write_text(
            f"<sip:far@127.0.0.1>;regint=0;answermode=auto;audio_codecs={self.audio_codec}"
            f"{mediaenc}\n"
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

    def command(self, name: str, params: str = "") -> dict[str, object]:
        """One of baresip's commands (``hold``, ``resume``, ``reinvite``, ``sndcode 5``) on its
        current call, through ctrl_tcp (JSON in netstrings); its response."""
        request = json.dumps({"command": name, "params": params, "token": name}).encode()
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as control:
            control.sendall(b"%d:%s," % (len(request), request))
            received = b""
            while True:  # "LENGTH:{...}," with an event or the response to our token
                chunk = control.recv(65536)
                assert chunk, f"baresip closed its control port: {self.text()[-2000:]}"
                received += chunk
                while b":" in received:
                    length_text, _, rest = received.partition(b":")
                    length = int(length_text)
                    if len(rest) <= length:
                        break
                    message = json.loads(rest[:length])
                    received = rest[length + 1 :]
                    if message.get("response") and message.get("token") == name:
                        return dict(message)

    def received_dtmf(self, method: str) -> str:
        """The keys baresip logged receiving by ``method`` (the bridge's DTMF type), in order."""
        return "".join(re.findall(_RECEIVED_DTMF[method], self.text()))

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
