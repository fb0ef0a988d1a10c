"""The web console in real headless Chromium, against the operator's REST API, the real control
plane, and the real bridge (run behind its pod by LocalKubelet) calling SIPp and publishing to
nginx-rtmp. DTMF typed in the page is proven at SIPp's RTP port: tshark decodes the RFC 2833
events on the wire.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from siprtmp_bridge.demo.ports import free_port
from siprtmp_operator.api.manifests import resource_name
from tests.operator.conftest import API_NAMESPACE, API_TOKEN, run_pod
from tests.operator.k8s_harness import LocalKubelet, wait_for
from tests.support.browser import headless_chromium
from tests.support.capture import LoopbackCapture, pressed_keys
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.recording import measure_recording
from tests.support.sipp import SippPeer

if TYPE_CHECKING:
    from tests.operator.conftest import Cluster

pytestmark = pytest.mark.k8s

#: What the form does not ask for: every socket of the bridge on loopback.
LOOPBACK_NAT = {"nat": {"bindAddress": "127.0.0.1", "rtpPortMin": 30000, "rtpPortMax": 40000}}


def open_console(browser: WebDriver, cluster: Cluster, token: str = API_TOKEN) -> None:
    browser.get(f"{cluster.operator.api_url}/console/")
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()


def fill(browser: WebDriver, values: dict[str, str]) -> None:
    form = browser.find_element(By.ID, "startup-form")
    for name, value in values.items():
        element = form.find_element(By.NAME, name)
        if element.tag_name == "textarea":
            browser.find_element(By.CSS_SELECTOR, "#startup-form summary").click()
        element.clear()
        element.send_keys(value)


def message(browser: WebDriver, contains: str, timeout: float = 30) -> str:
    def shown(driver: WebDriver) -> str | None:
        text = str(driver.find_element(By.ID, "message").text)
        return text if contains in text else None

    try:
        return str(WebDriverWait(browser, timeout).until(shown))
    except Exception as exc:
        text = browser.find_element(By.ID, "message").text
        raise AssertionError(f"message never said {contains!r}; it says {text!r}") from exc


def row_showing(
    browser: WebDriver, call_id: str, call: str, stream: str, timeout: float = 60
) -> WebElement:
    """The call's table row once the poller shows both states."""
    selector = f'tr[data-call-id="{call_id}"]'

    def shown(driver: WebDriver) -> WebElement | None:
        for row in driver.find_elements(By.CSS_SELECTOR, selector):
            cells = (
                row.find_element(By.CSS_SELECTOR, "td.call-status").text,
                row.find_element(By.CSS_SELECTOR, "td.stream-status").text,
            )
            if cells == (call, stream):
                return row
        return None

    try:
        row = cast(WebElement, WebDriverWait(browser, timeout).until(shown))
    except Exception as exc:
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, selector)]
        raise AssertionError(f"{call_id} never showed {call}/{stream}; rows: {rows}") from exc
    return row


def test_console_starts_a_call_shows_it_live_sends_dtmf_and_hangs_up(
    cluster: Cluster,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    peer = tone_peer(20.0, "uas_dtmf.xml")
    call_id = f"console-{uuid.uuid4().hex[:8]}"
    name = resource_name(call_id)
    on_the_wire = f"udp port {peer.port} or udp port {peer.media_port}"
    with (
        LoopbackCapture(tmp_path / "console.pcap", on_the_wire) as capture,
        headless_chromium(tmp_path / "browser") as browser,
    ):
        open_console(browser, cluster)
        fill(
            browser,
            {
                "callee": peer.uri,
                "rtmpUrl": rtmp_server.url,
                "rtmpStream": "console",
                "callId": call_id,
                "connection.sipLogin": "console-user",
                "connection.sipPassword": "console-secret-pw",
                "extra": json.dumps(LOOPBACK_NAT),
            },
        )
        browser.find_element(By.ID, "startup").click()
        message(browser, f"Call {call_id} started: NEW / PENDING")
        row_showing(browser, call_id, "NEW", "PENDING", timeout=10)

        kubelet = run_pod(cluster, kubelets, tmp_path, API_NAMESPACE, f"{name}-bridge-0")
        row = row_showing(browser, call_id, "ESTABLISHED", "PUBLISHING")
        assert "Streaming" in row.find_element(By.CSS_SELECTOR, "td.phase").text
        browser.save_screenshot(str(tmp_path / "console-streaming.png"))  # for a human look

        row.find_element(By.CSS_SELECTOR, "input.dtmf-digits").send_keys("7*3")
        row.find_element(By.CSS_SELECTOR, "button.dtmf-send").click()
        message(browser, f"DTMF 7*3 sent to {call_id}")
        wait_for(
            "the console's DTMF on the wire",
            lambda: "7*3" in pressed_keys(capture, peer.media_port),
            timeout=20,
            interval=0.5,
        )

        row.find_element(By.CSS_SELECTOR, "button.hangup").click()
        message(browser, f"Hanging up {call_id}")
        WebDriverWait(browser, 60).until(
            lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-call-id="{call_id}"]')
        )
    assert cluster.bridge(API_NAMESPACE, name) is None
    assert kubelet.exit_code == 0  # SIGTERM: BYE sent, stream flushed
    assert peer.wait(10) == 0  # SIPp's scenario ends only when our BYE arrives
    assert "console-secret-pw" not in (kubelet.dir / "bridge.log").read_text()
    (recording,) = rtmp_server.recordings_of("console")
    assert abs(measure_recording(recording).frequency_hz - 1000) < 5


def test_console_shows_refusals_and_marks_the_field(cluster: Cluster, tmp_path: Path) -> None:
    with headless_chromium(tmp_path / "browser") as browser:
        open_console(browser, cluster, token="not-the-token-at-all")
        message(browser, "The API refused the token")
        open_console(browser, cluster)
        fill(
            browser,
            {
                "callee": "sip:nobody@pbx.example.test",
                "rtmpUrl": "http://not-rtmp.example.test/live",
                "rtmpStream": "refused",
            },
        )
        browser.find_element(By.ID, "startup").click()
        assert message(browser, "rtmpUrl: ").startswith("rtmpUrl: must be an rtmp://")
        rtmp_url = browser.find_element(By.NAME, "rtmpUrl")
        assert rtmp_url.get_attribute("aria-invalid") == "true"
        assert browser.find_element(By.NAME, "callee").get_attribute("aria-invalid") == "false"
        fill(browser, {"rtmpUrl": "rtmp://rtmp.example.test/live", "extra": "{oops"})
        browser.find_element(By.ID, "startup").click()
        message(browser, "extra: not valid JSON")
        assert browser.find_element(By.NAME, "extra").get_attribute("aria-invalid") == "true"
        logs: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
        # No script errors (the 4xx answers themselves are logged by Chromium as network errors).
        assert not [entry for entry in logs if "Uncaught" in str(entry.get("message"))], logs


def destination_row(browser: WebDriver, key: str, state: str, timeout: float = 60) -> WebElement:
    """The destination's row once the poller shows it in ``state`` with bytes sent."""
    selector = f'#destinations tr[data-destination="{key}"]'

    def shown(driver: WebDriver) -> WebElement | None:
        for row in driver.find_elements(By.CSS_SELECTOR, selector):
            cells = (
                row.find_element(By.CSS_SELECTOR, "td.destination-state").text,
                row.find_element(By.CSS_SELECTOR, "td.destination-bytes").text,
            )
            if cells[0] == state and int(cells[1] or 0) > 0:
                return row
        return None

    try:
        return cast(WebElement, WebDriverWait(browser, timeout).until(shown))
    except Exception as exc:
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#destinations tr")]
        raise AssertionError(f"{key} never showed {state}; rows: {rows}") from exc


def reported_names(cluster: Cluster, name: str) -> list[str | None]:
    """The names of the destinations the bridge reports (None: the call's own)."""
    obj = cluster.bridge(API_NAMESPACE, name) or {}
    return [d.get("name") for d in (obj.get("status") or {}).get("destinations") or []]


def test_console_adds_a_destination_to_a_live_call_shows_it_publishing_and_removes_it(
    cluster: Cluster,
    kubelets: list[LocalKubelet],
    tmp_path: Path,
    tone_peer: Callable[..., SippPeer],
    rtmp_server: NginxRtmp,
) -> None:
    """A live call's destinations in the page: the one added there is published to by the
    real bridge (its state and bytes come from the bridge's report), its key never shown;
    removed there, the bridge closes it and the call goes on."""
    key = "console-push-key?sig=pagesecret7"
    second = NginxRtmp(tmp_path / "second-nginx", free_port()).start()
    peer = tone_peer(30.0, "uas_tone_wait_bye.xml")
    call_id = f"console-push-{uuid.uuid4().hex[:8]}"
    name = resource_name(call_id)
    try:
        with headless_chromium(tmp_path / "browser") as browser:
            open_console(browser, cluster)
            fill(
                browser,
                {
                    "callee": peer.uri,
                    "rtmpUrl": rtmp_server.url,
                    "rtmpStream": "console-main",
                    "callId": call_id,
                    "extra": json.dumps(LOOPBACK_NAT),
                },
            )
            browser.find_element(By.ID, "startup").click()
            message(browser, f"Call {call_id} started")
            kubelet = run_pod(cluster, kubelets, tmp_path, API_NAMESPACE, f"{name}-bridge-0")
            row = row_showing(browser, call_id, "ESTABLISHED", "PUBLISHING")
            row.find_element(By.CSS_SELECTOR, "button.show-destinations").click()
            destination_row(browser, "primary", "PUBLISHING")

            form = browser.find_element(By.ID, "push-form")
            form.find_element(By.NAME, "rtmpUrl").send_keys(second.url)
            form.find_element(By.NAME, "rtmpStream").send_keys(key)
            form.find_element(By.NAME, "name").send_keys("second")
            browser.find_element(By.ID, "push-add").click()
            message(browser, f"Destination second added to {call_id}: {second.url}/***")
            added = destination_row(browser, "second", "PUBLISHING")
            assert added.find_element(By.CSS_SELECTOR, "td.destination-url").text == (
                f"{second.url}/***"
            )
            browser.save_screenshot(str(tmp_path / "console-destinations.png"))
            assert "pagesecret7" not in browser.page_source
            time.sleep(3)  # a few seconds of tone at the second server

            added.find_element(By.CSS_SELECTOR, "button.push-remove").click()
            message(browser, f"Destination second removed from {call_id}")
            WebDriverWait(browser, 30).until(
                lambda d: (
                    not d.find_elements(
                        By.CSS_SELECTOR, '#destinations tr[data-destination="second"]'
                    )
                )
            )
            obj = cluster.bridge(API_NAMESPACE, name)
            assert obj is not None and obj["status"]["phase"] == "Streaming"
            wait_for(
                "the bridge closed the second destination",
                lambda: reported_names(cluster, name) == [None],
                timeout=20,
            )
            row.find_element(By.CSS_SELECTOR, "button.hangup").click()
            message(browser, f"Hanging up {call_id}")
            WebDriverWait(browser, 60).until(
                lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-call-id="{call_id}"]')
            )
        assert kubelet.exit_code == 0
        assert peer.wait(10) == 0
        assert "pagesecret7" not in (kubelet.dir / "bridge.log").read_text()
        assert "pagesecret7" not in cluster.operator.log_text()
    finally:
        second.stop()
    (joined,) = second.recordings_of("console-push-key")
    tone = measure_recording(joined)
    assert abs(tone.frequency_hz - 1000) < 5 and tone.tone_seconds > 2.0
