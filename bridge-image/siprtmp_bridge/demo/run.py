"""``sip-rtmp-bridge demo``: one real call through the real bridge, with no cluster and no setup.

A tone-playing SIP peer (pjsua2, in a child process) and an RTMP receiver (FFmpeg's server mode)
on loopback; the bridge calls the peer and publishes; the receiver decodes what arrived and the
demo prints the tone it measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

from siprtmp_bridge.demo.analysis import ToneMeasurement
from siprtmp_bridge.demo.ports import free_port
from siprtmp_bridge.service import serve_one_call
from siprtmp_contract.spec import parse_spec

FREQUENCY_TOLERANCE_HZ = 5.0


def run_demo(seconds: float, frequency: float) -> int:
    sip_port = free_port()
    rtmp_port = free_port()
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "siprtmp_bridge.demo.receiver",
            f"rtmp://127.0.0.1:{rtmp_port}/live/demo",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    peer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "siprtmp_bridge.demo.peer",
            "--port",
            str(sip_port),
            "--frequency",
            str(int(frequency)),
            "--seconds",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None
        if peer.stdout.readline().strip() != "READY":
            print("demo: the tone peer did not start", file=sys.stderr)
            return 1
        spec = parse_spec(
            {
                "callee": f"sip:tone@127.0.0.1:{sip_port}",
                "rtmpUrl": f"rtmp://127.0.0.1:{rtmp_port}/live",
                "rtmpStream": "demo",
                "hasAudio": "false",
                "rtmpReconnectTimeoutSeconds": 5,
                "nat": {"bindAddress": "127.0.0.1"},
            }
        )
        print(
            f"demo: calling the tone peer at {spec.callee}, publishing to "
            f"{spec.redacted_publish_url}",
            file=sys.stderr,
        )
        # Status lines go to stderr: stdout carries only the demo's verdict.
        code = serve_one_call(spec, threading.Event(), None, None, status_lines=sys.stderr)
    finally:
        stop_child(peer)
    output, _ = receiver.communicate(timeout=35)
    return report(json.loads(output or '{"error": "no output"}'), frequency, code)


def stop_child(child: subprocess.Popen[Any]) -> None:
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def report(result: dict[str, Any], frequency: float, bridge_exit: int) -> int:
    if "error" in result:
        print(f"demo: FAILED, nothing decoded at the receiver ({result['error']})")
        return 1
    tone = ToneMeasurement(**result)
    ok = bridge_exit == 0 and abs(tone.frequency_hz - frequency) < FREQUENCY_TOLERANCE_HZ
    verdict = "OK" if ok else "FAILED"
    print(
        f"demo: {verdict}: the RTMP receiver decoded {tone.total_seconds:.2f} s of "
        f"{tone.codec.upper()} at {tone.sample_rate} Hz; {tone.tone_seconds:.2f} s of it is a "
        f"{tone.frequency_hz:.1f} Hz tone (the peer played {frequency:.1f} Hz); "
        f"bridge exit code {bridge_exit}"
    )
    return 0 if ok else 1
