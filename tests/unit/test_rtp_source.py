"""The video relay takes media from the far end only (rtp/source.py)."""

from __future__ import annotations

from siprtmp_bridge.rtp.source import PROBATION_PACKETS, SILENCE_SECONDS, SourceLatch

FAR = ("192.0.2.10", 40002)
NAT = ("198.51.100.7", 61000)
OTHER = ("203.0.113.9", 5004)


def test_the_offered_host_is_taken_at_once_and_others_are_dropped_while_it_talks() -> None:
    latch = SourceLatch("192.0.2.10")
    assert latch.admit(FAR, 0.0)
    assert not any(latch.admit(OTHER, 0.01 * n) for n in range(1, 50))
    assert latch.admit(FAR, 0.5)
    assert latch.dropped == 49
    assert latch.source == FAR


def test_a_far_end_behind_nat_is_taken_after_probation_and_a_third_party_never_while_it_talks() -> (
    None
):
    latch = SourceLatch("10.0.0.5")  # the phone's private address, as its SDP says
    admitted = [latch.admit(NAT, 0.02 * n) for n in range(PROBATION_PACKETS)]
    assert admitted == [False] * (PROBATION_PACKETS - 1) + [True]
    now = 0.02 * PROBATION_PACKETS
    for n in range(100):  # a third party alternating with the far end never takes over
        assert not latch.admit(OTHER, now + 0.01 * n)
        assert latch.admit(NAT, now + 0.01 * n + 0.005)
    assert latch.source == NAT


def test_an_interleaved_stranger_resets_probation() -> None:
    latch = SourceLatch(None)
    for _ in range(5):
        for _ in range(PROBATION_PACKETS - 1):
            assert not latch.admit(NAT, 0.0)
        assert not latch.admit(OTHER, 0.0)
    assert latch.source is None


def test_after_the_source_falls_silent_a_new_one_takes_over_by_probation() -> None:
    latch = SourceLatch("192.0.2.10")
    latch.admit(FAR, 0.0)
    later = SILENCE_SECONDS + 0.1
    admitted = [latch.admit(OTHER, later + 0.02 * n) for n in range(PROBATION_PACKETS)]
    assert admitted[-1] and not any(admitted[:-1])  # an SBC failing over to another address
    assert not latch.admit(NAT, later + 0.3)  # a third one, while the new one talks
    assert latch.admit(FAR, later + 0.4)  # the address the SDP names is the far end's, always


def test_rtcp_from_the_far_ends_host_on_any_port() -> None:
    latch = SourceLatch("192.0.2.10")
    assert latch.same_host(("192.0.2.10", 40003))
    assert not latch.same_host(OTHER)
    latch = SourceLatch("10.0.0.5")
    for n in range(PROBATION_PACKETS):
        latch.admit(NAT, 0.01 * n)
    assert latch.same_host((NAT[0], 61001))
    assert not latch.same_host(("10.0.0.5", 40003))
