"""What far ends and SBCs do to RTP numbering: a new SSRC mid-call (an SBC failing over to its
standby, which starts a stream of its own) and timestamps and sequence numbers that wrap
(they start at random, so some calls cross 2^32 early). The audio goes on in the recording."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording, tone_gaps
from tests.support.rtp_pcap import PCMU, RtpSource, make_tone_pcap
from tests.support.sipp import SippPeer

SECONDS = 8.0
PACKETS_PER_SECOND = 50
#: What concealment and a jitter buffer restarting may leave as a hole, in the 20 ms envelope.
LONGEST_GAP_SECONDS = 0.06

FAILOVER = (
    RtpSource(0, ssrc=0x11111111, first_sequence=17, first_timestamp=123_456),
    # Half-way: the standby's SSRC, sequence and timestamp bases of its own.
    RtpSource(200, ssrc=0x22222222, first_sequence=40_000, first_timestamp=3_000_000_000),
)
#: 2 s before both wrap: the timestamp at 2^32, the sequence number at 2^16, 100 packets in.
WRAP = (RtpSource(0, first_sequence=0x10000 - 100, first_timestamp=2**32 - 2 * 8000),)


@pytest.mark.parametrize("sources", [FAILOVER, WRAP], ids=["ssrc-change", "wrap"])
def test_the_audio_goes_on_through_renumbered_rtp(
    sources: tuple[RtpSource, ...],
    tmp_path: Path,
    sipp: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    pcap = make_tone_pcap(tmp_path / "renumbered.pcap", PCMU, 1000.0, SECONDS, sources)
    peer = sipp(
        "uas_tone_hangup.xml",
        pcap=pcap,
        payload_type=0,
        codec="PCMU/8000",
        direction="sendonly",
        call_ms=int(SECONDS * 1000) + 500,
        wait_ms=30000,
    )
    process = bridge(call_spec(peer.uri, rtmp_server, "renumbered"))
    assert process.wait(30) == 0, process.stderr_text[-2000:]
    assert process.final["reason"] == "RemoteHangup"
    assert peer.wait(10) == 0
    (recording,) = rtmp_server.recordings_of("renumbered")
    tone = measure_recording(recording)
    gaps = tone_gaps(recording)
    assert abs(tone.frequency_hz - 1000) < 5
    assert tone.tone_seconds > SECONDS - 0.2, tone
    assert all(length <= LONGEST_GAP_SECONDS for _, length in gaps), gaps
