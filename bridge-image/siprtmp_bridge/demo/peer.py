"""A minimal SIP peer for the demo: answers one call, plays a tone, hangs up after a while.

It is a separate process because pjsua allows one endpoint per process, and the bridge needs
its own. Run as ``python -m siprtmp_bridge.demo.peer --port P``; it prints ``READY`` when it
listens.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pjsua2 as pj

from siprtmp_bridge.sip.endpoint import stdout_to_stderr


class TonePeerCall(pj.Call):  # type: ignore[misc]
    def __init__(self, account: Any, call_id: int, frequency: int) -> None:
        super().__init__(account, call_id)
        self.frequency = frequency
        self.tone: Any = None
        self.answered_at: float | None = None
        self.disconnected = False

    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's callback name
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.answered_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.tone is None:
                    self.tone = pj.ToneGenerator()
                    self.tone.createToneGenerator(16000, 1)
                    tone = pj.ToneDesc()
                    tone.freq1 = self.frequency
                    tone.freq2 = 0
                    tone.on_msec = 1000
                    tone.off_msec = 0
                    tone.volume = 0
                    self.tone.play(pj.ToneDescVector([tone]), True)
                self.tone.startTransmit(self.getAudioMedia(index))


class TonePeerAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, frequency: int) -> None:
        super().__init__()
        self.frequency = frequency
        self.call: TonePeerCall | None = None

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        call = TonePeerCall(self, prm.callId, self.frequency)
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)
        self.call = call


def serve(port: int, frequency: int, seconds: float, wait_seconds: float) -> int:
    endpoint: Any = pj.Endpoint()
    with stdout_to_stderr():
        endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.logConfig.consoleLevel = 0
    config.logConfig.level = 0
    config.medConfig.ecTailLen = 0
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.port = port
    transport.boundAddress = "127.0.0.1"
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()
    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:tone@127.0.0.1:{port}"
    account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account_config.mediaConfig.transportConfig.port = 0
    account = TonePeerAccount(frequency)
    account.create(account_config)
    print("READY", flush=True)
    deadline = time.monotonic() + wait_seconds
    try:
        while time.monotonic() < deadline:
            endpoint.libHandleEvents(20)
            call = account.call
            if call is None or call.answered_at is None:
                continue
            if call.disconnected:
                break
            if time.monotonic() - call.answered_at > seconds:
                call.hangup(pj.CallOpParam(True))
                deadline = time.monotonic() + 2
    finally:
        # Every pjsua2 object must be gone before libDestroy() (pjsua asserts otherwise).
        if account.call is not None:
            account.call.tone = None
        account.call = call = None
        del account, call
        endpoint.libDestroy()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frequency", type=int, default=440)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--wait-seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    return serve(arguments.port, arguments.frequency, arguments.seconds, arguments.wait_seconds)


if __name__ == "__main__":
    sys.exit(main())
