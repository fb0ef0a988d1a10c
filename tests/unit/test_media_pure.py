"""Pure media helpers: the stream clock, backoff, WAV header, keep-alive packet, the demo's
listener ports (the demo's tone analysis: test_demo_analysis.py)."""

from __future__ import annotations

import struct

import pytest

from siprtmp_bridge.demo.ports import LISTENER_PORTS, bindable, free_port, listener_ports
from siprtmp_bridge.media.clock import StreamPosition, silence_needed
from siprtmp_bridge.media.wav import WavHeaderError, parse_wav_header
from siprtmp_bridge.rtmp.backoff import backoff_delay
from siprtmp_bridge.rtp.keepalive import keepalive_packet, split_address


def test_no_silence_while_audio_keeps_up() -> None:
    assert silence_needed(8000, 1.2, 8000, 0.3) == 0  # 200 ms behind: a burst is due


def test_silence_catches_up_when_audio_stops() -> None:
    assert silence_needed(8000, 1.5, 8000, 0.3) == 4000
    assert silence_needed(0, 2.0, 16000, 0.3) == 32000  # before the call is answered


def test_stream_position_is_steady_although_bursts_lag_by_varying_amounts() -> None:
    # Audio produced level with the clock from t=10 s, read every 250 ms while the recorder
    # still holds 0-120 ms of it: the estimate keeps to the tightest bound, not the latest.
    position = StreamPosition()
    assert position.at(10.0) is None
    held = [0.12, 0.0, 0.06, 0.11, 0.03, 0.09]
    for index in range(24):
        moment = 10.0 + 0.25 * index
        position.mark(moment, moment - 10.0 - held[index % len(held)])
        if index >= held.index(0.0):
            assert position.at(moment + 0.1) == pytest.approx(moment + 0.1 - 10.0)


def test_stream_position_follows_the_audio_clock_when_it_really_moves() -> None:
    position = StreamPosition(window_seconds=4.0)
    for index in range(20):
        position.mark(index * 0.25, index * 0.25)
    position.mark(5.0, 5.5)  # silence filled in: the stream jumped 0.5 s ahead
    assert position.at(5.0) == pytest.approx(5.5)
    for index in range(21, 60):  # production then runs 0.2 s behind (a longer path)
        position.mark(index * 0.25, index * 0.25 - 0.2)
    assert position.at(15.0) == pytest.approx(14.8)  # the older, tighter marks have expired


def test_backoff_grows_and_is_bounded() -> None:
    delays = [backoff_delay(n) for n in range(1, 10)]
    assert delays[:5] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert max(delays) == 4.0


def wav_header(rate: int, channels: int = 1, bits: int = 16, tag: int = 1) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + struct.pack("<HHIIHH", tag, channels, rate, rate * 2, 2, bits)
        + b"data"
        + struct.pack("<I", 0)
    )


def test_wav_header() -> None:
    fmt = parse_wav_header(wav_header(16000))
    assert (fmt.sample_rate, fmt.channels, fmt.bits_per_sample) == (16000, 1, 16)
    with pytest.raises(WavHeaderError):
        parse_wav_header(wav_header(16000, bits=8))
    with pytest.raises(WavHeaderError):
        parse_wav_header(b"JUNK" * 11)


def test_keepalive_is_a_bare_rtp_header_with_an_unassigned_type() -> None:
    packet = keepalive_packet(65537, 0xDEADBEEF)
    assert len(packet) == 12
    version, payload_type, sequence, _ts, ssrc = struct.unpack("!BBHII", packet)
    assert (version >> 6, payload_type, sequence, ssrc) == (2, 20, 1, 0xDEADBEEF)
    assert split_address("[::1]:4000") == ("::1", 4000)
    assert split_address("10.0.0.1:5004") == ("10.0.0.1", 5004)


def test_listener_ports_stay_below_the_ephemeral_range() -> None:
    """Listening peers never take a port an outgoing connection could take meanwhile."""
    assert listener_ports("32768\t60999\n") == range(20000, 32768)
    assert listener_ports("25000 60999") == range(20000, 25000)
    # A range that leaves too little room below is not followed (the defaults are kept).
    assert listener_ports("20500 60999") == LISTENER_PORTS
    port = free_port()
    assert port in listener_ports() and bindable(port)
