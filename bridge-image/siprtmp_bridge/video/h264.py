"""H.264 facts the bridge needs without decoding: fmtp parameters, NAL units, SPS dimensions.

Passthrough never decodes a picture (that would cost what re-encoding costs), yet the FLV
stream needs the parameter sets as extradata, and the status reports the resolution: both come
from the bitstream's headers, parsed here in pure Python (a few bytes per keyframe).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

NAL_SLICE = 1
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
START_CODE = b"\x00\x00\x00\x01"
PACKETIZATION_MODES = (0, 1)  # single NAL unit, non-interleaved; mode 2 (interleaved) is refused
_PROFILE_LEVEL_ID = re.compile(r"^[0-9A-Fa-f]{6}$")


class FmtpError(ValueError):
    """An fmtp the bridge cannot honour; ``str()`` says which parameter and why."""


@dataclass(frozen=True)
class H264Format:
    """One H.264 payload format as offered in SDP (``a=rtpmap`` + ``a=fmtp``)."""

    payload_type: int
    packetization_mode: int = 0
    profile_level_id: str | None = None  # six hex digits, as the far end wrote them
    sprop_parameter_sets: str | None = None  # base64 SPS,PPS as the far end wrote them
    fmtp: str = ""  # the whole fmtp value, echoed in the receiver's SDP

    @property
    def profile_name(self) -> str | None:
        if self.profile_level_id is None:
            return None
        return PROFILES.get(int(self.profile_level_id[:2], 16), f"profile {self.profile_level_id}")


PROFILES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10"}


def parse_fmtp(value: str) -> dict[str, str]:
    """``a=fmtp`` parameters (``key=value;key=value``) with lower-cased keys."""
    parameters: dict[str, str] = {}
    for part in value.split(";"):
        key, separator, parameter = part.strip().partition("=")
        if key and separator:
            parameters[key.strip().lower()] = parameter.strip()
    return parameters


def h264_format(payload_type: int, fmtp: str) -> H264Format:
    """The H.264 format of one offered payload type; ``FmtpError`` when it cannot be received."""
    parameters = parse_fmtp(fmtp)
    mode_text = parameters.get("packetization-mode", "0")
    if not mode_text.isdigit() or int(mode_text) not in PACKETIZATION_MODES:
        raise FmtpError(f"packetization-mode={mode_text} is not supported (only 0 and 1)")
    profile = parameters.get("profile-level-id")
    if profile is not None and not _PROFILE_LEVEL_ID.match(profile):
        raise FmtpError(f"profile-level-id={profile!r} is not six hex digits")
    sprop = parameters.get("sprop-parameter-sets")
    if sprop is not None:
        sprop_extradata(sprop)  # refuses what FFmpeg would choke on
    return H264Format(payload_type, int(mode_text), profile, sprop, fmtp.strip())


def sprop_extradata(sprop: str) -> bytes:
    """``sprop-parameter-sets`` (base64 NAL units, comma separated) → Annex B extradata."""
    units = []
    for encoded in sprop.split(","):
        if not encoded.strip():
            continue
        try:
            units.append(base64.b64decode(encoded.strip(), validate=True))
        except (binascii.Error, ValueError) as error:
            raise FmtpError(f"sprop-parameter-sets is not base64: {encoded!r}") from error
    return b"".join(START_CODE + unit for unit in units if unit)


def nal_units(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (start codes of 3 or 4 bytes removed)."""
    units: list[bytes] = []
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", access_unit)]
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(access_unit)
        unit = access_unit[start:end]
        # A four-byte start code leaves the zero of the next one on the previous unit.
        if index + 1 < len(starts) and unit.endswith(b"\x00"):
            unit = unit[:-1]
        if unit:
            units.append(unit)
    return units


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def parameter_sets(access_unit: bytes) -> bytes | None:
    """Annex B extradata (SPS then PPS) carried in-band in an access unit, if it has both."""
    units = nal_units(access_unit)
    sps = [u for u in units if nal_type(u) == NAL_SPS]
    pps = [u for u in units if nal_type(u) == NAL_PPS]
    if not sps or not pps:
        return None
    return b"".join(START_CODE + unit for unit in (*sps, *pps))


def first_sps(extradata: bytes) -> bytes | None:
    return next((u for u in nal_units(extradata) if nal_type(u) == NAL_SPS), None)


@dataclass(frozen=True)
class SpsInfo:
    profile_idc: int
    level_idc: int
    width: int
    height: int

    @property
    def profile_name(self) -> str:
        return PROFILES.get(self.profile_idc, f"profile {self.profile_idc}")


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def bit(self) -> int:
        byte = self.data[self.position >> 3]  # IndexError on truncated input
        value = (byte >> (7 - (self.position & 7))) & 1
        self.position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value % 2 else -(value // 2)


def _rbsp(unit: bytes) -> bytes:
    return unit.replace(b"\x00\x00\x03", b"\x00\x00")


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def parse_sps(unit: bytes) -> SpsInfo:
    """Profile, level and the cropped picture size of a sequence parameter set (H.264 7.3.2.1)."""
    try:
        return _parse_sps(_Bits(_rbsp(unit)[1:]))
    except IndexError as error:
        raise ValueError("truncated SPS") from error


def _parse_sps(bits: _Bits) -> SpsInfo:
    profile_idc = bits.bits(8)
    bits.bits(8)  # constraint flags
    level_idc = bits.bits(8)
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if bits.bit():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        crop_x = 2 if chroma_format_idc in (1, 2) else 1
        crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    return SpsInfo(profile_idc, level_idc, width, height)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following != 0:
            following = (last + bits.se() + 256) % 256
        last = following if following != 0 else last
