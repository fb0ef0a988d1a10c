"""What SRTP looks like on the wire, told from plain RTP without the keys: shared by the SRTP
tests against baresip directly and through the SBC."""

from __future__ import annotations

AUTH_TAG = 10  # bytes of HMAC-SHA1-80 after each SRTP payload
PCMU_FRAME = 160  # 20 ms at 8 kHz
MIN_PACKETS = 40  # of H.264 video in a call of several seconds


def assert_no_clear_pcmu(datagrams: list[bytes]) -> None:
    """Every PCMU packet among ``datagrams`` is SRTP: 160 bytes of ciphertext plus the 80-bit
    tag, and looks random. In clear, the 1 kHz tone is one µ-law period of 8 samples repeated
    (at most 8 distinct bytes) and the bridge's silence one byte value."""
    audio = [rtp_payload(d) for d in datagrams if d[1] & 0x7F == 0]
    assert len(audio) > 100, len(audio)
    assert {len(payload) for payload in audio} == {PCMU_FRAME + AUTH_TAG}, audio[:3]
    assert min(len(set(payload)) for payload in audio) > 60, audio[:3]


def rtp_payload(packet: bytes) -> bytes:
    """What follows an RTP header (its CSRCs and extension too): tshark, reading the SDP in
    the capture, would dissect an SRTP payload no further."""
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:  # a header extension: its length in 32-bit words
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    return packet[start:]


def assert_no_clear_h264(datagrams: list[bytes]) -> None:
    """The video RTP among ``datagrams`` (dynamic payload types) is encrypted: a clear H.264
    payload starts with a NAL unit header, whose forbidden bit is 0; ciphertext sets it in
    about half the packets."""
    h264 = [rtp_payload(d) for d in datagrams if 96 <= d[1] & 0x7F <= 127]
    assert len(h264) > MIN_PACKETS, len(h264)
    assert sum(payload[0] >> 7 for payload in h264) > len(h264) / 4, h264[:3]
