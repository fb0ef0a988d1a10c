"""Every field of the ``SipRtmpBridge`` spec, declared once: name, JSON type, default, bounds,
enum, pattern, description and nesting.

The spec parser reads its defaults, bounds and known names from here; scripts/generate.py writes
the CRD's schema and docs/spec.md's tables from it, and the REST API its OpenAPI document and the
types it converts the seed's strings to (all through ``json_schema`` but the docs). A field added
here is one the bridge reads, the API server checks, the REST API documents and the docs
describe. Descriptions are Markdown (the CRD shows them without the backticks).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from siprtmp_contract.dtmf import MAX_DIGITS, SEQUENCE_PATTERN, DtmfMethod
from siprtmp_contract.profiles import DEFAULT_PROFILE, PROFILES

#: Characters that end a URI in a header or a log line. Written out rather than ``\s``, which
#: Python reads as any Unicode space and the API server (RE2) as ASCII ones only.
_SPACE = r"\t\n\v\f\r "
#: A SIP URI's user part as RFC 3261 writes it: unreserved, user-unreserved and ``%`` escapes
#: (a ``#`` is written ``%23``; pjsip refuses it bare).
USER_PART = r"[A-Za-z0-9_.!~*'()&=+$,;?/%-]+"
_HOST = rf'([^{_SPACE}<>"@;:\[\]]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{{1,5}})?(;[^{_SPACE}<>"]*)?'
_USER_AT = rf'[^{_SPACE}<>"@]+@'
#: ``sip:``/``sips:`` URI, with or without a user.
SIP_URI = rf"sips?:({_USER_AT})?{_HOST}"
#: ``user@host``: the bridge calls ``sip:user@host``. No ``:`` in its user, so that no
#: ``sip:``-prefixed string is one.
SIP_ADDRESS = rf'[^{_SPACE}<>"@:]+@{_HOST}'
#: What ``callee`` may be: the bridge's parser and the CRD's pattern are this one expression
#: (Python's ``re.fullmatch``; the CRD anchors it), so they admit the same callees. The three
#: forms are told apart by their start (``sip:``/``sips:``; a ``@``; neither), as the parser
#: tells them apart.
CALLEE = rf"{SIP_URI}|{SIP_ADDRESS}|{USER_PART}"

#: A port, 1 to 65535, as its digits (no leading zero).
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_HOST_NAME = r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]"
_DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
_NO_SPACE = rf"^[^{_SPACE}]+$"
_IP = r"[0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]+"
#: What the slate's built-in font draws (video/font.py); letters in either case.
SLATE_TEXT_PATTERN = r"^[A-Za-z0-9 .,:;!?'()&+/#@-]*$"
#: Names pjsua's audio-only build knows, as they appear in its codec ids ("PCMU/8000/1").
KNOWN_CODECS = ("PCMU", "PCMA", "G722", "speex/8000", "speex/16000", "speex/32000", "iLBC", "GSM")
#: The names a resource may give a codec: the known ones, ``ulaw``/``alaw`` as SIP servers write
#: them, with or without their clock rate ("PCMU/8000/1", "G722/16000", "speex" for speex/16000).
#: The CRD's pattern and the bridge's reading of a resource (``canonical_codec``) are this one
#: expression; the REST API takes it in any case, and ``g711u``/``g711a`` too.
CODEC_PATTERN = (
    r"^((PCMU|PCMA|pcmu|pcma|ulaw|alaw|iLBC|GSM)(/8000(/1)?)?|G722(/(8000|16000)(/1)?)?"
    r"|speex(/(8000|16000|32000)(/1)?)?)$"
)
#: A codec's name (before its clock rate), lower case, → the bridge's name of it.
_CODEC_NAMES = {
    **{name.lower(): name for name in ("PCMU", "PCMA", "G722", "iLBC", "GSM")},
    **{"ulaw": "PCMU", "alaw": "PCMA", "g711u": "PCMU", "g711a": "PCMA"},
}


def canonical_codec(name: str, any_case: bool = True) -> str | None:
    """The bridge's name (one of KNOWN_CODECS) of a codec as ``CODEC_PATTERN`` writes one; with
    ``any_case`` (the REST API's and a bridge's own spec file's reading) also in any
    capitalisation, around spaces, and as ``g711u``/``g711a``. None when it is none of those."""
    written = name.strip() if any_case else name
    base, slash, rate = written.partition("/")
    if any_case:
        written = f"{_CODEC_NAMES.get(base.lower(), base)}{slash}{rate}"
    if not re.fullmatch(CODEC_PATTERN, written, re.IGNORECASE if any_case else 0):
        return None
    if base.lower() == "speex":
        return f"speex/{rate.partition('/')[0] or 16000}"
    return _CODEC_NAMES[base.lower()]


def _codec_any_case(value: Any) -> Any:
    return canonical_codec(value) if isinstance(value, str) else None


def _off_is_disabled(value: Any) -> Any:
    """``off``, and YAML 1.1's unquoted ``off`` (false), for ``disabled``."""
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return "disabled"
    return None


def _as_written(value: Any) -> Any:
    """Kept as written: DTMF keys given as a number (``1234``) would have lost their leading
    zeros, so no number is taken for them."""
    return value


@dataclass(frozen=True)
class Field:
    """One spec field. ``default`` is what the parser takes when the field is absent;
    ``crd_default`` also has the API server write it into the resource."""

    name: str
    type: str  # JSON Schema type: string, integer, number, boolean, object, array
    description: str = ""
    default: Any = None
    #: The default as the docs show it, when it is not simply ``default``.
    shown_default: str | None = None
    crd_default: bool = False
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    items: Field | None = None
    fields: tuple[Field, ...] = ()
    required: tuple[str, ...] = ()
    #: Where the field is declared: the resource's CRD, the docs' tables. A field outside the
    #: CRD is one the bridge reads from its own spec file only.
    in_crd: bool = True
    in_docs: bool = True
    #: How the REST API (and a bridge's own spec file) reads a value the resource would refuse,
    #: before the readings every field has (strings for numbers, booleans and lists, an enum's
    #: value in any case, a number for a string): the canonical value, or None to leave it to
    #: those. The resource itself takes only canonical values (siprtmp_contract.canonical).
    normalise: Callable[[Any], Any] | None = None
    #: Its value never appears in an error message (a stream key, a URL's credentials, a PIN).
    secret: bool = False

    def __post_init__(self) -> None:
        if self.type == "object" and self.items is not None:
            raise ValueError(f"{self.name}: an object has fields, not items")

    @property
    def json_default(self) -> Any:
        """``default`` as a JSON document writes it: a tuple as a list, 60.0 as 60."""
        value = self.default
        if isinstance(value, tuple):
            return list(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @property
    def bounds(self) -> tuple[int, int] | None:
        """The closed range of a number (an enum of numbers: its extremes)."""
        if self.type not in ("integer", "number"):
            return None
        if self.minimum is not None and self.maximum is not None:
            return self.minimum, self.maximum
        if self.enum:
            return min(self.enum), max(self.enum)
        return None  # read by nothing (networking.statusPort is the operator's own)


def _secret_ref(name: str, description: str) -> Field:
    return Field(
        name,
        "object",
        description,
        required=("name", "key"),
        fields=(
            Field("name", "string", pattern=_DNS_NAME, max_length=253, in_docs=False),
            Field("key", "string", pattern=_SECRET_KEY, max_length=253, in_docs=False),
        ),
    )


def _seconds(name: str, description: str, low: int, high: int, default: float | None) -> Field:
    return Field(
        name,
        "integer",
        description,
        default=default,
        shown_default=None if default is not None else "none",
        minimum=low,
        maximum=high,
    )


CONNECTION = Field(
    "connection",
    "object",
    "SIP account and transport. The password lives in a Secret, never here.",
    fields=(
        Field(
            "sipDomain",
            "string",
            "the SIP service (registrar, and where a bare `callee` user part goes): its domain, "
            "host name or IP address",
            shown_default="—",
            max_length=253,
            pattern=r"^(([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
            r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$",
        ),
        Field(
            "sipPort",
            "integer",
            "the SIP service's port",
            shown_default="5060 (5061 for TLS)",
            minimum=1,
            maximum=65535,
        ),
        Field(
            "sipLogin",
            "string",
            "the user in From/Contact, and the digest user unless `sipAuthenticationName` is set",
            shown_default="`sip-rtmp-bridge`",
            max_length=256,
            pattern=_NO_SPACE,
        ),
        Field(
            "sipAuthenticationName",
            "string",
            "the digest user name",
            shown_default="`sipLogin`",
            max_length=256,
            pattern=_NO_SPACE,
        ),
        Field(
            "sipPassword",
            "string",
            "in clear, for local use only; in a cluster use `sipPasswordSecretRef`",
            shown_default="—",
            in_crd=False,
            secret=True,
        ),
        _secret_ref(
            "sipPasswordSecretRef",
            "`{name, key}` of a Secret in the same namespace holding the SIP password; the "
            "operator mounts it and passes `--sip-password-file`",
        ),
        Field(
            "sipRegisterRequired",
            "boolean",
            "REGISTER (with digest auth) before calling; refused → `RegistrationFailed`, exit 3",
            default=False,
            crd_default=True,
        ),
        Field(
            "sipOutboundProxy",
            "string",
            "a SIP URI or `host[:port]`; every request goes through it (`;lr` added)",
            shown_default="—",
            max_length=512,
            pattern=rf'^(sips?:)?([^{_SPACE}<>"@]+@)?({_HOST_NAME})(:{_PORT})?(;[^{_SPACE}<>"]*)?$',
        ),
        Field(
            "sipTransport",
            "string",
            "the transport of every SIP request (`tls`: TLS 1.2 or 1.3)",
            default="udp",
            crd_default=True,
            enum=("udp", "tcp", "tls"),
        ),
        Field(
            "sipTlsVerifyServer",
            "boolean",
            "verify the TLS server's certificate, chain and host name, against `SSL_CERT_FILE` "
            "(the chart's CA bundle) or the system CAs",
            default=True,
            crd_default=True,
        ),
        Field(
            "sipRealm",
            "string",
            "the only digest realm the password is given to: a challenge from any other realm "
            "is not answered (the call fails `AuthenticationFailed`, exit 3), so a server the "
            "callee names cannot collect a digest of the password. Set it when the service's "
            "realm is not its domain (Asterisk's default realm is `asterisk`)",
            shown_default="`sipDomain`, else the callee's host",
            max_length=253,
            pattern=rf'^[^{_SPACE}"\\]+$',
        ),
        Field(
            "mediaEncryption",
            "string",
            "SRTP with keys in the SDP (SDES, RFC 4568), for audio and video. `allow`: the "
            "bridge offers `a=crypto` keys in an RTP/AVP m-line and takes SRTP or plain RTP, "
            "whichever the far end answers, and answers a far end's RTP/SAVP offer (a video "
            "call's) with SRTP. `require`: the bridge offers RTP/SAVP and accepts nothing "
            "else; a far end that will not do SRTP ends the call with `SrtpRefused`, exit 4. "
            "`disable`: plain RTP only, no `a=crypto` offered. Under `allow`, a far end that "
            "refuses the RTP/AVP offer with 488 or 606, as one requiring RTP/SAVP does "
            "(baresip's `srtp-mand`), is called once more offering RTP/SAVP, within the same "
            "set-up time. The negotiated suite is `status.call.srtpSuite`, the audio's "
            "profile `status.call.rtpProfile`",
            default="allow",
            enum=("disable", "allow", "require"),
        ),
        Field(
            "appKey",
            "string",
            "accepted for compatibility with the SIP-as-RTMP REST API the project follows; unused",
            shown_default="—",
            max_length=128,
        ),
    ),
)

#: Where one destination publishes: the spec's own (the call's first destination) and each
#: of ``destinations`` have these two fields.
RTMP_URL = Field(
    "rtmpUrl",
    "string",
    "`rtmp://` or `rtmps://` URL of the application; credentials in it are never logged",
    shown_default="required",
    max_length=2048,
    # Credentials, a host, a port from 1 to 65535 and a path naming an application.
    pattern=rf'^rtmps?://([^{_SPACE}/?#@<>"]*@)?'
    rf"([A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(:{_PORT})?"
    rf"/+[^{_SPACE}/?#][^{_SPACE}]*$",
    secret=True,
)
RTMP_STREAM = Field(
    "rtmpStream",
    "string",
    "stream name (often the CDN's stream key); the bridge publishes to "
    "`rtmpUrl/rtmpStream`, no prefix added. Nothing the bridge or the operator prints "
    "shows it (status shows `rtmpUrl/***`)",
    shown_default="required unless `rtmpStreamSecretRef`",
    min_length=1,
    max_length=512,
    pattern=rf"^[^/{_SPACE}][^{_SPACE}]*$",
    secret=True,
)

#: More destinations than this is a fan-out service's work, not one call's.
MAX_DESTINATIONS = 8
#: ``destinations[].name``: a DNS label, so it reads the same in a URL, a log line and a label.
DESTINATION_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

DESTINATIONS = Field(
    "destinations",
    "array",
    "further RTMP(S) destinations of the same stream, beside `rtmpUrl`/`rtmpStream` (the "
    "call's first destination, fixed for its life). The call's media is encoded once and "
    "published to each destination on a connection of its own (its own reconnect budget, "
    "queue and RTMPS relay); one destination failing never stops the others, and the call "
    "ends `RtmpFailed` only when every destination has failed. Unlike the call's other fields "
    "this list may be changed on a live call: the operator tells the bridge, which opens a "
    "new destination's connection (it joins at the next keyframe) and closes a removed one's",
    default=(),
    shown_default="`[]`",
    max_items=MAX_DESTINATIONS,
    items=Field(
        "destination",
        "object",
        required=("rtmpUrl",),
        fields=(
            RTMP_URL,
            RTMP_STREAM,
            _secret_ref(
                "rtmpStreamSecretRef",
                "`{name, key}` of a Secret in the same namespace holding this destination's "
                "stream key, instead of `rtmpStream` (exactly one of the two): the operator "
                "mounts the Secret in the bridge pod when it creates it, so a destination "
                "added to a live call may name only a Secret one of the call's destinations "
                "named then (others are left out, with a Warning event); not checked for "
                "duplicate streams. Refused by the REST API",
            ),
            Field(
                "profile",
                "string",
                "this destination's CDN, as `profile` is the first's: its rules judge this "
                "destination's `rtmpUrl` and the call's one stream, whose fields its defaults "
                "fill (combined with every other profile the call names)",
                default="generic",
                enum=tuple(PROFILES),
            ),
            Field(
                "name",
                "string",
                "a name telling this destination apart from the others in "
                "`status.destinations[]` (the bridge reports it beside the redacted URL) and in "
                "the REST API's `/push/*` calls, which give one to each destination they add. "
                "Not a secret: never put a stream key in it",
                shown_default="none",
                max_length=63,
                pattern=DESTINATION_NAME,
            ),
        ),
    ),
)

SPEC = Field(
    "spec",
    "object",
    required=("callee", "rtmpUrl"),
    fields=(
        Field(
            "callId",
            "string",
            "the call's id, echoed in every status document (in a cluster: the resource's UID)",
            shown_default="`call-<random>`",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        ),
        Field(
            "callee",
            "string",
            "a SIP URI (`sip:1000@pbx.example.com`, `sips:`, an IPv6 host in brackets), "
            "`user@host`, or a user part (RFC 3261's characters; `#` is written `%23`) "
            "completed with `connection.sipDomain` and `sipPort`",
            shown_default="required",
            min_length=1,
            max_length=512,
            pattern=f"^({CALLEE})$",
        ),
        RTMP_URL,
        RTMP_STREAM,
        _secret_ref(
            "rtmpStreamSecretRef",
            "`{name, key}` of a Secret in the same namespace holding the stream key, instead of "
            "`rtmpStream` (exactly one of the two): the operator mounts it and passes "
            "`--rtmp-stream-file`, as it does the SIP password; such a bridge is not checked "
            "for duplicate streams (the operator cannot read the key). Refused by the REST API",
        ),
        Field(
            "rtmpTlsVerify",
            "boolean",
            "`rtmps://` only: the server's certificate and host name are verified against the "
            "image's CA bundle (`SSL_CERT_FILE` overrides it; in Kubernetes the chart's "
            "`bridge.rtmpsCaBundle` names a ConfigMap whose bundle replaces it); an untrusted "
            "server ends the call with `RtmpFailed` naming the certificate, before anything is "
            "dialled. `false` publishes without checking (a test server's self-signed "
            "certificate)",
            default=True,
            crd_default=True,
        ),
        DESTINATIONS,
        Field(
            "profile",
            "string",
            "the destination's CDN: its defaults fill the fields the spec leaves out, and what "
            "it refuses is refused before anything is dialled (the table below)",
            default=DEFAULT_PROFILE,
            enum=tuple(PROFILES),
        ),
        Field(
            "hasAudio",
            "boolean",
            "the direction of the audio the bridge answers, as the SIP-as-RTMP REST API the "
            "project follows has it: `true` → `a=sendrecv` and the bridge sends silence; "
            "`false` → `a=recvonly`. The far end's audio is bridged either way",
            default=True,
            crd_default=True,
        ),
        Field(
            "hasVideo",
            "boolean",
            "the direction of the video m-line the bridge answers, as `hasAudio` is the "
            "audio's: `true` → `a=sendrecv`, `false` → `a=recvonly` (the bridge sends no video "
            "RTP of its own either way). Whether video is bridged at all is `video.mode`",
            default=False,
            crd_default=True,
        ),
        Field(
            "dtmfAfterAnswer",
            "string",
            "keys sent once the call is answered, to enter a conference PIN: `0-9 * # A-D` (at "
            f'most {MAX_DIGITS} keys) with pauses `w` (0.5 s) and `W` (1 s), e.g. `"W1234#"`. '
            "The first key goes out 1 s after the 200 OK (the far end's media path and prompt "
            "are up by then), then one key every 0.4 s (each pressed for 160 ms), a pause adding "
            "its length. It sits in the resource in clear: whoever may read the resource can "
            "read the PIN. A bad sequence is refused naming the field",
            shown_default="none",
            max_length=256,
            pattern=SEQUENCE_PATTERN,
            normalise=_as_written,
            secret=True,
        ),
        Field(
            "dtmfMethod",
            "string",
            "how `dtmfAfterAnswer` is sent: `RFC2833` (RFC 2833 / RFC 4733 events in the "
            "bridge's RTP; needs `hasAudio: true`) or `INFO` (one SIP INFO per key, "
            "`application/dtmf-relay`, `Signal=`/`Duration=`, for far ends that ignore in-band "
            "events; works on a receive-only call too)",
            default=DtmfMethod.RFC2833.value,
            enum=tuple(method.value for method in DtmfMethod),
        ),
        CONNECTION,
        Field(
            "codecs",
            "array",
            "priority order; `ulaw`/`alaw` accepted as SIP servers often write them. Known: "
            f"{', '.join(KNOWN_CODECS)}",
            default=("PCMU", "PCMA", "G722", "speex/16000"),
            shown_default="`[PCMU, PCMA, G722, speex/16000]`",
            min_items=1,
            max_items=16,
            items=Field("codec", "string", pattern=CODEC_PATTERN, normalise=_codec_any_case),
        ),
        _seconds(
            "callSetupTimeoutSeconds",
            "no answer by then → CANCEL, `NoAnswer` (or `Unreachable` if nothing answered at all)",
            1,
            600,
            60.0,
        ),
        _seconds(
            "rtpInactivityTimeoutSeconds",
            "no RTP for this long while the far end should be sending → BYE, `RtpInactivity` "
            "(on hold, `holdTimeoutSeconds` applies instead)",
            1,
            3600,
            30.0,
        ),
        _seconds(
            "holdTimeoutSeconds",
            "no RTP for this long while the far end holds the call (it need send nothing then) → "
            "BYE, `HoldTimeout` (exit 6): a far end that vanished while on hold is noticed",
            1,
            86400,
            3600.0,
        ),
        _seconds(
            "maxDurationSeconds",
            "BYE after this long, `MaxDuration` (a normal end, exit 0)",
            1,
            604800,
            None,
        ),
        _seconds(
            "rtmpReconnectTimeoutSeconds",
            "how long one RTMP outage (or the first connect) may last before the call ends with "
            "`RtmpFailed`",
            0,
            3600,
            60.0,
        ),
        Field(
            "podStartTimeoutSeconds",
            "integer",
            "how long the bridge pod may take to start (placed, scheduled, image pulled, "
            "Secrets mounted) before the attempt fails with `PodStartTimeout`; read by the "
            "operator only",
            shown_default="the chart's `policies.podStartTimeoutSeconds`",
            minimum=1,
            maximum=3600,
        ),
        Field(
            "audio",
            "object",
            "Encoding of the published audio (AAC).",
            fields=(
                Field(
                    "bitrate",
                    "integer",
                    "the AAC encoder's bitrate, in bits/s",
                    default=64000,
                    minimum=16000,
                    maximum=320000,
                ),
                Field(
                    "sampleRate",
                    "integer",
                    "the published audio's sample rate (the rates CDNs accept)",
                    default=48000,
                    # The parser's bounds, before it names the two rates a CDN takes.
                    minimum=8000,
                    maximum=96000,
                    enum=(44100, 48000),
                ),
                Field(
                    "channels",
                    "integer",
                    "1: mono AAC; 2: stereo AAC, the call's audio on both channels (what "
                    "Facebook asks for)",
                    default=1,
                    enum=(1, 2),
                ),
            ),
        ),
        Field(
            "video",
            "object",
            "Bridging the far end's video (H.264, remuxed without re-encoding beside the AAC "
            "audio). `hasVideo` keeps its meaning: the direction the bridge answers with.",
            fields=(
                Field(
                    "mode",
                    "string",
                    "`disabled`: the audio-only bridge, exactly as without the field (an "
                    "ordinary audio offer). `passthrough`: the far end's H.264 is published "
                    "beside the AAC without re-encoding (see below). The REST API and a "
                    "bridge's own spec file also read `off` and YAML's unquoted `off` (false) "
                    "as `disabled`",
                    default="disabled",
                    crd_default=True,
                    enum=("disabled", "passthrough"),
                    normalise=_off_is_disabled,
                ),
                Field(
                    "whenAbsent",
                    "string",
                    "what the stream carries while the far end sends no video: `audioOnly`, or "
                    "`slate` (a still picture, 640x360 at 10 frames/s, keyframe every 2 s, for "
                    "CDNs that refuse audio-only streams; the stream then has its H.264 track "
                    "from the first packet on). With `mode: disabled` the slate is the whole "
                    "video track and SIP is untouched (an ordinary audio offer)",
                    default="audioOnly",
                    shown_default="`audioOnly` (`slate` under a CDN's profile)",
                    enum=("audioOnly", "slate"),
                ),
                Field(
                    "maxKeyframeIntervalSeconds",
                    "integer",
                    "`passthrough`: when the far end's keyframes come further apart than this, "
                    "the bridge asks for one (RTCP PLI/FIR and SIP INFO) in time; "
                    "`status.video` shows the measured interval and whether the far end "
                    "ignores the requests. The slate's keyframes come every 2 s, or this often "
                    "if less",
                    default=4,
                    shown_default="4 (the profile's)",
                    minimum=1,
                    maximum=60,
                ),
                Field(
                    "slate",
                    "object",
                    "What the slate shows.",
                    fields=(
                        Field(
                            "text",
                            "string",
                            "a line of text across the picture (the call's title): letters, "
                            "digits, spaces and `.,:;!?'()&+-/#@`, drawn in capitals",
                            shown_default="none",
                            max_length=48,
                            pattern=SLATE_TEXT_PATTERN,
                        ),
                        Field(
                            "imageConfigMapRef",
                            "object",
                            "`{name, key}` of a ConfigMap in the same namespace holding a PNG "
                            "or JPEG (as `binaryData`), shown scaled to 640x360 instead of the "
                            "built-in card; the operator mounts it and passes "
                            "`--slate-image-file`",
                            required=("name", "key"),
                            fields=(
                                Field(
                                    "name",
                                    "string",
                                    pattern=_DNS_NAME,
                                    max_length=253,
                                    in_docs=False,
                                ),
                                Field(
                                    "key",
                                    "string",
                                    pattern=_SECRET_KEY,
                                    max_length=253,
                                    in_docs=False,
                                ),
                            ),
                        ),
                        Field(
                            "imageFile",
                            "string",
                            "a bridge's own spec file only: the path of that image",
                            shown_default="none",
                            in_crd=False,
                        ),
                    ),
                ),
            ),
        ),
        Field(
            "nat",
            "object",
            "NAT traversal for SIP media: what a bridge behind NAT or in a pod needs (see "
            "docs/operator.md).",
            fields=(
                Field(
                    "bindAddress",
                    "string",
                    "local address for SIP and RTP sockets",
                    default="0.0.0.0",
                    max_length=253,
                    pattern=rf"^({_IP})$",
                ),
                Field(
                    "publicAddress",
                    "string",
                    "address advertised in SDP and Contact (e.g. the node's external IP with "
                    "host networking)",
                    shown_default="—",
                    max_length=253,
                    pattern=rf"^({_IP}|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$",
                ),
                Field(
                    "stunServers",
                    "array",
                    "`host[:port]` list; used to learn the public address when none is given",
                    default=(),
                    shown_default="`[]`",
                    max_items=8,
                    items=Field(
                        "server",
                        "string",
                        pattern=rf"^({_HOST_NAME})(:{_PORT})?$",
                    ),
                ),
                Field(
                    "rtpPortMin",
                    "integer",
                    "the RTP/RTCP port window's first port; the bridge claims one free pair in "
                    "the window exclusively",
                    default=10000,
                    minimum=1024,
                    maximum=65534,
                ),
                Field(
                    "rtpPortMax",
                    "integer",
                    "the RTP/RTCP port window's last port",
                    default=20000,
                    minimum=1025,
                    maximum=65535,
                ),
                Field(
                    "keepAliveSeconds",
                    "integer",
                    "SIP keep-alive interval, and on a listen-only (recvonly) call a bare RTP "
                    "keep-alive from the RTP port so the NAT binding stays open (0 disables)",
                    default=15,
                    minimum=0,
                    maximum=3600,
                ),
            ),
        ),
        Field(
            "networking",
            "object",
            "How the bridge pod reaches the SIP peer's media (defaults from the chart).",
            in_docs=False,
            fields=(
                Field(
                    "mode",
                    "string",
                    "PodNetwork (pod IP; needs STUN/publicAddress or a peer on the cluster "
                    "network) or HostNetwork (node address, a non-overlapping RTP port window per "
                    "pod).",
                    enum=("PodNetwork", "HostNetwork"),
                ),
                Field(
                    "publicAddressSource",
                    "string",
                    "None, or NodeExternalIP: place the pod on a node with an ExternalIP and "
                    "advertise that address (HostNetwork only).",
                    enum=("None", "NodeExternalIP"),
                ),
                # Written by the operator into the pod's copy of the spec (its host-port window).
                Field("sipLocalPort", "integer", minimum=1, maximum=65535, in_crd=False),
                Field("statusPort", "integer", in_crd=False),
            ),
        ),
        Field(
            "maxRetries",
            "integer",
            "Redials after a failed call (like a Job's backoffLimit); default from the operator.",
            minimum=0,
            maximum=20,
            in_docs=False,
        ),
        Field(
            "ttlSecondsAfterFinished",
            "integer",
            "Delete the bridge this long after it Succeeded or Failed.",
            minimum=0,
            maximum=31536000,
            in_docs=False,
        ),
    ),
)


def walk(field: Field = SPEC, prefix: str = "") -> Iterator[tuple[str, Field]]:
    """Every field below ``field`` with its dotted path (``nat.rtpPortMin``; a list's items'
    fields with ``[]``: ``destinations[].rtmpUrl``), parents first."""
    for child in field.fields:
        path = f"{prefix}{child.name}"
        yield path, child
        yield from walk(child, f"{path}.")
        if child.items is not None:  # a list of objects: its items' fields
            yield from walk(child.items, f"{path}[].")


#: Every field by its dotted path.
BY_PATH: dict[str, Field] = dict(walk())


def names(path: str = "") -> frozenset[str]:
    """The names a spec object (``""``: the spec itself) may hold."""
    parent = BY_PATH[path] if path else SPEC
    return frozenset(child.name for child in parent.fields)


JSONSchema = dict[str, Any]
#: ``adapt(field, path, schema)``: the schema as one reader of the field takes it.
Adapt = Callable[[Field, str, JSONSchema], JSONSchema]


def json_schema(
    field: Field, adapt: Adapt, keep: Callable[[Field], bool], path: str = ""
) -> JSONSchema:
    """The JSON Schema of ``field`` and of what it holds: the one mapping of the table onto
    JSON Schema's keywords, which the CRD and the REST API's OpenAPI document are written from.

    ``keep`` picks the fields a reader has (the CRD has no ``sipPassword``); ``adapt`` turns each
    schema, children done, into the reader's (the CRD's defaults and CEL rules, the REST API's
    string forms). ``path`` is the field's dotted path, ``[]`` marking an array's items.
    """
    schema: JSONSchema = {"type": field.type}
    if field.description:
        schema["description"] = field.description
    if field.required:
        schema["required"] = list(field.required)
    for key, value in (
        ("minLength", field.min_length),
        ("maxLength", field.max_length),
        ("pattern", field.pattern),
        ("minItems", field.min_items),
        ("maxItems", field.max_items),
    ):
        if value is not None:
            schema[key] = value
    if field.enum is not None:  # an enum of numbers is its own bounds
        schema["enum"] = list(field.enum)
    elif field.minimum is not None:
        schema["minimum"], schema["maximum"] = field.minimum, field.maximum
    if field.items is not None:
        schema["items"] = json_schema(field.items, adapt, keep, f"{path}[]")
    children = [child for child in field.fields if keep(child)]
    if children:
        prefix = f"{path}." if path else ""
        schema["properties"] = {
            child.name: json_schema(child, adapt, keep, f"{prefix}{child.name}")
            for child in children
        }
    return adapt(field, path, schema)
