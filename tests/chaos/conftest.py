"""The far end behind an impaired network: namespaces made for the test (support/netem.py),
the bridge and nginx-rtmp in the near one, SIPp in the far one."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from siprtmp_bridge.demo.ports import free_port
from tests.support.bridge_process import BridgeProcess
from tests.support.netem import FAR_ADDRESS, NEAR_ADDRESS, ChaosNetwork
from tests.support.netem_wire import Impairment
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sipp import SippPeer

#: The bridge's RTP (and RTCP, video) ports: what the wire impairs, below the ephemeral range
#: the bridge's SIP port comes from, so that signalling crosses unimpaired.
RTP_PORTS = (20000, 20099)
SIPP_MEDIA_PORT = 6000
#: The far end's keyframe interval (1 s) and a frame's time: the longest a picture may freeze.
MAX_FROZEN_SECONDS = 1.1
MAX_AV_OFFSET_SECONDS = 0.08
#: An AAC frame lasts 21.3 ms at 48 kHz: a longer step between audio packets is a glitch.
MAX_STEP_MS = 100


@dataclass
class ChaosCall:
    network: ChaosNetwork
    rtmp: NginxRtmp
    workdir: Path
    bridge_factory: Callable[..., BridgeProcess]
    peers: list[SippPeer]

    def far_end(self, scenario: str, extra_args: tuple[str, ...] = (), **values: Any) -> SippPeer:
        peer = SippPeer(
            scenario,
            free_port(),
            SIPP_MEDIA_PORT,
            self.workdir,
            {k: str(v) for k, v in values.items()},
            host=FAR_ADDRESS,
            wrapper=self.network.inside(self.network.far),
            extra_args=extra_args,
        )
        self.peers.append(peer.start())
        return peer

    def bridge(self, peer: SippPeer, stream: str, **extra: Any) -> BridgeProcess:
        spec: dict[str, Any] = {
            "callee": peer.uri,
            "rtmpUrl": self.rtmp.url,
            "rtmpStream": stream,
            "hasAudio": False,
            "rtmpReconnectTimeoutSeconds": 10,
            "nat": {
                "bindAddress": NEAR_ADDRESS,
                "rtpPortMin": RTP_PORTS[0],
                "rtpPortMax": RTP_PORTS[1],
            },
            **extra,
        }
        return self.bridge_factory(spec, wrapper=list(self.network.inside(self.network.near)))


@pytest.fixture
def chaos_call(
    tmp_path: Path, bridge: Callable[..., BridgeProcess]
) -> Iterator[Callable[[Impairment], ChaosCall]]:
    """``start(impairment)``: the namespaces and the wire, nginx-rtmp in the near one; then
    ``far_end(scenario, ...)`` and ``bridge(peer, stream, ...)``."""
    made: list[tuple[ChaosNetwork, ChaosCall]] = []

    def start(impairment: Impairment) -> ChaosCall:
        workdir = tmp_path / f"chaos-{len(made)}"
        workdir.mkdir()
        network = ChaosNetwork(impairment, workdir / "wire.log").__enter__()
        rtmp = NginxRtmp(
            workdir / "nginx", free_port(), wrapper=network.inside(network.near)
        ).start()
        call = ChaosCall(network, rtmp, workdir, bridge, [])
        made.append((network, call))
        return call

    yield start
    for network, call in made:
        for peer in call.peers:
            peer.stop()
        call.rtmp.stop()
        network.__exit__(None, None, None)


def impairment(**settings: Any) -> Impairment:
    """An impairment of the bridge's RTP ports."""
    return Impairment(ports=RTP_PORTS, **settings)


def assert_steady(times: list[int], what: str, longest_ms: float = MAX_STEP_MS) -> None:
    """Timestamps (ms) that never go back nor step further than ``longest_ms``."""
    steps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert steps and all(0 <= step <= longest_ms for step in steps), (
        what,
        [(at, step) for at, step in zip(times, steps, strict=False) if not 0 <= step <= longest_ms],
    )
