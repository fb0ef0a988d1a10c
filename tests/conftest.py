"""Fixtures that start real peers on loopback: nginx-rtmp, SIPp, the bridge CLI."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.support.baresip import BaresipPeer
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.ports import free_udp_pair, free_udp_window
from tests.support.publish_log import PublishLog
from tests.support.rtp_pcap import G722, PCMA, PCMU, RtpCodec, make_tone_pcap
from tests.support.silent_callee import SilentCallee
from tests.support.sipp import SippPeer

TONES: dict[str, tuple[RtpCodec, float]] = {
    "PCMU": (PCMU, 1000.0),
    "PCMA": (PCMA, 800.0),
    "G722": (G722, 1200.0),
}


def _ancestors() -> set[int]:
    """This process and its parents (a wrapper such as `timeout` naming --basetemp is no leak)."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def processes_using(directory: Path) -> list[str]:
    """Command lines of running processes that name a path under ``directory``."""
    found = []
    ours = _ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in command:
            found.append(f"{entry.name}: {command[:200]}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_leaked_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every peer and bridge a test starts (they all run from the session's temporary
    directory) must be gone when the session ends: a leak fails the run."""
    base = tmp_path_factory.getbasetemp()
    yield
    deadline = time.monotonic() + 5
    while (leaked := processes_using(base)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leaked, "processes left running:\n" + "\n".join(leaked)


@pytest.fixture(scope="session")
def pcap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pcaps")


@pytest.fixture(scope="session")
def tone_pcap(pcap_dir: Path) -> Callable[..., Path]:
    """A pcap of ``seconds`` of the codec's test tone (or of ``frequency``), made once per
    session."""

    def make(codec_name: str, seconds: float, frequency: float | None = None) -> Path:
        codec, default_frequency = TONES[codec_name]
        hz = frequency or default_frequency
        path = pcap_dir / f"{codec_name}-{hz:g}Hz-{seconds:g}s.pcap"
        return path if path.exists() else make_tone_pcap(path, codec, hz, seconds)

    return make


@pytest.fixture
def peer_host() -> str:
    """The address SIPp and nginx-rtmp listen on and advertise. Loopback, except in the
    real-node tier (tests/e2e), which overrides it with the host end of its pod network."""
    return "127.0.0.1"


@pytest.fixture
def rtmp_server(tmp_path: Path, peer_host: str) -> Iterator[NginxRtmp]:
    server = NginxRtmp(tmp_path / "nginx", free_port(), host=peer_host).start()
    yield server
    server.stop()


@pytest.fixture
def publish_log() -> Iterator[PublishLog]:
    log = PublishLog()
    yield log
    log.close()


@pytest.fixture
def tls_rtmp_server(tmp_path: Path, publish_log: PublishLog) -> Iterator[NginxRtmp]:
    """nginx-rtmp behind TLS (nginx's stream module, as CDN ingest terminates it) with a new
    self-signed certificate, notifying ``publish_log`` of each publisher."""
    server = NginxRtmp(
        tmp_path / "tls-nginx", free_port(), tls_port=free_port(), on_publish=publish_log.url
    ).start()
    yield server
    server.stop()


@pytest.fixture
def silent_callee() -> Iterator[SilentCallee]:
    """Where the callee would be, for failures that must happen before anything is dialled."""
    callee = SilentCallee()
    yield callee
    callee.close()


@pytest.fixture
def sipp(tmp_path: Path, peer_host: str) -> Iterator[Callable[..., SippPeer]]:
    peers: list[SippPeer] = []

    def start(
        scenario: str,
        transport: str = "u1",
        calls: int = 1,
        extra_args: tuple[str, ...] = (),
        **values: Any,
    ) -> SippPeer:
        port = free_port()
        peer = SippPeer(
            scenario,
            port,
            free_udp_pair(),
            tmp_path,
            {k: str(v) for k, v in values.items()},
            transport,
            calls,
            host=peer_host,
            extra_args=extra_args,
        )
        peers.append(peer.start())
        return peer

    yield start
    for peer in peers:
        peer.stop()


@pytest.fixture
def baresip(tmp_path: Path) -> Iterator[Callable[..., BaresipPeer]]:
    """baresip far ends, ready to answer: ``start(media, seconds, audio_codec=, tone_hz=)``
    (``media`` None: audio only); each stopped at the end of the test."""
    peers: list[BaresipPeer] = []

    def start(media: Path | None, seconds: int, **options: Any) -> BaresipPeer:
        workdir = tmp_path / f"baresip-{len(peers)}"
        peer = BaresipPeer(
            workdir,
            free_port(),
            free_udp_window(10),
            media,
            seconds,
            free_port(),
            **options,
        )
        peers.append(peer)
        peer.start().wait_ready()
        return peer

    yield start
    for peer in peers:
        peer.stop()


@pytest.fixture
def tone_peer(
    sipp: Callable[..., SippPeer], tone_pcap: Callable[..., Path]
) -> Callable[..., SippPeer]:
    """A SIPp far end that answers with PCMU and streams the PCMU test tone for ``seconds``
    (at ``frequency`` when given).

    By default it answers ``a=sendonly`` (as an IVR or a conference's listen line does) and
    hangs up 0.5 s after the tone; scenario placeholders can be overridden.
    """

    def start(
        seconds: float,
        scenario: str = "uas_tone_hangup.xml",
        transport: str = "u1",
        frequency: float | None = None,
        **values: Any,
    ) -> SippPeer:
        defaults = {"direction": "sendonly", "call_ms": int(seconds * 1000) + 500, "wait_ms": 30000}
        return sipp(
            scenario,
            transport=transport,
            pcap=tone_pcap("PCMU", seconds, frequency),
            payload_type=0,
            codec="PCMU/8000",
            **{**defaults, **values},
        )

    return start


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    processes: list[BridgeProcess] = []

    def start(spec: dict[str, Any], **options: Any) -> BridgeProcess:
        workdir = tmp_path / f"bridge-{len(processes)}"
        workdir.mkdir()
        process = BridgeProcess(spec, workdir, **options).start()
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.process is not None and process.process.poll() is None:
            process.process.kill()
            process.process.wait()
            pytest.fail("the bridge process was still running at the end of the test")


def call_spec(callee: str, rtmp: NginxRtmp, stream: str, **extra: Any) -> dict[str, Any]:
    """A spec for a call on loopback: everything binds and advertises 127.0.0.1."""
    spec: dict[str, Any] = {
        "callee": callee,
        "rtmpUrl": rtmp.url,
        "rtmpStream": stream,
        "hasAudio": False,
        "rtmpReconnectTimeoutSeconds": 10,
        "nat": {"bindAddress": "127.0.0.1", "rtpPortMin": 30000, "rtpPortMax": 40000},
    }
    spec.update(extra)
    return spec
