"""H.264 header parsing: fmtp, parameter sets, SPS dimensions (what status reports)."""

from __future__ import annotations

import base64

import av
import pytest

from siprtmp_bridge.video.h264 import (
    FmtpError,
    first_sps,
    h264_format,
    nal_units,
    parameter_sets,
    parse_sps,
    sprop_extradata,
)

# x264's SPS/PPS for 320x240 Constrained Baseline (as FFmpeg's RTP muxer puts them in sprop).
SPS_320x240 = base64.b64decode("Z0LADdoFB+wEQAAAAwBAAAAMo8UKqA==")
PPS = base64.b64decode("aM4PyA==")


def test_fmtp_defaults_and_values() -> None:
    assert h264_format(96, "").packetization_mode == 0
    parsed = h264_format(96, "Profile-Level-Id=42C01F; packetization-mode=1")
    assert (parsed.profile_level_id, parsed.packetization_mode) == ("42C01F", 1)
    assert parsed.profile_name == "Baseline"
    with pytest.raises(FmtpError, match="packetization-mode=2"):
        h264_format(96, "packetization-mode=2")
    with pytest.raises(FmtpError, match="profile-level-id"):
        h264_format(96, "profile-level-id=xyz")


def test_sprop_becomes_annex_b_extradata() -> None:
    extradata = sprop_extradata("Z0LADdoFB+wEQAAAAwBAAAAMo8UKqA==,aM4PyA==")
    assert extradata == b"\x00\x00\x00\x01" + SPS_320x240 + b"\x00\x00\x00\x01" + PPS
    assert first_sps(extradata) == SPS_320x240


def test_nal_units_with_three_and_four_byte_start_codes() -> None:
    idr = bytes([0x65, 0x88, 0x84, 0x00, 0x10])
    access_unit = b"\x00\x00\x00\x01" + SPS_320x240 + b"\x00\x00\x01" + PPS + b"\x00\x00\x01" + idr
    assert nal_units(access_unit) == [SPS_320x240, PPS, idr]
    assert parameter_sets(access_unit) == (
        b"\x00\x00\x00\x01" + SPS_320x240 + b"\x00\x00\x00\x01" + PPS
    )
    assert parameter_sets(b"\x00\x00\x01" + idr) is None  # a keyframe without them


def x264_sps(width: int, height: int, profile: str) -> bytes:
    """The SPS libx264 writes for one picture of this size (frame cropping when the size is
    not a multiple of 16)."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.options = {"profile": profile, "preset": "medium"}  # uses what the profile allows
    frame = av.VideoFrame(width, height, "yuv420p")
    packets = [*codec.encode(frame), *codec.encode(None)]
    sps = first_sps(bytes(packets[0]))
    assert sps is not None
    return sps


def test_sps_dimensions() -> None:
    info = parse_sps(SPS_320x240)
    assert (info.width, info.height, info.profile_idc, info.level_idc) == (320, 240, 66, 13)


@pytest.mark.parametrize(
    ("width", "height", "profile", "name"),
    [(1920, 1080, "high", "High"), (642, 362, "main", "Main"), (176, 144, "baseline", "Baseline")],
)
def test_sps_dimensions_from_x264(width: int, height: int, profile: str, name: str) -> None:
    info = parse_sps(x264_sps(width, height, profile))
    assert (info.width, info.height, info.profile_name) == (width, height, name)


def test_truncated_sps_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="truncated"):
        parse_sps(SPS_320x240[:6])
