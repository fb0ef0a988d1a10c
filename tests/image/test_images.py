"""The images as pods run them: non-root, runtime dependencies only. The demo call inside the
bridge image (read-only root filesystem, no capabilities, no network) proves pjsua2, PyAV and
the bridge work there; the operator image imports and runs the operator without the bridge's
media stack."""

from __future__ import annotations

import json
import re
import subprocess

IMAGE = "siprtmp/bridge:dev"  # built by scripts/build-images.sh (run by scripts/test.sh)
OPERATOR_IMAGE = "siprtmp/operator:dev"


def docker(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_image_config_is_non_root_with_the_bridge_as_entrypoint() -> None:
    inspected = docker("image", "inspect", IMAGE)
    assert inspected.returncode == 0, inspected.stderr
    config = json.loads(inspected.stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["sip-rtmp-bridge"]
    assert "8080/tcp" in config["ExposedPorts"]


#: The installers: they build the image's environment and leave it before it is copied.
INSTALLERS = {"pip", "setuptools"}

#: The distributions an image's environment holds, by name (pip is not in the image to ask).
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
)


def installed_packages(image: str) -> set[str]:
    listed = docker("run", "--rm", "--entrypoint", "python3", image, "-c", LIST_DISTRIBUTIONS)
    assert listed.returncode == 0, listed.stderr
    return {name.lower().replace("_", "-") for name in json.loads(listed.stdout)}


def test_only_runtime_dependencies_are_installed() -> None:
    installed = installed_packages(IMAGE)
    assert {"pjsua2-python", "av", "prometheus-client"} <= installed
    assert not {"kopf", "kubernetes", "pytest", "mypy", "ruff"} & installed
    assert "numpy" not in installed  # the demo measures its tone in pure Python
    assert not INSTALLERS & installed


def test_operator_image_runs_the_operator_without_the_media_stack() -> None:
    inspected = docker("image", "inspect", OPERATOR_IMAGE)
    assert inspected.returncode == 0, inspected.stderr
    config = json.loads(inspected.stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["sip-rtmp-operator"]
    installed = installed_packages(OPERATOR_IMAGE)
    assert {"kopf", "kubernetes", "prometheus-client"} <= installed
    assert not {"pjsua2-python", "av", "numpy", "pytest"} & installed
    assert not INSTALLERS & installed
    imported = docker(
        "run",
        "--rm",
        "--read-only",
        "--entrypoint",
        "python3",
        OPERATOR_IMAGE,
        "-c",
        "import siprtmp_operator.handlers, siprtmp_operator.cli",
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    helped = docker("run", "--rm", OPERATOR_IMAGE, "--help")
    assert helped.returncode == 0
    assert "SipRtmpBridge operator" in helped.stdout


def test_demo_call_runs_inside_a_locked_down_container() -> None:
    result = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        IMAGE,
        "demo",
        "--seconds",
        "3",
        "--frequency",
        "880",
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    match = re.search(r"demo: OK: .* ([\d.]+) s of it is a ([\d.]+) Hz tone", result.stdout)
    assert match, result.stdout
    assert abs(float(match.group(2)) - 880) < 5


def test_rtmps_relay_runs_in_the_image_with_a_ca_bundle() -> None:
    """RTMPS verification needs a trust store in the image, and the relay must start there
    (read-only, no network): a destination's tunnel starts it and is told that nothing
    listens."""
    locked_down = ["run", "--rm", "-i", "--network", "none", "--read-only", "--entrypoint"]
    counted = docker(
        *locked_down,
        "python",
        IMAGE,
        "-c",
        "import ssl; print(ssl.create_default_context().cert_store_stats()['x509_ca'])",
    )
    assert counted.returncode == 0, counted.stderr[-2000:]
    assert int(counted.stdout) > 50  # Debian's / python-slim's CA bundle
    relay = docker(
        *locked_down,
        "python",
        IMAGE,
        "-c",
        "from siprtmp_bridge.rtmp.rtmps_tunnel import RtmpsTunnel\n"
        "tunnel = RtmpsTunnel('rtmps://127.0.0.1:1/live/key')\n"
        "try:\n"
        "    tunnel.open(1)\n"
        "except OSError as error:\n"
        "    print(error)\n"
        "finally:\n"
        "    tunnel.close()",
    )
    assert relay.returncode == 0, relay.stderr[-2000:]
    assert relay.stdout.strip() == "connection to 127.0.0.1:1 failed: Connection refused"


def test_sip_tls_relay_starts_in_the_image() -> None:
    """SIP over TLS makes a per-run certificate with the openssl command and starts its relay:
    both must work in the image as a pod runs it (read-only root, /tmp an emptyDir)."""
    started = docker(
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
        "--entrypoint", "python", IMAGE, "-c",
        "from siprtmp_bridge.sip.tls_tunnel import SipTlsTunnel\n"
        "tunnel = SipTlsTunnel('127.0.0.1', 1, True)\n"
        "print(tunnel.route)\n"
        "print(tunnel.certificate.read_text().splitlines()[0])\n"
        "tunnel.close()",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    route, first_line = started.stdout.splitlines()
    assert route.startswith("sip:127.0.0.1:") and route.endswith(";transport=tls;lr"), route
    assert first_line == "-----BEGIN CERTIFICATE-----", started.stdout
