"""The account and the one call of a bridge process, reporting to the runner as plain events.

pjsua2 objects are kept alive here for exactly as long as pjsua may call back into them, and
released by ``close()`` before the endpoint is destroyed (pjmedia asserts otherwise).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from siprtmp_bridge.dtmf import KEY_DURATION_MS
from siprtmp_bridge.rtp.srtp import audio_profile, negotiated_suite, sdp_body
from siprtmp_bridge.sip.events import (
    CallEnded,
    CallMediaChanged,
    CallProgressed,
    DtmfReceived,
    Registered,
    SipEvent,
    SrtpNegotiated,
)
from siprtmp_bridge.sip.sdp_text import whole_sdp
from siprtmp_bridge.sip.states import (
    INV_CONFIRMED,
    INV_DISCONNECTED,
    INV_EARLY,
    InviteProgress,
    local_sends,
    remote_sends,
)
from siprtmp_bridge.sip.tls_tunnel import registers_past_the_relay
from siprtmp_contract.dtmf import DtmfMethod
from siprtmp_contract.spec import BridgeSpec

EventSink = Callable[[SipEvent], None]
AudioAttacher = Callable[[Any], None]
# (our SDP as pjsua made it, the far end's SDP) → our SDP to send instead, or None to keep it.
SdpRewriter = Callable[[str, str], "str | None"]

#: RFC 4028 session timers, offered in the INVITE (``Supported: timer``), never required. A far
#: end that wants them names the refresher in its answer; RFC 4028 §9 has it pick the UAC (the
#: bridge) when the UAC supports them. As refresher the bridge sends a refresh (UPDATE when the
#: far end allows it, else a re-INVITE) every half interval; one that goes unanswered (408) or
#: that the far end no longer knows (481), or an interval that expires unrefreshed, ends the
#: dialog as ``DialogLost``. The far end may lower the interval in its answer, down to the
#: floor that RFC 4028 and pjsip share (pjsip refuses less). 600 s, not pjsua's 1800: a dialog
#: lost behind an SBC that still relays media is noticed within about 10 minutes, for one
#: refresh every 5. Not a spec field: the far end, which knows its own needs, can ask for less.
#: Far ends that want no timer get no refreshes (ALWAYS would send them to UAs that never
#: asked); the RTP inactivity and hold limits watch those calls.
SESSION_EXPIRES_SECONDS = 600
MIN_SESSION_EXPIRES_SECONDS = 90
_BRIDGED_MEDIA = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
_DTMF_METHODS = {
    DtmfMethod.RFC2833: pj.PJSUA_DTMF_METHOD_RFC2833,
    DtmfMethod.INFO: pj.PJSUA_DTMF_METHOD_SIP_INFO,
}
# connection.mediaEncryption: pjsua's OPTIONAL offers a=crypto in RTP/AVP, MANDATORY RTP/SAVP.
_SRTP_USE = {
    "disable": pj.PJMEDIA_SRTP_DISABLED,
    "allow": pj.PJMEDIA_SRTP_OPTIONAL,
    "require": pj.PJMEDIA_SRTP_MANDATORY,
}


def account_config(
    spec: BridgeSpec,
    rtp_port: int | None = None,
    relay_route: str | None = None,
    srtp_offered: bool = False,
) -> Any:
    """The pjsua2 account for the spec's connection: identity, registrar, proxy, credentials.

    ``rtp_port`` is a pair claimed for this bridge (``RtpPortClaim``); without one, pjsua picks
    from the spec's window itself. ``relay_route``: the SIP TLS relay (sip/tls_relay.py), the
    first proxy of every request, which the far end never sees. ``srtp_offered``: offer RTP/SAVP
    whatever ``mediaEncryption`` says (``allow``'s second INVITE, lifecycle.RedialWithSrtp).
    """
    connection, nat = spec.connection, spec.nat
    config = pj.AccountConfig()
    domain = connection.sip_domain or spec.callee.split("@")[-1].split(";")[0]
    user = connection.sip_login or "sip-rtmp-bridge"
    config.idUri = f"sip:{user}@{domain}"
    transport_param = (
        f";transport={connection.sip_transport}" if connection.sip_transport != "udp" else ""
    )
    if connection.sip_register_required:
        config.regConfig.registrarUri = (
            f"sip:{connection.sip_domain}:{connection.port_or_default}{transport_param}"
        )
        config.regConfig.timeoutSec = 300
        config.regConfig.retryIntervalSec = 0
        if relay_route and registers_past_the_relay(spec):
            config.regConfig.proxyUse = 0  # the registrar is not the relay's first hop
    proxies = [relay_route, connection.sip_outbound_proxy]
    if any(proxies):
        config.sipConfig.proxies = pj.StringVector([proxy for proxy in proxies if proxy])
    if connection.sip_password is not None and connection.auth_user:
        config.sipConfig.authCreds.append(
            pj.AuthCredInfo(
                "digest", spec.digest_realm, connection.auth_user, 0, connection.sip_password
            )
        )
    calls = config.callConfig
    calls.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
    calls.timerSessExpiresSec = SESSION_EXPIRES_SECONDS
    calls.timerMinSESec = MIN_SESSION_EXPIRES_SECONDS
    media = config.mediaConfig
    first_port = rtp_port or nat.rtp_port_min
    media.transportConfig.port = first_port
    media.transportConfig.portRange = nat.rtp_port_max - first_port
    if nat.bind_address != "0.0.0.0":
        media.transportConfig.boundAddress = nat.bind_address
    if nat.public_address:
        media.transportConfig.publicAddress = nat.public_address
    # RTCP on the RTP port (when the far end agrees) refreshes the NAT binding of the RTP port.
    media.rtcpMuxEnabled = True
    media.srtpUse = _SRTP_USE["require" if srtp_offered else connection.media_encryption]
    # SDES keys travel in the SDP over whatever transport the call uses (UDP and TCP too), as
    # trunks and softphones send them; keys only (no DTLS-SRTP, which needs no SDP keys).
    media.srtpSecureSignaling = 0
    media.srtpOpt.keyings = pj.IntVector([pj.PJMEDIA_SRTP_KEYING_SDES])
    if nat.keep_alive_seconds > 0:
        # Lets the bridge's own keep-alive socket share the RTP port (rtp/keepalive.py).
        options = pj.SockOptParams()
        options.sockOpts = pj.SockOptVector([_reuse_address()])
        media.transportConfig.sockOptParams = options
    nat_config = config.natConfig
    nat_config.udpKaIntervalSec = nat.keep_alive_seconds
    nat_config.sipStunUse = (
        pj.PJSUA_STUN_USE_DEFAULT if nat.stun_servers else pj.PJSUA_STUN_USE_DISABLED
    )
    nat_config.mediaStunUse = nat_config.sipStunUse
    if nat.public_address or nat.bind_address != "0.0.0.0":
        # The address is known: do not let pjsua rewrite Contact from Via "received".
        nat_config.contactRewriteUse = 0
        nat_config.viaRewriteUse = 0
        nat_config.sdpNatRewriteUse = 0
    return config


@functools.cache
def _reuse_address() -> Any:
    """SO_REUSEADDR=1 as a pjsua2 socket option that lives as long as the process.

    A SockOpt's copies keep pointing at the original's value (``setOptValInt`` stores a pointer
    to its own member), and pjsua reads it only when it binds the call's RTP socket. Built in
    a function that returns, the value was freed by then: in a pod the RTP socket came up
    without SO_REUSEADDR and the keep-alive could not share its port (the real-node tier).
    """
    option = pj.SockOpt()
    option.level = socket.SOL_SOCKET
    option.optName = socket.SO_REUSEADDR
    option.setOptValInt(1)
    return option


def _is_received_message(event: Any) -> bool:
    """Whether a state change was caused by a message from the far end (not a timer or error)."""
    if event.type == pj.PJSIP_EVENT_RX_MSG:
        return True
    return bool(
        event.type == pj.PJSIP_EVENT_TSX_STATE and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG
    )


def _received_sdp(event: Any) -> str | None:
    """The SDP of the message from the far end that caused ``event``, if it carried one."""
    if not _is_received_message(event):
        return None
    if event.type == pj.PJSIP_EVENT_RX_MSG:
        return sdp_body(str(event.body.rxMsg.rdata.wholeMsg))
    return sdp_body(str(event.body.tsxState.src.rdata.wholeMsg))


def _is_far_end_bye(event: Any) -> bool:
    """Whether a disconnect was caused by a BYE from the far end: the state change of a BYE
    transaction we serve, on a received message (pjsip answers it 200 and disconnects)."""
    if event.type != pj.PJSIP_EVENT_TSX_STATE:
        return False
    change = event.body.tsxState
    transaction = change.tsx
    return bool(
        change.type == pj.PJSIP_EVENT_RX_MSG
        and str(transaction.method) == "BYE"
        and transaction.role == pj.PJSIP_ROLE_UAS
    )


class BridgeAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, emit: EventSink) -> None:
        super().__init__()
        self.emit = emit

    def onRegState(self, prm: Any) -> None:  # noqa: N802 - pjsua2's callback name
        info = self.getInfo()
        if prm.code // 100 == 1:
            return
        self.emit(
            Registered(
                ok=prm.code // 100 == 2 and info.regIsActive,
                status_code=prm.code,
                reason=str(prm.reason),
            )
        )


class BridgeCall(pj.Call):  # type: ignore[misc]
    """The call; its audio is handed to ``attach_audio`` whenever pjsua (re)creates it."""

    def __init__(
        self,
        account: BridgeAccount,
        emit: EventSink,
        attach_audio: AudioAttacher,
        rewrite_sdp: SdpRewriter | None = None,
    ) -> None:
        super().__init__(account)
        self.emit = emit
        self.attach_audio = attach_audio
        self.rewrite_sdp = rewrite_sdp
        self.was_answered = False
        self.got_response = False
        self.audio_index = 0
        # The latest SDP each side sent: which SRTP suite the audio runs (srtp.py).
        self.local_sdp = ""
        self.remote_sdp = ""
        self.srtp = SrtpNegotiated(None)

    def _note_sdp(self, local: str | None = None, remote: str | None = None) -> None:
        self.local_sdp = local or self.local_sdp
        self.remote_sdp = remote or self.remote_sdp
        srtp = SrtpNegotiated(
            negotiated_suite(self.local_sdp, self.remote_sdp), audio_profile(self.remote_sdp)
        )
        if srtp != self.srtp:
            self.srtp = srtp
            self.emit(srtp)

    def onCallTsxState(self, prm: Any) -> None:  # noqa: N802
        """A response within the call (a re-INVITE's answer) may carry the far end's SDP."""
        if (remote := _received_sdp(prm.e)) is not None:
            self._note_sdp(remote=remote)

    def onCallState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()
        if (remote := _received_sdp(prm.e)) is not None:
            self._note_sdp(remote=remote)
        if INV_EARLY <= info.state <= INV_CONFIRMED or _is_received_message(prm.e):
            self.got_response = True
        if info.state == INV_CONFIRMED:
            self.was_answered = True
        if info.state == INV_DISCONNECTED:
            self.emit(
                CallEnded(
                    status_code=info.lastStatusCode,
                    reason=str(info.lastReason),
                    got_response=self.got_response,
                    was_answered=self.was_answered,
                    bye_received=_is_far_end_bye(prm.e),
                    remote_sdp=self.remote_sdp,
                )
            )
            return
        has_media = any(media.status in _BRIDGED_MEDIA for media in info.media)
        self.emit(
            CallProgressed(
                InviteProgress(info.state, info.lastStatusCode, early_media=has_media),
                reason=str(info.lastReason),
                sip_call_id=str(info.callIdString),
                got_response=self.got_response,
            )
        )

    def onCallSdpCreated(self, prm: Any) -> None:  # noqa: N802
        """Let the video side turn pjsua's disabled video slot into a live answer (video/)."""
        local, remote = whole_sdp(prm.sdp), whole_sdp(prm.remSdp)
        if self.rewrite_sdp is not None:
            rewritten = self.rewrite_sdp(local, remote)
            if rewritten is not None:
                prm.sdp.wholeSdp = local = rewritten
        self._note_sdp(local, remote if remote.strip() else None)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()  # keep referenced while iterating info.media (pjsua2 trap)
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            bridged = media.status in _BRIDGED_MEDIA
            remote_hold = media.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
            if bridged:
                self.audio_index = index
                self.attach_audio(self.getAudioMedia(index))
            self.emit(
                CallMediaChanged(
                    bridged=bridged,
                    remote_sending=bridged and remote_sends(media.dir),
                    remote_hold=remote_hold,
                    codec=self._codec(index) if bridged else None,
                    local_sending=bridged and local_sends(media.dir),
                    rtp_path=self._rtp_path(index) if bridged else None,
                )
            )
            return

    def _rtp_path(self, index: int) -> tuple[int, str] | None:
        """(local RTP port, far end's RTP address) of the audio stream."""
        try:
            local = self.getMedTransportInfo(index).localRtpName
            remote = self.getStreamInfo(index).remoteRtpAddress
        except pj.Error:
            return None
        return int(str(local).rpartition(":")[2]), str(remote)

    def _codec(self, index: int) -> str | None:
        try:
            stream = self.getStreamInfo(index)
        except pj.Error:
            return None
        return f"{stream.codecName}/{stream.codecClockRate}"

    def send_info(self, content_type: str, body: str) -> bool:
        """A SIP INFO within the call (e.g. a keyframe request); False when pjsua refuses
        (another INFO still pending, the call ending)."""
        parameters = pj.CallSendRequestParam()
        parameters.method = "INFO"
        parameters.txOption.contentType = content_type
        parameters.txOption.msgBody = body
        try:
            self.sendRequest(parameters)
        except pj.Error:
            return False
        return True

    def send_key(self, key: str, method: DtmfMethod) -> None:
        """One key, now: an RFC 2833 event in the RTP stream, or one SIP INFO whose
        ``application/dtmf-relay`` body (``Signal=``, ``Duration=``) pjsua writes. Raises
        pj.Error when pjsua refuses (no telephone-event negotiated, the call ending)."""
        parameters = pj.CallSendDtmfParam()
        parameters.method = _DTMF_METHODS[method]
        parameters.digits = key
        parameters.duration = KEY_DURATION_MS
        self.sendDtmf(parameters)

    def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
        """A key from the far end, once per key: pjsua 2.15 reports both RFC 2833 events (in
        the payload type of our offer) and ``application/dtmf-relay`` INFOs (which it answers
        200) here; ``onDtmfEvent`` would repeat an RTP key for every packet of it."""
        self.emit(DtmfReceived(str(prm.digit).upper()))

    def audio_buffer_ms(self) -> float | None:
        """How much audio the jitter buffer holds right now (ms), None before the stream is
        up: its frames times the codec's frame time. Averaged over time this is how long a
        packet waits in it (Little's law), which pjsua's ``avgDelayMsec`` is not: that is
        sampled after arrivals only, and averaged since the stream started."""
        try:
            stat = self.getStreamStat(self.audio_index)
            info = self.getStreamInfo(self.audio_index).audCodecParam.info
        except pj.Error:
            return None
        frame_ms = info.frameLen / max(1, info.frameLenDenum)
        return float(stat.jbuf.size * frame_ms)

    def rtp_packets_received(self) -> tuple[int, int, int]:
        """(packets, lost, jitter µs) received on the audio stream: for inactivity and metrics."""
        try:
            stat = self.getStreamStat(self.audio_index)
        except pj.Error:
            return (0, 0, 0)
        rx = stat.rtcp.rxStat
        return (int(rx.pkt), int(rx.loss), int(rx.jitterUsec.last))
