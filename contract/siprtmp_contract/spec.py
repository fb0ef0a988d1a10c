"""The bridge spec: parsed, normalised and validated before any network traffic.

It accepts the `SipRtmpBridge` resource's spec and the seed's REST body verbatim (string booleans
and ports, ``connection.sipPassword`` in clear), so people following the seed can reuse their
bodies. Every problem is reported as one line naming the field, and nothing secret is echoed.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from siprtmp_contract.dtmf import DtmfError, DtmfMethod, parse_digits, parse_method
from siprtmp_contract.fields import BY_PATH, CALLEE, SIP_ADDRESS, SIP_URI, USER_PART, names
from siprtmp_contract.redact import (
    Scrubber,
    key_parts,
    redact_url,
    redacted_publish_url,
    url_secrets,
)
from siprtmp_contract.urls import sip_uri_host


def default(path: str) -> Any:
    """The parser's default for a field (siprtmp_contract.fields declares it)."""
    return BY_PATH[path].default


def _choices(path: str) -> tuple[str, ...]:
    enum = BY_PATH[path].enum
    assert enum is not None, path
    return tuple(enum)


TRANSPORTS = _choices("connection.sipTransport")
DEFAULT_CODECS: tuple[str, ...] = default("codecs")
# Names pjsua's audio-only build knows, as they appear in its codec ids ("PCMU/8000/1").
KNOWN_CODECS = ("PCMU", "PCMA", "G722", "speex/8000", "speex/16000", "speex/32000", "iLBC", "GSM")
CODEC_ALIASES = {"ulaw": "PCMU", "alaw": "PCMA", "g711u": "PCMU", "g711a": "PCMA"}
OUTPUT_SAMPLE_RATES: tuple[int, ...] = BY_PATH["audio.sampleRate"].enum or ()
#: The three forms of ``callee`` (fields.CALLEE, which the CRD's pattern is), whole strings.
_SIP_URI = re.compile(SIP_URI)
_SIP_ADDRESS = re.compile(SIP_ADDRESS)
_USER_PART = re.compile(USER_PART)
assert f"{SIP_URI}|{SIP_ADDRESS}|{USER_PART}" == CALLEE
_HOST = re.compile(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")


class SpecError(ValueError):
    """A spec that cannot be used; ``str()`` is the one line shown to the user."""

    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"spec.{field_path}: {problem}")
        self.field_path = field_path
        self.problem = problem


@dataclass(frozen=True)
class Connection:
    """How to reach the SIP service (the seed's ``connection`` object)."""

    sip_domain: str | None = None
    sip_port: int | None = None
    sip_login: str | None = None
    sip_authentication_name: str | None = None
    sip_password: str | None = field(default=None, repr=False)
    sip_register_required: bool = default("connection.sipRegisterRequired")
    sip_outbound_proxy: str | None = None
    sip_transport: str = default("connection.sipTransport")
    sip_tls_verify_server: bool = default("connection.sipTlsVerifyServer")
    app_key: str | None = None
    #: The digest realm the password is given to; None: ``BridgeSpec.digest_realm`` decides.
    sip_realm: str | None = None
    #: SRTP (SDES): "disable", "allow" or "require" (fields.py says what each does).
    media_encryption: str = default("connection.mediaEncryption")

    @property
    def auth_user(self) -> str | None:
        """Digest user: the authentication name, falling back to the login as softphones do."""
        return self.sip_authentication_name or self.sip_login

    @property
    def port_or_default(self) -> int:
        return self.sip_port or (5061 if self.sip_transport == "tls" else 5060)


@dataclass(frozen=True)
class NatSettings:
    """What a bridge behind NAT or in a pod needs so that media reaches it."""

    bind_address: str = default("nat.bindAddress")
    public_address: str | None = None
    stun_servers: tuple[str, ...] = ()
    rtp_port_min: int = default("nat.rtpPortMin")
    rtp_port_max: int = default("nat.rtpPortMax")
    keep_alive_seconds: int = default("nat.keepAliveSeconds")
    sip_port: int | None = None  # local SIP port; any free one when None


@dataclass(frozen=True)
class AudioSettings:
    """AAC encoding of the call's audio for the RTMP stream."""

    bitrate: int = default("audio.bitrate")
    sample_rate: int = default("audio.sampleRate")


VIDEO_MODES = _choices("video.mode")
VIDEO_WHEN_ABSENT = _choices("video.whenAbsent")


@dataclass(frozen=True)
class VideoSettings:
    """Whether the far end's video is bridged, and what stands in when it sends none.

    ``disabled`` is the audio-only bridge exactly as before (no delayed offer). ``passthrough``
    remuxes the far end's H.264 into the FLV stream without re-encoding it.
    """

    mode: str = default("video.mode")
    when_absent: str = default("video.whenAbsent")

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"


@dataclass(frozen=True)
class Timeouts:
    """Each limit ends the call with a reason of its own."""

    call_setup_seconds: float = default("callSetupTimeoutSeconds")
    rtp_inactivity_seconds: float = default("rtpInactivityTimeoutSeconds")
    max_duration_seconds: float | None = default("maxDurationSeconds")
    rtmp_reconnect_seconds: float = default("rtmpReconnectTimeoutSeconds")


@dataclass(frozen=True)
class BridgeSpec:
    """Everything one bridge run needs, normalised (``callee`` is always a full SIP URI)."""

    call_id: str
    callee: str
    rtmp_url: str
    rtmp_stream: str
    #: rtmps:// only: the server's certificate is checked (media/rtmps_relay.py).
    rtmp_tls_verify: bool = default("rtmpTlsVerify")
    has_audio: bool = default("hasAudio")
    has_video: bool = default("hasVideo")
    connection: Connection = field(default_factory=Connection)
    codecs: tuple[str, ...] = DEFAULT_CODECS
    nat: NatSettings = field(default_factory=NatSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: Keys and pauses sent once the call is answered (a conference PIN), "" for none.
    dtmf_after_answer: str = field(default="", repr=False)
    dtmf_method: DtmfMethod = DtmfMethod.RFC2833

    @property
    def publish_url(self) -> str:
        """``rtmpUrl/rtmpStream``: the seed's server publishes there, with no prefix added."""
        return f"{self.rtmp_url.rstrip('/')}/{self.rtmp_stream}"

    @cached_property  # the runner's limit check names it every time it looks
    def redacted_publish_url(self) -> str:
        return redacted_publish_url(self.rtmp_url)

    @property
    def digest_realm(self) -> str:
        """The one realm the password answers: ``sipRealm``, else the SIP domain, else the
        callee's host. With "*" any server the call reaches (a callee's domain the spec's author
        chose) would get a digest of it to crack offline."""
        connection = self.connection
        return connection.sip_realm or connection.sip_domain or sip_uri_host(self.callee)

    @cached_property
    def scrubber(self) -> Scrubber:
        """What must never be printed: the stream key and its pieces, the URL's credentials,
        the SIP password (service.py passes every output of the run through it)."""
        return Scrubber.of(
            (
                *key_parts(self.rtmp_stream),
                *url_secrets(self.rtmp_url),
                self.connection.sip_password,
            )
        )


def _parse_document(text: str, path: Path) -> Any:
    """JSON for a ``.json`` file (what the operator mounts), YAML otherwise.

    PyYAML is imported only for YAML: a JSON spec would pay its import in start-up CPU for nothing.
    """
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise _unparsable(path, error) from error
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _unparsable(path, error) from error


def _unparsable(path: Path, error: Exception) -> SpecError:
    return SpecError("file", f"{path} is neither valid JSON nor YAML ({error})")


def load_spec_file(
    path: Path, password_file: Path | None = None, stream_file: Path | None = None
) -> BridgeSpec:
    """Read a JSON or YAML spec (a resource's spec, a whole resource, or the seed's body), with
    the SIP password and the stream key from the files their Secrets are mounted as."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError("file", f"cannot read {path}: {error.strerror}") from error
    document = _parse_document(text, path)
    if isinstance(document, Mapping) and isinstance(document.get("spec"), Mapping):
        document = document["spec"]
    return parse_spec(
        document,
        password=_secret_file(password_file, "connection.sipPasswordSecretRef", "password"),
        rtmp_stream=_secret_file(stream_file, "rtmpStreamSecretRef", "stream key"),
    )


def _secret_file(path: Path | None, field_path: str, what: str) -> str | None:
    """A mounted Secret key's value, its trailing newline dropped (``kubectl create secret
    --from-file`` keeps one); the error names the field, never the content."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise SpecError(field_path, f"cannot read {what} file {path}") from error


def parse_spec(
    document: Any, password: str | None = None, rtmp_stream: str | None = None
) -> BridgeSpec:
    """Validate and normalise a spec mapping; ``password`` and ``rtmp_stream`` come from
    mounted Secrets (``password`` wins over ``sipPassword``)."""
    if not isinstance(document, Mapping):
        raise SpecError("", "must be a mapping of fields")
    reader = _Reader(document, "")
    connection = _parse_connection(_connection_fields(document, reader), password)
    call_id = reader.string("callId") or f"call-{uuid.uuid4().hex[:12]}"
    spec = BridgeSpec(
        call_id=call_id,
        callee=_normalise_callee(reader.required_string("callee"), connection),
        rtmp_url=_check_rtmp_url(reader.required_string("rtmpUrl")),
        rtmp_stream=_parse_stream(reader, rtmp_stream),
        rtmp_tls_verify=reader.boolean("rtmpTlsVerify"),
        has_audio=reader.boolean("hasAudio"),
        has_video=reader.boolean("hasVideo"),
        connection=connection,
        codecs=_parse_codecs(reader),
        nat=_parse_nat(reader.mapping("nat"), reader.mapping("networking")),
        audio=_parse_audio(reader.mapping("audio")),
        video=_parse_video(reader.mapping("video")),
        timeouts=Timeouts(
            call_setup_seconds=reader.number("callSetupTimeoutSeconds"),
            rtp_inactivity_seconds=reader.number("rtpInactivityTimeoutSeconds"),
            max_duration_seconds=reader.optional_number("maxDurationSeconds"),
            rtmp_reconnect_seconds=reader.number("rtmpReconnectTimeoutSeconds"),
        ),
    )
    spec = _with_dtmf(spec, document)
    for operator_field in ("maxRetries", "ttlSecondsAfterFinished"):
        reader.integer(operator_field)
    # The seed's later flat shape of /rest-api/call/startup puts connection fields on top.
    reader.check_unknown(SPEC_FIELDS | CONNECTION_FIELDS)
    return spec


#: What a spec may hold: the resource's fields, and the connection's flat (the seed's later body).
SPEC_FIELDS = names()
CONNECTION_FIELDS = names("connection")


#: The bounds of every number in the spec, by the field's path; the CRD declares the same
#: minimum and maximum (tests/unit/test_spec.py compares them). Bounded above too: a timeout of
#: 1e400 seconds (infinity) or a port of 5000 digits is a typo or an attack, never a setting.
BOUNDS: dict[str, tuple[int, int]] = {
    path: bounds for path, field in BY_PATH.items() if (bounds := field.bounds) is not None
}


#: A decimal number as JSON writes one, in ASCII (``float`` would also take "١٢", "inf", "nan").
_ASCII_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")


def _shown(value: Any) -> str:
    """A refused value as an error message quotes it: a long one is cut."""
    if isinstance(value, int) and abs(value) >= 10**40:
        return "an integer of more than 40 digits"  # repr() refuses past 4300 digits
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


class _Reader:
    """Typed access to one mapping of the spec, naming the full field path in every error."""

    def __init__(self, data: Mapping[str, Any], prefix: str) -> None:
        self.data = data
        self.prefix = prefix

    def path(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def mapping(self, name: str) -> _Reader:
        value = self.data.get(name)
        if value is None:
            return _Reader({}, f"{self.path(name)}.")
        if not isinstance(value, Mapping):
            raise SpecError(self.path(name), "must be an object")
        return _Reader(value, f"{self.path(name)}.")

    def string(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SpecError(self.path(name), "must be a string")
        return str(value).strip()

    def choice(self, name: str, any_case: bool = False) -> str:
        """One of the field's enum, its default when absent; ``any_case`` takes any
        capitalisation."""
        choices = _choices(self.path(name))
        value = self.data.get(name)
        if value is None or value == "":
            return str(default(self.path(name)))
        chosen = value.strip() if isinstance(value, str) else value
        if any_case and isinstance(chosen, str):
            chosen = chosen.lower()
        if chosen not in choices:
            raise SpecError(self.path(name), f"must be one of {', '.join(choices)}, got {value!r}")
        return str(chosen)

    def required_string(self, name: str) -> str:
        value = self.string(name)
        if not value:
            raise SpecError(self.path(name), "is required")
        return value

    def boolean(self, name: str) -> bool:
        value = self.data.get(name)
        parsed = spec_boolean(value, default(self.path(name)))
        if parsed is None:
            raise SpecError(self.path(name), f"must be true or false, got {value!r}")
        return parsed

    def optional_number(self, name: str) -> float | None:
        """A number within the field's ``BOUNDS`` (the seed sends numbers as strings)."""
        value = self.data.get(name)
        if value is None or value == "":
            return None
        low, high = BOUNDS[self.path(name)]
        number = float("nan")
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e300 else float("inf")
        elif isinstance(value, str) and _ASCII_NUMBER.match(value.strip()):
            number = float(value)
        if not low <= number <= high:  # also refuses NaN and infinities
            raise SpecError(
                self.path(name), f"must be a number from {low} to {high}, got {_shown(value)}"
            )
        return number

    def number(self, name: str) -> float:
        """A number of a field with a default, the default when absent."""
        value = self.optional_number(name)
        fallback: float = default(self.path(name))
        return fallback if value is None else value

    def integer(self, name: str) -> int | None:
        """A whole number within the field's ``BOUNDS``, its default when absent; strings of
        ASCII digits count."""
        value = self.data.get(name)
        if value is None or value == "":
            result: int | None = default(self.path(name))
            return result
        low, high = BOUNDS[self.path(name)]
        text = value.strip() if isinstance(value, str) else None
        if isinstance(value, bool) or not (
            isinstance(value, int) or (text and text.isascii() and text.isdigit())
        ):
            raise SpecError(self.path(name), f"must be a whole number, got {_shown(value)}")
        if text is None:
            number: int | None = value
        else:  # its length first: Python's int() refuses strings of over 4300 digits
            number = int(text) if len(text) <= len(str(high)) else None
        if number is None or not low <= number <= high:
            raise SpecError(
                self.path(name), f"must be between {low} and {high}, got {_shown(value)}"
            )
        return number

    def string_list(self, name: str) -> tuple[str, ...] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [part for part in re.split(r"[,\s]+", value) if part]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpecError(self.path(name), "must be a list of strings")
        return tuple(v.strip() for v in value)

    def check_unknown(self, known: frozenset[str]) -> None:
        for name in self.data:
            if name not in known:
                raise SpecError(self.path(str(name)), "is not a known field")


def _connection_fields(document: Mapping[str, Any], reader: _Reader) -> _Reader:
    """The nested ``connection`` object, completed by the seed's flat shape (nested values win)."""
    nested = reader.mapping("connection")
    flat = {k: v for k, v in document.items() if k in CONNECTION_FIELDS}
    return _Reader({**flat, **nested.data}, nested.prefix)


def _parse_connection(outer: _Reader, password: str | None) -> Connection:
    transport = outer.choice("sipTransport", any_case=True)
    domain = outer.string("sipDomain")
    if domain and not _is_host(domain):
        raise SpecError(outer.path("sipDomain"), f"is not a host name or address: {domain!r}")
    proxy = outer.string("sipOutboundProxy")
    if proxy:
        proxy = _check_proxy(outer.path("sipOutboundProxy"), proxy)
    secret_ref = outer.data.get("sipPasswordSecretRef")
    if secret_ref is not None:
        _check_secret_ref(outer.path("sipPasswordSecretRef"), secret_ref)
    if secret_ref is not None and password is None:
        raise SpecError(
            outer.path("sipPasswordSecretRef"),
            "is set but no password file was given (--sip-password-file)",
        )
    connection = Connection(
        sip_domain=domain,
        sip_port=outer.integer("sipPort"),
        sip_login=outer.string("sipLogin"),
        sip_authentication_name=outer.string("sipAuthenticationName"),
        sip_password=password if password is not None else outer.string("sipPassword"),
        sip_register_required=outer.boolean("sipRegisterRequired"),
        sip_outbound_proxy=proxy,
        sip_transport=transport,
        sip_tls_verify_server=outer.boolean("sipTlsVerifyServer"),
        app_key=outer.string("appKey"),
        sip_realm=outer.string("sipRealm"),
        media_encryption=outer.choice("mediaEncryption", any_case=True),
    )
    if connection.sip_register_required and not (connection.sip_domain and connection.sip_login):
        raise SpecError(
            outer.path("sipRegisterRequired"), "needs connection.sipDomain and connection.sipLogin"
        )
    if connection.sip_password and not connection.auth_user:
        raise SpecError(
            outer.path("sipLogin"), "is required when a password is given (digest user)"
        )
    outer.check_unknown(CONNECTION_FIELDS)
    return connection


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return bool(_HOST.match(value)) and not value.startswith(("-", "."))
    return True


def _is_host_port(value: str) -> bool:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``, with a port from 1 to 65535."""
    host, separator, port = value.rpartition(":")
    if (
        separator
        and not host.endswith(":")
        and port.isdigit()
        and (not host.startswith("[") or host.endswith("]"))
    ):
        return 0 < int(port) < 65536 and _is_host(host)
    return _is_host(value)


def _check_proxy(path: str, value: str) -> str:
    """A proxy as a SIP URI or host[:port]; loose routing (``;lr``) is what proxies expect."""
    uri = value if value.startswith(("sip:", "sips:")) else f"sip:{value}"
    host_port = uri.split(":", 1)[1].split(";", 1)[0].rsplit("@", 1)[-1]
    if not _is_host_port(host_port):
        raise SpecError(path, f"is not a SIP URI or host[:port]: {value!r}")
    return uri if ";lr" in uri else f"{uri};lr"


def _normalise_callee(callee: str, connection: Connection) -> str:
    """A SIP URI as given, or a user part completed with the connection's domain and port."""
    if callee.startswith(("sip:", "sips:")):
        if not _SIP_URI.fullmatch(callee):
            raise SpecError("callee", f"is not a valid SIP URI: {callee!r}")
        uri = callee
    elif "@" in callee:
        uri = f"sip:{callee}"
        if not _SIP_ADDRESS.fullmatch(callee):
            raise SpecError("callee", f"is not a valid SIP address: {callee!r}")
    else:
        if not _USER_PART.fullmatch(callee):
            raise SpecError("callee", f"is not a SIP URI or a user part: {callee!r}")
        if not connection.sip_domain:
            raise SpecError(
                "callee", "is a user part, so connection.sipDomain is required to complete it"
            )
        host = connection.sip_domain
        port = f":{connection.sip_port}" if connection.sip_port else ""
        uri = f"sip:{callee}@{host}{port}"
    if connection.sip_transport != "udp" and ";transport=" not in uri:
        uri = f"{uri};transport={connection.sip_transport}"
    return uri


#: What stands for a stream key in a Secret when the operator reads a resource's spec.
UNREAD_STREAM_KEY = "key-in-a-secret"


def parse_resource_spec(document: Any) -> BridgeSpec:
    """A resource's spec as the operator reads it. Its SIP password and a stream key named by
    ``rtmpStreamSecretRef`` live in Secrets the operator never reads, so the parse takes stand-ins
    (the check that a Secret reference comes with its mounted file is the bridge's)."""
    return parse_spec(document, password="", rtmp_stream=UNREAD_STREAM_KEY)


def spec_boolean(value: Any, default: bool) -> bool | None:
    """A boolean as a spec may write it: JSON's, or the seed's strings ("true", "False", any
    case); ``default`` when absent or empty; None when it is neither."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _check_rtmp_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname:
        raise SpecError(
            "rtmpUrl", f"must be an rtmp:// or rtmps:// URL with a host, got {redact_url(url)!r}"
        )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        raise SpecError("rtmpUrl", f"has an invalid port: {redact_url(url)!r}") from error
    if not parts.path.strip("/"):
        raise SpecError("rtmpUrl", "must name an application, e.g. rtmp://host/live")
    return url


def _check_secret_ref(path: str, ref: Any) -> None:
    if not (isinstance(ref, Mapping) and ref.get("name") and ref.get("key")):
        raise SpecError(path, "must have a name and a key")


def _parse_stream(reader: _Reader, from_file: str | None) -> str:
    """``rtmpStream``, or the key from the file ``rtmpStreamSecretRef``'s Secret is mounted as."""
    ref = reader.data.get("rtmpStreamSecretRef")
    if ref is None:
        return _check_stream(reader.required_string("rtmpStream"))
    _check_secret_ref("rtmpStreamSecretRef", ref)
    if reader.string("rtmpStream"):
        raise SpecError("rtmpStreamSecretRef", "is an alternative to rtmpStream: give one of them")
    if not from_file:
        raise SpecError(
            "rtmpStreamSecretRef", "is set but no stream key file was given (--rtmp-stream-file)"
        )
    return _check_stream(from_file)


def _check_stream(stream: str) -> str:
    if any(c.isspace() for c in stream) or stream.startswith("/"):
        raise SpecError("rtmpStream", "must be a stream name without spaces or a leading '/'")
    return stream


def _parse_codecs(reader: _Reader) -> tuple[str, ...]:
    names = reader.string_list("codecs")
    if names is None:
        return DEFAULT_CODECS
    if not names:
        raise SpecError("codecs", "must list at least one codec")
    result: list[str] = []
    for name in names:
        canonical = canonical_codec(name)
        if canonical is None:
            raise SpecError("codecs", f"unknown codec {name!r}; known: {', '.join(KNOWN_CODECS)}")
        result.append(canonical)
    return tuple(dict.fromkeys(result))


# Codec names as people write them: "PCMU", "PCMU/8000", "PCMU/8000/1", "ulaw", "G722/8000"
# (its SDP clock) or "G722/16000" (its sample rate), "speex/16000".
_CODEC_FORMS = re.compile(
    r"^(?:(?P<fixed>pcmu|pcma|ulaw|alaw|g711u|g711a|ilbc|gsm)(?:/8000(?:/1)?)?"
    r"|(?P<g722>g722)(?:/(?:8000|16000)(?:/1)?)?"
    r"|speex(?:/(?P<speex>8000|16000|32000)(?:/1)?)?)$",
    re.IGNORECASE,
)


def canonical_codec(name: str) -> str | None:
    """The bridge's name for a codec written in any usual form; None when unknown."""
    match = _CODEC_FORMS.match(name.strip())
    if match is None:
        return None
    if match["fixed"]:
        base = CODEC_ALIASES.get(match["fixed"].lower(), match["fixed"])
        return next(k for k in KNOWN_CODECS if k.lower() == base.lower())
    if match["g722"]:
        return "G722"
    return f"speex/{match['speex'] or 16000}"


def _parse_nat(reader: _Reader, networking: _Reader) -> NatSettings:
    """NAT settings; the operator's ``networking`` adds the local SIP port of a host-port window."""
    bind = reader.string("bindAddress") or default("nat.bindAddress")
    public = reader.string("publicAddress")
    for name, value in (("bindAddress", bind), ("publicAddress", public)):
        if value and not _is_host(value):
            raise SpecError(reader.path(name), f"is not a host name or address: {value!r}")
    stun = reader.string_list("stunServers") or ()
    for server in stun:
        if not _is_host_port(server):
            raise SpecError(reader.path("stunServers"), f"is not host[:port]: {server!r}")
    low = reader.integer("rtpPortMin")
    high = reader.integer("rtpPortMax")
    assert low is not None and high is not None
    if high - low < 1:
        raise SpecError(reader.path("rtpPortMax"), "must be above nat.rtpPortMin (RTP + RTCP)")
    keep_alive = reader.integer("keepAliveSeconds")
    assert keep_alive is not None
    reader.check_unknown(names("nat"))
    sip_port = networking.integer("sipLocalPort")
    networking.check_unknown(names("networking"))
    return NatSettings(bind, public, stun, low, high, keep_alive, sip_port)


def _parse_audio(reader: _Reader) -> AudioSettings:
    bitrate = reader.integer("bitrate")
    rate = reader.integer("sampleRate")
    assert bitrate is not None and rate is not None
    if rate not in OUTPUT_SAMPLE_RATES:
        raise SpecError(reader.path("sampleRate"), "must be 44100 or 48000 (what CDNs accept)")
    reader.check_unknown(names("audio"))
    return AudioSettings(bitrate, rate)


def _parse_video(reader: _Reader) -> VideoSettings:
    mode_value = reader.data.get("mode")
    # YAML 1.1 reads an unquoted ``off`` as false: take it for what the user meant.
    if mode_value is False or (isinstance(mode_value, str) and mode_value.lower() == "off"):
        mode = "disabled"
    else:
        mode = reader.choice("mode", any_case=True)
    when_absent = reader.choice("whenAbsent")
    reader.check_unknown(names("video"))
    return VideoSettings(mode, when_absent)


def _with_dtmf(spec: BridgeSpec, document: Mapping[str, Any]) -> BridgeSpec:
    """``dtmfAfterAnswer`` and ``dtmfMethod``, checked with the REST API's DTMF rules."""
    sequence, method_value = document.get("dtmfAfterAnswer"), document.get("dtmfMethod")
    try:
        method = parse_method(method_value)
    except DtmfError as error:
        raise SpecError("dtmfMethod", error.problem) from error
    if sequence is None or sequence == "":
        return spec
    try:
        digits = parse_digits(sequence)
    except DtmfError as error:
        raise SpecError("dtmfAfterAnswer", error.problem) from error
    if method is DtmfMethod.RFC2833 and not spec.has_audio:
        raise SpecError(
            "dtmfAfterAnswer",
            "RFC2833 keys travel in the bridge's RTP, which a hasAudio: false call does not "
            "send: set dtmfMethod: INFO, or hasAudio: true",
        )
    return replace(spec, dtmf_after_answer=digits, dtmf_method=method)
