"""Streams the big CDNs accept: destination profiles, the slate on an audio call (SIP as it is),
stereo AAC, and each recording checked against its profile's rules (tests/support/cdn_rules.py,
from the table the parser reads)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from siprtmp_bridge.video.slate import TEXT_BAND_HEIGHT, TEXT_TOP
from siprtmp_contract.outcome import ExitCode
from siprtmp_contract.profiles import PROFILES
from tests.conftest import call_spec
from tests.support.bridge_process import BridgeProcess
from tests.support.cdn_rules import cdn_problems, keyframes, video_bitrates
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import ffprobe
from tests.support.silent_callee import SilentCallee
from tests.support.sipp import SippPeer

TONE_HZ = 1000.0


def channel_tones(path: Path) -> list[tuple[float, float]]:
    """(dominant frequency, RMS level) of each audio channel of the recording."""
    with av.open(str(path)) as container:
        planes = [f.to_ndarray() for f in container.decode(container.streams.audio[0])]
        rate = container.streams.audio[0].sample_rate
    samples = np.concatenate(planes, axis=1)
    found = []
    for channel in samples:
        spectrum = np.abs(np.fft.rfft(channel))
        frequency = float(np.fft.rfftfreq(len(channel), 1 / rate)[int(np.argmax(spectrum))])
        found.append((frequency, float(np.sqrt(np.mean(channel**2)))))
    return found


def audio_bitrate(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        timed = [(p.dts, p.size) for p in container.demux(stream) if p.size and p.dts is not None]
        assert stream.time_base is not None
        seconds = float((timed[-1][0] - timed[0][0]) * stream.time_base)
    return sum(size for _, size in timed) * 8 / seconds


def slate_frames(path: Path) -> list[np.ndarray[Any, Any]]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def green_card(path: Path) -> Path:
    """A user's slate image: a 320x180 PNG of one green (``assert_the_users_green``)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=0x20C040:s=320x180",
         "-frames:v", "1", str(path)],
        check=True,
    )  # fmt: skip
    return path


def assert_the_users_green(picture: np.ndarray[Any, Any]) -> None:
    red, green, blue = (int(picture[..., c].mean()) for c in range(3))
    assert green > 150 and red < 70 and blue < 100, (red, green, blue)


def invite_sdp(peer: SippPeer) -> str:
    invite = peer.messages().split("INVITE sip:", 1)[1]
    return invite.split("\n\n", 1)[-1] if "\n\n" in invite else invite


def test_youtube_profile_gives_an_audio_call_a_titled_slate_from_its_first_packet(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    peer = tone_peer(5.0)
    spec = call_spec(
        peer.uri,
        rtmp_server,
        "youtube",
        profile="youtube",
        video={"slate": {"text": "Town hall: Q&A"}},
    )
    process = bridge(spec)
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0

    # SIP as without video: an ordinary audio offer, no delayed offer, no video m-line.
    offer = peer.messages()
    assert "m=audio" in offer and "m=video" not in offer
    video = process.final["video"]
    assert (video["mode"], video["source"]) == ("disabled", "slate"), video
    assert video["slateFrames"] > 40

    (recording,) = rtmp_server.recordings_of("youtube")
    assert cdn_problems(recording, PROFILES["youtube"]) == []
    # x264's own rate control: the still picture takes a few kb/s, which Twitch's rule refuses.
    assert any(
        p.startswith("video not at a constant") for p in cdn_problems(recording, PROFILES["twitch"])
    )
    found = keyframes(recording)
    assert found.first_video is not None and found.first_video < 0.3
    gaps = np.diff(found.times)
    # Every 2 s (20 frames; their times follow the audio clock's estimate of the stream).
    assert len(gaps) >= 2 and np.allclose(gaps, 2.0, atol=0.2), found.times
    probe = {s["codec_type"]: s for s in ffprobe(recording)["streams"]}
    assert (probe["audio"]["channels"], probe["audio"]["sample_rate"]) == (2, "48000")
    assert audio_bitrate(recording) > 96000  # the profile's 128 kb/s (a tone takes less)
    # The call's tone on both channels, at the same level.
    (left, right) = channel_tones(recording)
    assert abs(left[0] - TONE_HZ) < 10 and abs(right[0] - TONE_HZ) < 10
    assert left[1] > 0.05 and abs(left[1] - right[1]) < 0.01 * left[1], (left, right)
    # The title: white strokes in the dark band, the card's amber bar above it.
    picture = slate_frames(recording)[5]
    band = picture[TEXT_TOP : TEXT_TOP + TEXT_BAND_HEIGHT]
    white = (band.min(axis=2) > 200).mean()
    assert 0.03 < white < 0.5, white
    assert picture[180, 320, 0] > 200 and picture[180, 320, 2] < 80  # amber


def test_facebook_profile_over_rtmps_publishes_stereo_with_the_users_image(
    tone_peer: Callable[..., SippPeer],
    tls_rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    image = green_card(tmp_path / "card.png")
    peer = tone_peer(4.0)
    spec = call_spec(
        peer.uri,
        tls_rtmp_server,
        "facebook",
        profile="facebook",
        rtmpUrl=tls_rtmp_server.tls_url,
        video={"slate": {"imageFile": str(image)}},
    )
    process = bridge(spec, env=tls_rtmp_server.trusting_env)
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0

    (recording,) = tls_rtmp_server.recordings_of("facebook")
    assert cdn_problems(recording, PROFILES["facebook"]) == []
    gaps = np.diff(keyframes(recording).times)
    assert len(gaps) >= 1 and np.allclose(gaps, 2.0, atol=0.2), gaps
    (left, right) = channel_tones(recording)
    assert abs(left[0] - TONE_HZ) < 10 and abs(left[1] - right[1]) < 0.01 * left[1]
    picture = slate_frames(recording)[3]
    assert picture.shape[:2] == (360, 640)
    assert_the_users_green(picture)


def test_a_generic_stream_stays_audio_only_mono_and_fails_a_cdns_rules(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """Today's default, unchanged: the check itself tells a stream YouTube would not show."""
    peer = tone_peer(3.0)
    process = bridge(call_spec(peer.uri, rtmp_server, "plain"))
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert "video" not in process.final or process.final["video"] is None
    (recording,) = rtmp_server.recordings_of("plain")
    assert cdn_problems(recording, PROFILES["generic"]) == []
    assert cdn_problems(recording, PROFILES["youtube"]) == ["no video track"]
    assert "1 channels" in " ".join(cdn_problems(recording, PROFILES["facebook"]))


def test_a_twitch_destination_gives_the_call_a_constant_bitrate_slate(
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """The call's own destination names no profile; its second one Twitch, whose rules the
    stream, encoded once, then meets on both: a slate from the first packet, a keyframe every
    2 s, and constant bitrate (every second's video near the profile's rate)."""
    peer = tone_peer(7.0)
    spec = call_spec(peer.uri, rtmp_server, "own")
    spec["destinations"] = [
        {"rtmpUrl": rtmp_server.url, "rtmpStream": "twitch", "profile": "twitch"}
    ]
    process = bridge(spec)
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0
    assert "m=video" not in peer.messages()  # SIP as ever: the slate is the bridge's own
    twitch = PROFILES["twitch"]
    for stream in ("own", "twitch"):
        (recording,) = rtmp_server.recordings_of(stream)
        assert cdn_problems(recording, twitch) == [], stream
        assert len(video_bitrates(recording)) >= 5  # the band held for whole seconds
        gaps = np.diff(keyframes(recording).times)
        assert len(gaps) >= 2 and np.allclose(gaps, 2.0, atol=0.2), gaps
        probe = {s["codec_type"]: s for s in ffprobe(recording)["streams"]}
        assert probe["audio"]["channels"] == 2  # the profile's default
        assert audio_bitrate(recording) > 128000  # its 160 kb/s


def test_one_call_to_facebook_youtube_and_its_own_server_meets_each_ones_rules(
    tone_peer: Callable[..., SippPeer],
    tls_rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
) -> None:
    """The restream case: the call's own server (generic), YouTube over RTMP and Facebook over
    RTMPS (its own relay). Encoded once to the strictest of the three (Facebook's 2 s keyframes,
    stereo, a slate), each recording is judged by its own destination's rules."""
    peer = tone_peer(6.0)
    server = tls_rtmp_server
    spec = call_spec(peer.uri, server, "own")
    spec["destinations"] = [
        {"rtmpUrl": server.url, "rtmpStream": "youtube", "profile": "youtube"},
        {"rtmpUrl": server.tls_url, "rtmpStream": "facebook?s_sc=K3Y#x", "profile": "facebook"},
    ]
    process = bridge(spec, env=server.trusting_env)
    assert process.wait(30) == 0, process.stderr_text[-3000:]
    assert peer.wait(10) == 0
    assert "m=video" not in peer.messages()
    assert [d["state"] for d in process.final["destinations"]] == ["UNPUBLISHED"] * 3
    assert "K3Y" not in process.stderr_text + str(process.lines)
    for stream, profile in (("own", "generic"), ("youtube", "youtube"), ("facebook", "facebook")):
        (recording,) = server.recordings_of(stream)
        assert cdn_problems(recording, PROFILES[profile]) == [], stream
        gaps = np.diff(keyframes(recording).times)
        assert len(gaps) >= 2 and np.allclose(gaps, 2.0, atol=0.2), (stream, gaps)
        (left, right) = channel_tones(recording)
        assert abs(left[0] - TONE_HZ) < 10 and abs(left[1] - right[1]) < 0.01 * left[1], stream


@pytest.mark.parametrize(
    ("profiles", "line"),
    [
        ({"profile": "facebook"}, "spec.rtmpUrl: must be an rtmps:// URL for profile facebook"),
        (
            {
                "destinations": [
                    {"rtmpUrl": "rtmp://127.0.0.1/live", "rtmpStream": "b"},
                    {"rtmpUrl": "rtmp://127.0.0.1/live", "rtmpStream": "c", "profile": "facebook"},
                ]
            },
            "spec.destinations[1].rtmpUrl: must be an rtmps:// URL for profile facebook",
        ),
    ],
)
def test_facebook_with_rtmp_is_refused_before_anything_is_dialled(
    silent_callee: SilentCallee,
    rtmp_server: NginxRtmp,
    bridge: Callable[..., BridgeProcess],
    profiles: dict[str, Any],
    line: str,
) -> None:
    process = bridge(call_spec(silent_callee.uri, rtmp_server, "fb", **profiles))
    assert process.wait(20) == ExitCode.INVALID_SPEC
    assert line in process.stderr_text
    assert silent_callee.received_nothing()
    assert rtmp_server.recordings_of("fb") == []
