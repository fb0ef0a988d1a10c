"""``destinations[].rtmpStreamSecretRef``: the pod mounts each named Secret whole under
pod.STREAM_KEYS_DIR, the bridge reads a key from there (at start and on a live add) and masks
it, and the operator sends a live bridge only the references its pod can read. The real pods,
bridge and nginx-rtmp: tests/operator/test_operator_k8s_process.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprtmp_contract.pod import STREAM_KEYS_DIR
from siprtmp_contract.spec import SpecError, mounted_keys, parse_destinations, parse_spec
from siprtmp_operator.destinations import live_destinations
from siprtmp_operator.networking import NetworkPlan
from siprtmp_operator.pod import PodAttempt, build_pod
from siprtmp_operator.policy import stream_keys
from siprtmp_operator.settings import Settings
from siprtmp_operator.status import observe_pod

BASE = {"callee": "sip:1@h", "rtmpUrl": "rtmp://a/live", "rtmpStream": "k1"}
REF = {"name": "cdn", "key": "yt"}
KEY = "yt-key?s=SIG4471"
KEYED = {"rtmpUrl": "rtmp://b/live", "rtmpStreamSecretRef": REF}


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    (tmp_path / "cdn").mkdir()
    (tmp_path / "cdn" / "yt").write_text(KEY + "\n")  # kubectl --from-file keeps a newline
    return tmp_path


def test_a_destinations_key_is_read_from_its_mounted_secret_and_masked(keys_dir: Path) -> None:
    spec = parse_spec({**BASE, "destinations": [KEYED]}, stream_keys_dir=keys_dir)
    assert spec.destinations[1].publish_url == f"rtmp://b/live/{KEY}"
    assert spec.scrubber.text(f"to {KEY} and SIG4471") == "to *** and ***"
    # A live add reads from the same place.
    (later,) = parse_destinations([KEYED], "destinations", mounted_keys(keys_dir))
    assert later.rtmp_stream == KEY


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({**KEYED, "rtmpStream": "inline"}, "is an alternative to rtmpStream"),
        ({**KEYED, "rtmpStreamSecretRef": {"name": "cdn"}}, "must have a name and a key"),
        ({**KEYED, "rtmpStreamSecretRef": {"name": "cdn", "key": ".."}}, "must name a Secret"),
        ({**KEYED, "rtmpStreamSecretRef": {"name": "cdn", "key": "gone"}}, "cannot read"),
    ],
)
def test_a_bad_reference_is_refused_naming_it(keys_dir: Path, item: object, problem: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_destinations([item], "destinations", mounted_keys(keys_dir))
    assert error.value.field_path == "destinations[0].rtmpStreamSecretRef"
    assert problem in error.value.problem


def test_without_a_keys_directory_a_reference_cannot_be_read() -> None:
    with pytest.raises(SpecError, match="no stream keys directory was given"):
        parse_spec({**BASE, "destinations": [KEYED]})


def test_the_pod_mounts_each_named_secret_whole_and_is_read_back() -> None:
    spec = {
        **BASE,
        "destinations": [KEYED, {**KEYED, "rtmpStreamSecretRef": {"name": "cdn", "key": "b"}}],
    }
    plan = NetworkPlan(mode="PodNetwork", public_address_source="None")
    pod = build_pod(
        PodAttempt("b", "ns", "u", spec, 0, plan, Settings()), control_token="t", spec_secret="s"
    )
    container = pod["spec"]["containers"][0]
    assert container["args"][container["args"].index("--stream-keys-dir") + 1] == STREAM_KEYS_DIR
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"].startswith(STREAM_KEYS_DIR)]
    assert mount["mountPath"] == f"{STREAM_KEYS_DIR}/cdn"
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"] == {"secretName": "cdn", "defaultMode": 0o440}  # whole: no items
    assert observe_pod(pod).key_secrets == frozenset({"cdn"})
    assert (
        "--stream-keys-dir"
        not in build_pod(
            PodAttempt("b", "ns", "u", BASE, 0, plan, Settings()),
            control_token="t",
            spec_secret="s",
        )["spec"]["containers"][0]["args"]
    )


def test_a_live_bridge_is_sent_only_references_its_pod_mounts() -> None:
    other = {"rtmpUrl": "rtmp://c/live", "rtmpStreamSecretRef": {"name": "other", "key": "k"}}
    spec = {**BASE, "destinations": [KEYED, other]}
    wanted = live_destinations(spec, (), lambda _: None, frozenset({"cdn"}))
    assert wanted.body == {"destinations": [KEYED]}
    ((reason, message),) = wanted.left_out
    assert reason == "SecretNotUsable"
    assert message.startswith("spec.destinations[1] (rtmp://c/live/***): rtmpStreamSecretRef")
    assert "Secret other, which the running pod does not mount" in message
    # A key the operator cannot read is not checked for duplicate streams.
    assert stream_keys(spec) == ("rtmp://a:1935/live/k1",)
