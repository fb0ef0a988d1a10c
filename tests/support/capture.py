"""Packet capture on loopback with tshark: what the bridge really put on the wire."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from siprtmp_contract.dtmf import DTMF_KEYS


@dataclass(frozen=True)
class RtpPacket:
    source_port: int
    destination_port: int
    payload_type: int
    payload: bytes


class LoopbackCapture:
    def __init__(self, path: Path, capture_filter: str) -> None:
        assert shutil.which("tshark"), "tshark is not installed (scripts/test.sh installs it)"
        self.path = path
        self.filter = capture_filter
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> LoopbackCapture:
        self.process = subprocess.Popen(
            ["tshark", "-i", "lo", "-f", self.filter, "-w", str(self.path), "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # tshark says "Capturing on 'Loopback: lo'"
            line = self.process.stderr.readline()
            if "Capturing on" in line or not line:
                break
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.3)
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def fields(
        self, display_filter: str, *names: str, decode_as: str | None = None
    ) -> list[list[str]]:
        """The named fields of every packet that matches a Wireshark display filter
        (``decode_as`` e.g. ``udp.port==5003,rtcp`` for a port tshark cannot guess)."""
        command = ["tshark", "-r", str(self.path), "-Y", display_filter, "-T", "fields"]
        if decode_as is not None:
            command += ["-d", decode_as]
        for name in names:
            command += ["-e", name]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return [line.split("\t") for line in output.splitlines()]

    def udp_payloads(self, display_filter: str) -> list[bytes]:
        """The UDP payload of every packet that matches a display filter, as sent: for SIP,
        each whole message (``sip.Method == "ACK"`` and its SDP body)."""
        rows = self.fields(display_filter, "udp.payload")
        return [bytes.fromhex(row[0].replace(":", "")) for row in rows if row and row[0]]

    def rtp(self, rtp_port: int) -> list[RtpPacket]:
        """Every packet to or from ``rtp_port``, decoded as RTP."""
        output = subprocess.run(
            [
                "tshark",
                "-r",
                str(self.path),
                "-d",
                f"udp.port=={rtp_port},rtp",
                "-T",
                "fields",
                "-e",
                "udp.srcport",
                "-e",
                "udp.dstport",
                "-e",
                "rtp.p_type",
                "-e",
                "rtp.payload",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        packets = []
        for line in output.splitlines():
            fields = line.split("\t")
            if len(fields) < 3 or not fields[2]:
                continue
            payload = bytes.fromhex(fields[3].replace(":", "")) if len(fields) > 3 else b""
            packets.append(RtpPacket(int(fields[0]), int(fields[1]), int(fields[2]), payload))
        return packets


@dataclass(frozen=True)
class RtpEvent:
    """One RFC 2833/4733 packet: a key is repeated in many, the last ones with the end bit."""

    time: float  # the capture's timestamp (seconds since the epoch)
    key: str
    duration: int  # RTP timestamp units
    end: bool


def rfc2833_events(capture: LoopbackCapture, rtp_port: int) -> list[RtpEvent]:
    """RFC 2833/4733 events tshark decodes in the RTP to ``rtp_port``.

    The SDP in the captured SIP tells tshark which dynamic payload type is telephone-event.
    """
    rows = capture.fields(
        f"rtpevent && udp.dstport == {rtp_port}",
        "frame.time_epoch",
        "rtpevent.event_id",
        "rtpevent.duration",
        "rtpevent.end_of_event",
    )
    return [
        RtpEvent(float(r[0]), DTMF_KEYS[int(r[1])], int(r[2]), r[3] in {"1", "True"}) for r in rows
    ]


def key_presses(events: list[RtpEvent]) -> list[tuple[float, str]]:
    """(when it started, key) of each key: a new one starts after an end-of-event packet."""
    presses = []
    previous_end = True
    for event in events:
        if previous_end and not event.end:
            presses.append((event.time, event.key))
        previous_end = event.end
    return presses


def pressed_keys(capture: LoopbackCapture, rtp_port: int) -> str:
    """The keys sent to ``rtp_port`` as RFC 2833 events, in order."""
    return "".join(key for _, key in key_presses(rfc2833_events(capture, rtp_port)))


def sip_info_keys(capture: LoopbackCapture, sip_port: int) -> list[tuple[float, str, str]]:
    """(time, Signal, Duration) of each ``application/dtmf-relay`` INFO sent to ``sip_port``,
    read from the datagram itself (tshark does not decode the body)."""
    rows = capture.fields(
        f'sip.Method == "INFO" && udp.dstport == {sip_port}', "frame.time_epoch", "udp.payload"
    )
    keys = []
    for time_text, payload in rows:
        message = bytes.fromhex(payload.replace(":", "")).decode()
        head, _, body = message.partition("\r\n\r\n")
        assert "Content-Type: application/dtmf-relay" in head, message
        fields = dict(line.split("=", 1) for line in body.split("\r\n") if "=" in line)
        keys.append((float(time_text), fields["Signal"], fields["Duration"]))
    return keys
