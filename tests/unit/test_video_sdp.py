"""The delayed-offer SDP rules: which video the bridge accepts and the answer it sends."""

from __future__ import annotations

import pytest

from siprtmp_bridge.video.sdp import (
    VideoAccepted,
    VideoDeclined,
    decide_video,
    local_media_address,
    parse_video_offer,
    receiver_sdp,
    rewrite_answer,
    video_answer_section,
)

SPROP = "Z0LADdoFB+wEQAAAAwBAAAAMo8UKqA==,aM4PyA=="


def offer(video: str, session_extra: str = "") -> str:
    return (
        "v=0\r\no=far 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n"
        f"{session_extra}"
        "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        f"{video}"
    )


H264_BOTH_MODES = (
    "m=video 40002 RTP/AVP 97 96\r\n"
    "a=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1;"
    f"sprop-parameter-sets={SPROP}\r\n"
    "a=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42e01f\r\n"
    "a=rtcp-fb:* nack pli\r\na=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 goog-remb\r\n"
    "a=ssrc:305419896 cname:far\r\na=sendrecv\r\n"
)

# What pjsua's audio-only build answers: the audio, and the video slot disabled.
PJSUA_ANSWER = (
    "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=pjmedia\r\nb=AS:84\r\nt=0 0\r\na=X-nat:0\r\n"
    "m=audio 30000 RTP/AVP 0\r\nc=IN IP4 192.0.2.10\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtcp:30001 IN IP4 192.0.2.10\r\na=recvonly\r\n"
    "m=video 0 RTP/AVP 97 96\r\nc=IN IP4 0.0.0.0\r\n"
)


def test_mode_1_is_preferred_and_its_parameters_kept() -> None:
    decision = decide_video(offer(H264_BOTH_MODES))
    assert isinstance(decision, VideoAccepted)
    chosen = decision.format
    assert (chosen.payload_type, chosen.packetization_mode) == (96, 1)
    assert chosen.profile_level_id == "42e01f"
    assert chosen.sprop_parameter_sets == SPROP
    assert decision.offer.ssrc == 305419896
    assert decision.remote_rtcp == ("198.51.100.7", 40003)


def test_mode_0_alone_is_accepted() -> None:
    video = "m=video 5000 RTP/AVP 99\r\na=rtpmap:99 h264/90000\r\n"  # no fmtp: mode 0
    decision = decide_video(offer(video))
    assert isinstance(decision, VideoAccepted)
    assert (decision.format.payload_type, decision.format.packetization_mode) == (99, 0)


def test_answer_replaces_the_disabled_slot_in_place() -> None:
    decision = decide_video(offer(H264_BOTH_MODES))
    assert isinstance(decision, VideoAccepted)
    address = local_media_address(PJSUA_ANSWER)
    assert address == "192.0.2.10"
    section = video_answer_section(decision, 30002, address, sendrecv=False)
    answer = rewrite_answer(PJSUA_ANSWER, section)
    assert answer is not None
    lines = answer.split("\r\n")
    assert "m=video 0" not in answer
    assert lines.index("m=audio 30000 RTP/AVP 0") < lines.index("m=video 30002 RTP/AVP 96")
    video = lines[lines.index("m=video 30002 RTP/AVP 96") :]
    assert video[:4] == [
        "m=video 30002 RTP/AVP 96",
        "c=IN IP4 192.0.2.10",  # pjsua's 0.0.0.0 fixed to the audio's address
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1",  # no sprop in an answer
    ]
    # Only the keyframe feedback the far end offered; the direction from hasVideo.
    assert "a=rtcp-fb:96 nack pli" in video and "a=rtcp-fb:96 ccm fir" in video
    assert not any("goog-remb" in line for line in video)
    assert video[-2] == "a=recvonly"
    sendrecv = rewrite_answer(
        PJSUA_ANSWER, video_answer_section(decision, 30002, address, sendrecv=True)
    )
    assert sendrecv is not None and "a=sendrecv" in sendrecv.split("m=video")[1]
    sendonly = decide_video(offer(H264_BOTH_MODES.replace("a=sendrecv", "a=sendonly")))
    assert isinstance(sendonly, VideoAccepted)
    assert video_answer_section(sendonly, 30002, address, sendrecv=True)[-1] == "a=recvonly"


def test_no_slot_to_rewrite() -> None:
    audio_only = PJSUA_ANSWER.split("m=video", maxsplit=1)[0]
    assert rewrite_answer(audio_only, ["m=video 1 RTP/AVP 96"]) is None


@pytest.mark.parametrize(
    ("video", "refused", "says"),
    [
        ("", False, "offered no video"),
        ("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n", False, "offered no video"),
        ("m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=recvonly\r\n", False, "recvonly"),
        ("m=video 5000 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\n", True, "offered VP8/90000"),
        ("m=video 5000 RTP/AVP 34\r\n", True, "offered H263"),
        (
            "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            "a=fmtp:96 packetization-mode=2\r\n",
            True,
            "packetization-mode=2 is not supported",
        ),
        (
            "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            "a=fmtp:96 sprop-parameter-sets=%%%\r\n",
            True,
            "not base64",
        ),
    ],
    ids=["no-video", "port-0", "recvonly", "vp8", "h263", "mode-2", "bad-sprop"],
)
def test_video_that_is_not_received(video: str, refused: bool, says: str) -> None:
    decision = decide_video(offer(video))
    assert isinstance(decision, VideoDeclined)
    assert decision.refused is refused
    assert says in decision.reason
    if refused:
        assert "only H.264" in decision.reason


def test_session_level_direction_and_rtcp_attributes() -> None:
    video = (
        "m=video 5000 RTP/AVPF 96\r\nc=IN IP4 203.0.113.9\r\na=rtpmap:96 H264/90000\r\n"
        "a=rtcp:6000 IN IP4 203.0.113.10\r\n"
    )
    parsed = parse_video_offer(offer(video, session_extra="a=sendonly\r\n"))
    assert parsed is not None
    assert (parsed.direction, parsed.sends) == ("sendonly", True)
    assert parsed.proto == "RTP/AVPF"
    assert (parsed.address, parsed.rtcp_port, parsed.rtcp_address) == (
        "203.0.113.9",
        6000,
        "203.0.113.10",
    )
    decision = decide_video(offer(video))
    assert isinstance(decision, VideoAccepted)
    assert decision.remote_rtcp == ("203.0.113.10", 6000)
    section = video_answer_section(decision, 7000, "192.0.2.1", sendrecv=False)
    assert section[0] == "m=video 7000 RTP/AVPF 96"  # the far end's profile, answered in kind
    muxed = decide_video(offer(video.replace("a=rtcp:6000 IN IP4 203.0.113.10", "a=rtcp-mux")))
    assert isinstance(muxed, VideoAccepted)
    assert muxed.remote_rtcp == ("203.0.113.9", 5000)


def test_receiver_sdp_for_ffmpeg() -> None:
    decision = decide_video(offer(H264_BOTH_MODES))
    assert isinstance(decision, VideoAccepted)
    sdp = receiver_sdp(decision, 30002)
    assert "m=video 30002 RTP/AVP 96" in sdp
    assert "c=IN IP4 127.0.0.1" in sdp  # FFmpeg hears only the bridge's relay
    # FFmpeg gets the far end's own fmtp, sprop-parameter-sets included (its first extradata).
    assert f"sprop-parameter-sets={SPROP}" in sdp


def _h264(pt: int, fmtp: str | None = None, name: str = "H264/90000") -> str:
    return f"a=rtpmap:{pt} {name}\r\n" + (f"a=fmtp:{pt} {fmtp}\r\n" if fmtp else "")


# Offers real far ends send, and odd ones: (m=video line and attributes, payload type to take).
SEVERAL_H264 = [
    pytest.param(  # baresip: mode 0 first, mode 1 second, feedback for each
        "m=video 5000 RTP/AVP 96 97\r\n"
        + _h264(96, "profile-level-id=42e01f;packetization-mode=0")
        + _h264(97, "profile-level-id=42e01f;packetization-mode=1")
        + "a=rtcp-fb:96 nack pli\r\na=rtcp-fb:97 nack pli\r\na=rtcp-fb:97 ccm fir\r\n",
        97,
        id="baresip-mode-0-then-1",
    ),
    pytest.param(  # a room system: VP8 first, then three H.264 profiles, feedback for all
        "m=video 5000 RTP/AVPF 100 126 121 109 34\r\na=rtpmap:100 VP8/90000\r\n"
        + _h264(126, "profile-level-id=640028;packetization-mode=0")
        + _h264(121, "profile-level-id=4d0032;packetization-mode=1")
        + _h264(109, "profile-level-id=42e01f;packetization-mode=1")
        + "a=rtcp-fb:* nack pli\r\na=rtcp-fb:* ccm fir\r\n",
        121,
        id="vp8-first-several-profiles",
    ),
    pytest.param(  # mode 2 listed first (refused), lower-case name, no fmtp at all (mode 0)
        "m=video 5000 RTP/AVP 127 35\r\n"
        + _h264(127, "packetization-mode=2")
        + _h264(35, name="h264/90000")
        + "a=rtcp-fb:127 nack pli\r\na=rtcp-fb:35 ccm fir\r\n",
        35,
        id="mode-2-first-unusual-numbers",
    ),
    pytest.param(  # H.264 at the wrong clock rate, a bad sprop, fmtp for an unlisted format
        "m=video 5000 RTP/AVP 98 99 103\r\n"
        + _h264(98, "packetization-mode=1", name="H264/8000")
        + _h264(99, "packetization-mode=1;sprop-parameter-sets=%%%")
        + _h264(103, "packetization-mode=0")
        + "a=fmtp:104 packetization-mode=1\r\na=rtcp-fb:103 nack pli\r\n",
        103,
        id="hostile-formats-around-one-usable",
    ),
    pytest.param(  # a format listed twice, a channel count on the rtpmap, duplicate fmtp keys
        "m=video 5000 RTP/AVP 96 96 120\r\n"
        + _h264(96, "packetization-mode=1;packetization-mode=0")
        + _h264(120, "packetization-mode=1", name="H264/90000/1")
        + "a=rtcp-fb:120 nack pli\r\n",
        120,
        id="repeated-and-odd-attributes",
    ),
]


@pytest.mark.parametrize(("video", "expected"), SEVERAL_H264)
def test_answer_and_ffmpeg_agree_on_one_offered_h264_format(video: str, expected: int) -> None:
    """Whatever the offer lists, the answer and FFmpeg's SDP name the same payload type, with
    that format's own packetization mode, and keyframe feedback only for it."""
    decision = decide_video(offer(video + "a=sendonly\r\n"))
    assert isinstance(decision, VideoAccepted), decision
    assert decision.format.payload_type == expected
    mode = decision.format.packetization_mode
    section = video_answer_section(decision, 30002, "192.0.2.10", sendrecv=False)
    assert section[0].split()[3:] == [str(expected)]
    assert [line for line in section if line.startswith("a=rtpmap:")] == [
        f"a=rtpmap:{expected} H264/90000"
    ]
    (fmtp,) = [line for line in section if line.startswith("a=fmtp:")]
    assert fmtp.startswith(f"a=fmtp:{expected} ") and f"packetization-mode={mode}" in fmtp
    feedback = [line for line in section if line.startswith("a=rtcp-fb:")]
    assert feedback and all(line.startswith(f"a=rtcp-fb:{expected} ") for line in feedback)
    ffmpeg = receiver_sdp(decision, 40000).splitlines()
    assert f"m=video 40000 RTP/AVP {expected}" in ffmpeg
    assert f"a=rtpmap:{expected} H264/90000" in ffmpeg
    assert all(line.startswith(f"a=fmtp:{expected} ") for line in ffmpeg if "fmtp" in line)


def test_mode_1_wins_over_an_earlier_mode_0_and_the_first_mode_1_over_later_ones() -> None:
    video = (
        "m=video 5000 RTP/AVP 96 97 98\r\n"
        + _h264(96, "packetization-mode=0")
        + _h264(97, "profile-level-id=42e01f;packetization-mode=1")
        + _h264(98, "profile-level-id=640028;packetization-mode=1")
    )
    decision = decide_video(offer(video))
    assert isinstance(decision, VideoAccepted)
    assert (decision.format.payload_type, decision.format.profile_level_id) == (97, "42e01f")
