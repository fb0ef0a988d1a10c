"""The rule pjsua's SDP negotiator is given for H.264, through the very callback it calls."""

from __future__ import annotations

import ctypes

import pytest

from siprtmp_bridge.video import payload_type
from siprtmp_bridge.video.payload_type import (
    ALLOW_MODIFY_ANSWER,
    PJ_SUCCESS,
    formats_match,
    install_h264_match,
)


def media(*formats: str) -> tuple[payload_type._MediaDescription, list[bytes]]:
    """An m= line as pjmedia holds it; the returned buffers must outlive its use."""
    description = payload_type._MediaDescription()
    buffers = [value.encode() for value in formats]
    description.fmt_count = len(buffers)
    for index, buffer in enumerate(buffers):
        description.fmt[index].ptr = ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p)
        description.fmt[index].slen = len(buffer)
    return description, buffers


@pytest.mark.parametrize(
    ("offered", "answered", "option", "matches"),
    [
        ("97", "97", ALLOW_MODIFY_ANSWER, True),
        ("96", "97", ALLOW_MODIFY_ANSWER, False),  # the renumbering this prevents
        ("126", "121", ALLOW_MODIFY_ANSWER, False),
        ("96", "97", 0, True),  # the far end's answer to our offer: pjmedia's own rule
    ],
)
def test_an_offered_h264_format_pairs_only_with_the_answer_of_its_number(
    offered: str, answered: str, option: int, matches: bool
) -> None:
    assert formats_match(offered, answered, option) is matches
    offer, _offer_buffers = media("100", offered, "34")
    answer, _answer_buffers = media(answered)
    status = payload_type._CALLBACK(
        None, ctypes.pointer(offer), 1, ctypes.pointer(answer), 0, option
    )
    assert (status == PJ_SUCCESS) is matches


def test_the_callback_is_registered_with_pjmedia() -> None:
    assert install_h264_match() is None
    assert install_h264_match() is None  # once per process; asking again changes nothing
