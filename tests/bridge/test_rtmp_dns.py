"""The RTMP server named by a host name that a slow, or dead, DNS server resolves: the bridge
resolves it itself within each attempt's timeout, with the GIL released, so the process never
freezes (FFmpeg resolving inside ``av.open`` held the GIL for as long as DNS took), a resolver
that never answers costs one attempt's timeout and ends RtmpFailed once the budget is spent,
and RTMPS is still verified against the name.

Each bridge runs in a mount namespace of its own whose /etc/resolv.conf names only the test's
DNS server (support/slow_dns.py)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.certificates import self_signed
from tests.support.http import http_get
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.publish_log import PublishLog
from tests.support.recording import measure_recording
from tests.support.silent_callee import SilentCallee
from tests.support.sipp import SippPeer
from tests.support.slow_dns import SlowDns, with_resolv_conf

EXIT_RTMP = 7
NAME = "rtmp.dns.test"
#: How long an answer to /status or /healthz may take; a frozen process took seconds.
PROMPT_SECONDS = 0.5
#: The slow DNS server's delay: within one attempt's timeout (5 s), and long enough that a
#: freeze of that length stands out.
ANSWER_DELAY_SECONDS = 3.0


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[Callable[[float | None], SlowDns]]:
    """A DNS server resolving NAME to 127.0.0.1 after ``delay`` seconds, or never (None)."""
    servers: list[SlowDns] = []

    def start(delay: float | None) -> SlowDns:
        server = SlowDns({NAME: "127.0.0.1"}, delay)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def run_bridge(
    bridge: Callable[..., BridgeProcess],
    dns: SlowDns,
    spec: dict[str, Any],
    tmp_path: Path,
    **options: Any,
) -> BridgeProcess:
    return bridge(spec, wrapper=with_resolv_conf(dns.resolv_conf(tmp_path)), **options)


def probe_until(
    status_port: int, done: Callable[[], bool], seconds: float
) -> list[tuple[float, int, float]]:
    """/healthz and /status in turn until ``done()`` or ``seconds`` are up: (sent at, status,
    seconds it took) each, 0 for no answer (refused before the server listens, or timed out)."""
    probes = []
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        for path in ("/healthz", "/status"):
            sent = time.monotonic()
            code, _ = http_get(f"http://127.0.0.1:{status_port}{path}", timeout=10)
            probes.append((sent, code, time.monotonic() - sent))
        time.sleep(0.05)
    return probes


def assert_prompt_while_resolving(
    probes: list[tuple[float, int, float]], asked_at: float, answered_by: float
) -> None:
    """Every probe answered promptly, and all those sent while the lookup was under way (from
    ``asked_at`` until ``answered_by``) were answered."""
    slowest = max(took for _, _, took in probes)
    assert slowest < PROMPT_SECONDS, f"an answer took {slowest:.2f} s"
    during = [code for sent, code, _ in probes if asked_at < sent < answered_by]
    assert during and set(during) == {200}, during


def publishing(line: dict[str, Any]) -> bool:
    return bool(line["stream"]["state"] == "PUBLISHING")


def test_slow_dns_answer_never_freezes_the_bridge_and_the_call_is_streamed(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    dns: Callable[[float | None], SlowDns],
    tmp_path: Path,
) -> None:
    """DNS answers after 3 s: the first attempt connects, and while the answer is awaited the
    status server answers at once (FFmpeg resolving the name itself froze it for the 3 s)."""
    server = dns(ANSWER_DELAY_SECONDS)
    peer = tone_peer(3.0)
    spec = call_spec(
        peer.uri, rtmp_server, "named", rtmpUrl=f"rtmp://{NAME}:{rtmp_server.port}/live"
    )
    status_port = free_port()
    process = run_bridge(bridge, server, spec, tmp_path, status_port=status_port)
    probes = probe_until(status_port, lambda: any(map(publishing, process.lines)), 15)
    process.wait_for(publishing, 1)
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    asked = server.asked(NAME)
    assert asked, "the bridge never asked the test's DNS server"
    assert_prompt_while_resolving(probes, asked[0].at, asked[0].at + ANSWER_DELAY_SECONDS)
    assert process.final["reason"] == "RemoteHangup"
    assert process.final["stream"]["reconnects"] == 0
    (recording,) = rtmp_server.recordings_of("named")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_dns_that_never_answers_costs_each_attempt_its_timeout_then_ends_rtmp_failed(
    silent_callee: SilentCallee,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    dns: Callable[[float | None], SlowDns],
    tmp_path: Path,
) -> None:
    """A 7 s budget: an attempt of 5 s and one of what is left, each failed by the bound (glibc
    itself would have waited 30 s, the resolv.conf's timeout); both wait on the one lookup."""
    server = dns(None)
    budget = 7
    spec = call_spec(
        silent_callee.uri,
        rtmp_server,
        "unresolved",
        rtmpUrl=f"rtmp://{NAME}:{rtmp_server.port}/live",
        rtmpReconnectTimeoutSeconds=budget,
    )
    status_port = free_port()
    started = time.monotonic()
    process = run_bridge(bridge, server, spec, tmp_path, status_port=status_port)
    child = process.process
    assert child is not None
    probes = probe_until(status_port, lambda: child.poll() is not None, budget + 10)
    assert process.wait(10) == EXIT_RTMP
    elapsed = time.monotonic() - started
    assert elapsed < budget + 6, elapsed  # start-up, the budget, the exit
    final = process.final
    assert (final["phase"], final["reason"]) == ("Failed", "RtmpFailed")
    assert final["stream"]["state"] == "FAILED"
    assert f"host {NAME} could not be resolved within" in final["message"]
    termination = json.loads(process.termination_log.read_text())
    assert (termination["reason"], termination["exitCode"]) == ("RtmpFailed", EXIT_RTMP)
    asked = server.asked(NAME)
    assert asked
    assert_prompt_while_resolving(probes, asked[0].at, asked[0].at + budget - 1)
    assert len({query.qtype for query in asked}) == len(asked)  # one lookup: A and AAAA once
    assert silent_callee.received_nothing()


def test_sigterm_while_dns_never_answers_ends_the_bridge_promptly(
    silent_callee: SilentCallee,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    dns: Callable[[float | None], SlowDns],
    tmp_path: Path,
) -> None:
    server = dns(None)
    spec = call_spec(
        silent_callee.uri,
        rtmp_server,
        "stopped",
        rtmpUrl=f"rtmp://{NAME}:{rtmp_server.port}/live",
        rtmpReconnectTimeoutSeconds=60,
    )
    process = run_bridge(bridge, server, spec, tmp_path)
    deadline = time.monotonic() + 10
    while not server.asked(NAME) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.asked(NAME)
    time.sleep(1)  # inside the lookup
    signalled = time.monotonic()
    process.signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert time.monotonic() - signalled < 4  # the publisher's flush waits at most 2 s
    assert (process.final["phase"], process.final["reason"]) == ("Succeeded", "Stopped")
    termination = json.loads(process.termination_log.read_text())
    assert (termination["reason"], termination["exitCode"]) == ("Stopped", 0)
    assert silent_callee.received_nothing()


@pytest.mark.parametrize(
    ("issued_for", "trusted"),
    [(NAME, True), ("127.0.0.1", False)],
    ids=["certificate for the name", "certificate for the address dialled"],
)
def test_rtmps_by_name_is_verified_against_the_name_not_the_address(
    issued_for: str,
    trusted: bool,
    tone_peer: Callable[..., SippPeer],
    bridge: Callable[..., BridgeProcess],
    dns: Callable[[float | None], SlowDns],
    publish_log: PublishLog,
    tmp_path: Path,
) -> None:
    """The relay dials the address the bridge resolved, checks the certificate against the
    host name (and sends it as SNI); the server is told the URL's own tcUrl."""
    server = dns(0.3)
    certificate = self_signed(tmp_path, issued_for)
    rtmp = NginxRtmp(
        tmp_path / "nginx",
        free_port(),
        tls_port=free_port(),
        on_publish=publish_log.url,
        certificate=certificate,
    ).start()
    try:
        peer = tone_peer(2.0)
        url = f"rtmps://{NAME}:{rtmp.tls_port}/live"
        spec = call_spec(peer.uri, rtmp, "secure", rtmpUrl=url, rtmpReconnectTimeoutSeconds=3)
        env = {"SSL_CERT_FILE": str(certificate[0])}
        process = run_bridge(bridge, server, spec, tmp_path, env=env)
        code = process.wait(30)
    finally:
        rtmp.stop()
    if trusted:
        assert code == 0, process.stderr_text[-2000:]
        assert publish_log.tc_urls() == [url]
        assert rtmp.recordings_of("secure")
    else:
        assert code == EXIT_RTMP
        message = process.final["message"]
        assert f"certificate of {NAME}:{rtmp.tls_port} not trusted: Hostname mismatch" in message
        assert publish_log.notifications == []
