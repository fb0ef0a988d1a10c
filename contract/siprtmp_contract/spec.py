"""The bridge spec: parsed, normalised and validated before any network traffic.

A resource's spec is read as the API server admits it (``parse_resource_spec``): canonical values
only, the CRD's fields only. A bridge's own spec file also takes the seed's REST body verbatim
(``parse_spec``: string booleans and ports, ``connection.sipPassword`` in clear), turned canonical
first by the same reading the REST API gives it (``siprtmp_contract.canonical.normalise``), so
people following the seed can reuse their bodies. Every problem is reported as one line naming
the field, and nothing secret is echoed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from siprtmp_contract.canonical import is_integer, normalise, violation
from siprtmp_contract.dtmf import DtmfError, DtmfMethod, parse_digits, parse_method
from siprtmp_contract.fields import (
    BY_PATH,
    CALLEE,
    KNOWN_CODECS,
    SIP_ADDRESS,
    SIP_URI,
    USER_PART,
    Field,
    canonical_codec,
    names,
)
from siprtmp_contract.profiles import (
    PROFILES,
    Output,
    Profile,
    slate_bitrate,
    stream_problem,
    url_problem,
    with_defaults,
)
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
OUTPUT_SAMPLE_RATES: tuple[int, ...] = BY_PATH["audio.sampleRate"].enum or ()
#: The three forms of ``callee`` (fields.CALLEE, which the CRD's pattern is), whole strings.
_SIP_URI = re.compile(SIP_URI)
_SIP_ADDRESS = re.compile(SIP_ADDRESS)
_USER_PART = re.compile(USER_PART)
assert f"{SIP_URI}|{SIP_ADDRESS}|{USER_PART}" == CALLEE


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
    channels: int = default("audio.channels")


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
    max_keyframe_interval_seconds: int = default("video.maxKeyframeIntervalSeconds")
    #: The slate's line of text, and its picture (a file; None: the built-in card).
    slate_text: str = ""
    slate_image: str | None = None
    #: The slate's constant bitrate in bits/s, which a profile among the call's asks for
    #: (Twitch); None: x264's own rate control (a few kb/s for a still picture).
    slate_bitrate: int | None = None

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    @property
    def slate(self) -> bool:
        """The stream has an H.264 track from its first packet on (with any ``mode``)."""
        return self.when_absent == "slate"


@dataclass(frozen=True)
class Timeouts:
    """Each limit ends the call with a reason of its own."""

    call_setup_seconds: float = default("callSetupTimeoutSeconds")
    rtp_inactivity_seconds: float = default("rtpInactivityTimeoutSeconds")
    hold_seconds: float = default("holdTimeoutSeconds")
    max_duration_seconds: float | None = default("maxDurationSeconds")
    rtmp_reconnect_seconds: float = default("rtmpReconnectTimeoutSeconds")


@dataclass(frozen=True)
class Destination:
    """One place the stream is published: ``rtmpUrl/rtmpStream``, with no prefix added."""

    rtmp_url: str
    rtmp_stream: str = field(repr=False)
    profile: str = default("destinations[].profile")
    #: ``destinations[].name``: what status and the REST API tell it apart by (None: unnamed).
    name: str | None = None

    @property
    def publish_url(self) -> str:
        return f"{self.rtmp_url.rstrip('/')}/{self.rtmp_stream}"

    @cached_property
    def redacted_url(self) -> str:
        """``rtmpUrl/***``: what status, metrics and logs show of it."""
        return redacted_publish_url(self.rtmp_url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What of it must never be printed: the stream key's pieces, the URL's credentials."""
        return (*key_parts(self.rtmp_stream), *url_secrets(self.rtmp_url))


@dataclass(frozen=True)
class BridgeSpec:
    """Everything one bridge run needs, normalised (``callee`` is always a full SIP URI)."""

    call_id: str
    callee: str
    rtmp_url: str
    rtmp_stream: str
    #: rtmps:// only: the server's certificate is checked (rtmp/rtmps_relay.py).
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
    #: The destination's CDN (siprtmp_contract.profiles); its defaults are already applied.
    profile: str = default("profile")
    #: ``destinations``: published to beside ``rtmpUrl/rtmpStream``.
    more_destinations: tuple[Destination, ...] = ()
    #: Where the Secrets of ``destinations[].rtmpStreamSecretRef`` are mounted (``mounted_keys``;
    #: a live call's new destinations are read from there too). None: none may be named.
    stream_keys_dir: Path | None = None

    @property
    def output(self) -> Output:
        """The stream the call makes, the same for each destination, as profiles judge it."""
        return Output(
            video_track=self.video.slate,
            channels=self.audio.channels,
            max_keyframe_seconds=self.video.max_keyframe_interval_seconds,
            video_bitrate=self.video.slate_bitrate,
        )

    @property
    def destinations(self) -> tuple[Destination, ...]:
        """Every destination of the call: ``rtmpUrl/rtmpStream`` first, then ``destinations``."""
        first = Destination(self.rtmp_url, self.rtmp_stream, self.profile)
        return (first, *self.more_destinations)

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
        secrets = (secret for destination in self.destinations for secret in destination.secrets)
        return Scrubber.of((*secrets, self.connection.sip_password))


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
    path: Path,
    password_file: Path | None = None,
    stream_file: Path | None = None,
    slate_image_file: Path | None = None,
    stream_keys_dir: Path | None = None,
) -> BridgeSpec:
    """Read a JSON or YAML spec (a resource's spec, a whole resource, or the seed's body), with
    the SIP password and the stream key from the files their Secrets are mounted as, the
    destinations' keys from where theirs are (``stream_keys_dir``), and the slate's image from
    where its ConfigMap is mounted."""
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
        slate_image=None if slate_image_file is None else str(slate_image_file),
        stream_keys_dir=stream_keys_dir,
    )


#: How a destination's ``rtmpStreamSecretRef`` becomes its key: (the field's path, the Secret's
#: name, its key) → the stream key; SpecError names the field.
KeyReader = Callable[[str, str, str], str]


def mounted_keys(directory: Path | None) -> KeyReader:
    """Keys read from where the operator mounts the destinations' Secrets (pod.STREAM_KEYS_DIR:
    ``directory/name/key``)."""

    def read(path: str, name: str, key: str) -> str:
        if directory is None:
            raise SpecError(
                path, "is set but no stream keys directory was given (--stream-keys-dir)"
            )
        if "/" in name + key or name in {".", ".."} or key in {".", ".."}:
            raise SpecError(path, "must name a Secret and one of its keys")
        return _secret_file(directory / name / key, path, "stream key") or ""

    return read


#: Where no Secret of a destination is mounted: a reference fails, naming the field.
NO_MOUNTED_KEYS = mounted_keys(None)


def _unread_key(_path: str, _name: str, _key: str) -> str:
    return UNREAD_STREAM_KEY


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
    document: Any,
    password: str | None = None,
    rtmp_stream: str | None = None,
    slate_image: str | None = None,
    stream_keys_dir: Path | None = None,
) -> BridgeSpec:
    """A bridge's own spec: a resource's spec or the seed's body, read as the REST API reads one
    (``normalise``), then as the resource; ``password`` and ``rtmp_stream`` come from mounted
    Secrets (``password`` wins over ``sipPassword``), ``slate_image`` is where the ConfigMap of
    ``video.slate.imageConfigMapRef`` is mounted, ``stream_keys_dir`` where the destinations'
    Secrets are."""
    if not isinstance(document, Mapping):
        raise SpecError("", "must be a mapping of fields")
    spec = _parse(
        normalise(document),
        password,
        rtmp_stream,
        lambda _: True,
        slate_image,
        mounted_keys(stream_keys_dir),
    )
    return replace(spec, stream_keys_dir=stream_keys_dir)


#: What stands for a stream key and a password in Secrets when the operator reads a resource.
UNREAD_STREAM_KEY = "key-in-a-secret"
UNREAD_PASSWORD = "password-in-a-secret"
UNREAD_SLATE_IMAGE = "image-in-a-config-map"


def parse_resource_spec(document: Any) -> BridgeSpec:
    """A resource's spec as the API server admits it (canonical values, the CRD's fields), as
    the operator reads it. Its SIP password and a stream key named by ``rtmpStreamSecretRef``
    live in Secrets the operator never reads, so the parse takes stand-ins for them (the check
    that a Secret reference comes with its mounted file is the bridge's)."""
    if not isinstance(document, Mapping):
        raise SpecError("", "must be a mapping of fields")
    connection = document.get("connection")
    has_password = isinstance(connection, Mapping) and connection.get("sipPasswordSecretRef")
    password = UNREAD_PASSWORD if has_password else None
    return _parse(
        document,
        password,
        UNREAD_STREAM_KEY,
        lambda field: field.in_crd,
        UNREAD_SLATE_IMAGE,
        _unread_key,
    )


def _parse(
    document: Mapping[str, Any],
    password: str | None,
    rtmp_stream: str | None,
    keep: Callable[[Field], bool],
    slate_image: str | None,
    keys: KeyReader,
) -> BridgeSpec:
    """A canonical spec → the bridge's settings. The defaults of the profiles (the call's own
    and its destinations') go in first; the readers' checks come next, for their messages,
    then the profiles' rules; the field table's schema (``violation``) last, so that nothing
    the CRD refuses passes. What the readers check beyond that schema is what the CRD's CEL
    rules check."""
    profile = PROFILES[_Reader(document, "").choice("profile")]
    document = with_defaults((profile, *_destination_profiles(document)), document)
    reader = _Reader(document, "")
    connection = _parse_connection(reader.mapping("connection"), password)
    call_id = reader.string("callId")
    if call_id is not None and not re.fullmatch(BY_PATH["callId"].pattern or "", call_id):
        raise SpecError(
            "callId",
            "must be 1-64 letters, digits, '.', '_' or '-', starting with one of the first two",
        )
    spec = BridgeSpec(
        call_id=call_id or f"call-{uuid.uuid4().hex[:12]}",
        callee=_normalise_callee(reader.required_string("callee"), connection),
        rtmp_url=_check_rtmp_url(reader.required_string("rtmpUrl"), "rtmpUrl"),
        rtmp_stream=_parse_stream(reader, rtmp_stream),
        rtmp_tls_verify=reader.boolean("rtmpTlsVerify"),
        has_audio=reader.boolean("hasAudio"),
        has_video=reader.boolean("hasVideo"),
        connection=connection,
        codecs=_parse_codecs(reader),
        nat=_parse_nat(reader.mapping("nat"), reader.mapping("networking")),
        audio=_parse_audio(reader.mapping("audio")),
        video=_parse_video(reader.mapping("video"), slate_image),
        timeouts=Timeouts(
            call_setup_seconds=reader.number("callSetupTimeoutSeconds"),
            rtp_inactivity_seconds=reader.number("rtpInactivityTimeoutSeconds"),
            hold_seconds=reader.number("holdTimeoutSeconds"),
            max_duration_seconds=reader.optional_number("maxDurationSeconds"),
            rtmp_reconnect_seconds=reader.number("rtmpReconnectTimeoutSeconds"),
        ),
        more_destinations=parse_destinations(document.get("destinations"), "destinations", keys),
    )
    spec = _with_dtmf(spec, document)
    profiles = (profile, *(PROFILES[d.profile] for d in spec.more_destinations))
    video = replace(spec.video, slate_bitrate=slate_bitrate(profiles))
    spec = replace(spec, profile=profile.name, video=video)
    url = url_problem(profile, spec.rtmp_url)
    if url is not None:
        raise SpecError("rtmpUrl", url)
    _check_profiles_met(spec)
    for operator_field in ("maxRetries", "ttlSecondsAfterFinished", "podStartTimeoutSeconds"):
        reader.integer(operator_field)
    found = violation(document, keep)
    if found is not None:
        raise SpecError(*found)
    return spec


#: What a spec may hold: the resource's fields; the seed's flat body also the connection's.
SPEC_FIELDS = names()
CONNECTION_FIELDS = names("connection")


#: The bounds of every number in the spec, by the field's path; the CRD declares the same
#: minimum and maximum (tests/unit/test_spec.py compares them). Bounded above too: a timeout of
#: 1e400 seconds (infinity) or a port of 5000 digits is a typo or an attack, never a setting.
BOUNDS: dict[str, tuple[int, int]] = {
    path: bounds for path, field in BY_PATH.items() if (bounds := field.bounds) is not None
}


def _shown(value: Any) -> str:
    """A refused value as an error message quotes it: a long one is cut."""
    if isinstance(value, int) and abs(value) >= 10**40:
        return "an integer of more than 40 digits"  # repr() refuses past 4300 digits
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


class _Reader:
    """Typed access to one mapping of a canonical spec, naming the full field path in every
    error. An absent field (or a null, which the API server prunes) takes its default."""

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
        if value is None:
            return None
        if not isinstance(value, str):
            raise SpecError(self.path(name), "must be a string")
        return value

    def choice(self, name: str) -> str:
        """One of the field's enum, its default when absent."""
        choices = _choices(self.path(name))
        value = self.data.get(name)
        if value is None:
            return str(default(self.path(name)))
        if value not in choices:
            raise SpecError(self.path(name), f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def required_string(self, name: str) -> str:
        value = self.string(name)
        if not value:
            raise SpecError(self.path(name), "is required")
        return value

    def boolean(self, name: str) -> bool:
        value = self.data.get(name)
        if value is None:
            fallback: bool = default(self.path(name))
            return fallback
        if not isinstance(value, bool):
            raise SpecError(self.path(name), f"must be true or false, got {_shown(value)}")
        return value

    def _whole(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not is_integer(value):
            raise SpecError(self.path(name), f"must be a whole number, got {_shown(value)}")
        return int(value)

    def optional_number(self, name: str) -> float | None:
        """A number of seconds within the field's ``BOUNDS``."""
        number = self._whole(name)
        if number is None:
            return None
        low, high = BOUNDS[self.path(name)]
        if not low <= number <= high:
            raise SpecError(
                self.path(name), f"must be a number from {low} to {high}, got {_shown(number)}"
            )
        return float(number)

    def number(self, name: str) -> float:
        """A number of a field with a default, the default when absent."""
        value = self.optional_number(name)
        fallback: float = default(self.path(name))
        return fallback if value is None else value

    def integer(self, name: str) -> int | None:
        """A whole number within the field's ``BOUNDS``, its default when absent."""
        number = self._whole(name)
        if number is None:
            result: int | None = default(self.path(name))
            return result
        low, high = BOUNDS[self.path(name)]
        if not low <= number <= high:
            raise SpecError(
                self.path(name), f"must be between {low} and {high}, got {_shown(number)}"
            )
        return number

    def string_list(self, name: str) -> tuple[str, ...] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpecError(self.path(name), "must be a list of strings")
        return tuple(value)


def _parse_connection(outer: _Reader, password: str | None) -> Connection:
    transport = outer.choice("sipTransport")
    proxy = outer.string("sipOutboundProxy")
    secret_ref = outer.data.get("sipPasswordSecretRef")
    if secret_ref is not None:
        _check_secret_ref(outer.path("sipPasswordSecretRef"), secret_ref)
    if secret_ref is not None and password is None:
        raise SpecError(
            outer.path("sipPasswordSecretRef"),
            "is set but no password file was given (--sip-password-file)",
        )
    connection = Connection(
        sip_domain=outer.string("sipDomain"),
        sip_port=outer.integer("sipPort"),
        sip_login=outer.string("sipLogin"),
        sip_authentication_name=outer.string("sipAuthenticationName"),
        sip_password=password if password is not None else outer.string("sipPassword"),
        sip_register_required=outer.boolean("sipRegisterRequired"),
        # Loose routing (``;lr``) is what proxies expect.
        sip_outbound_proxy=_loose_route(proxy) if proxy else None,
        sip_transport=transport,
        sip_tls_verify_server=outer.boolean("sipTlsVerifyServer"),
        app_key=outer.string("appKey"),
        sip_realm=outer.string("sipRealm"),
        media_encryption=outer.choice("mediaEncryption"),
    )
    if connection.sip_register_required and not (connection.sip_domain and connection.sip_login):
        raise SpecError(
            outer.path("sipRegisterRequired"), "needs connection.sipDomain and connection.sipLogin"
        )
    if connection.sip_register_required and not connection.sip_password:
        raise SpecError(
            outer.path("sipRegisterRequired"),
            "needs the password: connection.sipPasswordSecretRef (sipPassword in a bridge's "
            "own spec file)",
        )
    if connection.sip_password and not connection.auth_user:
        raise SpecError(
            outer.path("sipLogin"), "is required when a password is given (digest user)"
        )
    return connection


def _loose_route(proxy: str) -> str:
    uri = proxy if proxy.startswith(("sip:", "sips:")) else f"sip:{proxy}"
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


def _check_rtmp_url(url: str, path: str) -> str:
    """The URL if the field's pattern takes it (a host, a port from 1 to 65535, an
    application); else the first thing wrong with it, as the message (naming ``path``) says."""
    if re.fullmatch(BY_PATH["rtmpUrl"].pattern or "", url):
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        raise SpecError(path, f"has an invalid port or host: {redact_url(url)!r}") from error
    if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname:
        raise SpecError(
            path, f"must be an rtmp:// or rtmps:// URL with a host, got {redact_url(url)!r}"
        )
    if not parts.path.strip("/"):
        raise SpecError(path, "must name an application, e.g. rtmp://host/live")
    raise SpecError(path, f"is not an rtmp:// URL the bridge can publish to: {redact_url(url)!r}")


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


def _check_stream(stream: str, path: str = "rtmpStream") -> str:
    if not re.fullmatch(BY_PATH["rtmpStream"].pattern or "", stream):
        raise SpecError(path, "must be a stream name without spaces or a leading '/'")
    return stream


def parse_destinations(
    value: Any, path: str, keys: KeyReader = NO_MOUNTED_KEYS
) -> tuple[Destination, ...]:
    """A canonical ``destinations`` list (absent: none); each problem names the item
    (``destinations[1].rtmpUrl``). The bridge's HTTP API reads a live call's list with it.
    A key named by ``rtmpStreamSecretRef`` comes from ``keys``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(path, "must be a list")
    found = []
    for index, item in enumerate(value):
        at = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            raise SpecError(at, "must be an object")
        reader = _Reader(item, f"{at}.")
        profile = item.get("profile")
        if profile is not None and (not isinstance(profile, str) or profile not in PROFILES):
            raise SpecError(reader.path("profile"), f"must be one of {', '.join(PROFILES)}")
        destination = Destination(
            _check_rtmp_url(reader.required_string("rtmpUrl"), reader.path("rtmpUrl")),
            _destination_stream(reader, keys),
            profile or default("destinations[].profile"),
            reader.string("name"),
        )
        url = url_problem(PROFILES[destination.profile], destination.rtmp_url)
        if url is not None:
            raise SpecError(reader.path("rtmpUrl"), url)
        found.append(destination)
    problem = violation(value, lambda _: True, BY_PATH["destinations"], path)
    if problem is not None:
        raise SpecError(*problem)
    return tuple(found)


def _destination_stream(reader: _Reader, keys: KeyReader) -> str:
    """A destination's ``rtmpStream``, or the key its ``rtmpStreamSecretRef`` names."""
    at, ref = reader.path("rtmpStreamSecretRef"), reader.data.get("rtmpStreamSecretRef")
    if ref is None:
        return _check_stream(reader.required_string("rtmpStream"), reader.path("rtmpStream"))
    _check_secret_ref(at, ref)
    if reader.string("rtmpStream"):
        raise SpecError(at, "is an alternative to rtmpStream: give one of them")
    return _check_stream(keys(at, str(ref["name"]), str(ref["key"])), at)


def _parse_codecs(reader: _Reader) -> tuple[str, ...]:
    names = reader.string_list("codecs")
    if names is None:
        return DEFAULT_CODECS
    if not names:
        raise SpecError("codecs", "must list at least one codec")
    result: list[str] = []
    for name in names:
        canonical = canonical_codec(name, any_case=False)
        if canonical is None:
            raise SpecError("codecs", f"unknown codec {name!r}; known: {', '.join(KNOWN_CODECS)}")
        result.append(canonical)
    return tuple(dict.fromkeys(result))


def _parse_nat(reader: _Reader, networking: _Reader) -> NatSettings:
    """NAT settings; the operator's ``networking`` adds the local SIP port of a host-port window."""
    bind = reader.string("bindAddress") or default("nat.bindAddress")
    stun = reader.string_list("stunServers") or ()
    low = reader.integer("rtpPortMin")
    high = reader.integer("rtpPortMax")
    assert low is not None and high is not None
    for name in ("rtpPortMin", "rtpPortMax"):
        if isinstance(reader.data.get(name), float):
            # The schema takes 1024.0 for an integer, but the API server's CEL rules that read
            # the window refuse it (a double where they expect an int).
            raise SpecError(reader.path(name), "must be written as an integer (1024, not 1024.0)")
    if (reader.data.get("rtpPortMin") is None) != (reader.data.get("rtpPortMax") is None):
        raise SpecError(reader.path("rtpPortMax"), "and nat.rtpPortMin are set together")
    if high - low < 1:
        raise SpecError(reader.path("rtpPortMax"), "must be above nat.rtpPortMin (RTP + RTCP)")
    keep_alive = reader.integer("keepAliveSeconds")
    assert keep_alive is not None
    if networking.data.get("publicAddressSource") == "NodeExternalIP" and (
        networking.data.get("mode") != "HostNetwork"
    ):
        raise SpecError(
            networking.path("publicAddressSource"), "NodeExternalIP needs mode HostNetwork"
        )
    sip_port = networking.integer("sipLocalPort")
    public = reader.string("publicAddress")
    return NatSettings(bind, public, stun, low, high, keep_alive, sip_port)


def _parse_audio(reader: _Reader) -> AudioSettings:
    bitrate = reader.integer("bitrate")
    rate = reader.integer("sampleRate")
    channels = reader.integer("channels")
    assert bitrate is not None and rate is not None and channels is not None
    if rate not in OUTPUT_SAMPLE_RATES:
        raise SpecError(reader.path("sampleRate"), "must be 44100 or 48000 (what CDNs accept)")
    if channels not in (1, 2):
        raise SpecError(reader.path("channels"), "must be 1 (mono) or 2 (stereo)")
    return AudioSettings(bitrate, rate, channels)


def _parse_video(reader: _Reader, slate_image: str | None) -> VideoSettings:
    interval = reader.integer("maxKeyframeIntervalSeconds")
    assert interval is not None
    slate = reader.mapping("slate")
    text = slate.string("text") or ""
    if not re.fullmatch(BY_PATH["video.slate.text"].pattern or "", text):
        raise SpecError(slate.path("text"), "may hold letters, digits, spaces and .,:;!?'()&+-/#@")
    ref = slate.data.get("imageConfigMapRef")
    image = slate.string("imageFile")
    if ref is not None:
        _check_secret_ref(slate.path("imageConfigMapRef"), ref)
        if image is not None:
            raise SpecError(slate.path("imageFile"), "is an alternative to imageConfigMapRef")
        if slate_image is None:
            raise SpecError(
                slate.path("imageConfigMapRef"),
                "is set but no image file was given (--slate-image-file)",
            )
        image = slate_image
    return VideoSettings(reader.choice("mode"), reader.choice("whenAbsent"), interval, text, image)


def _destination_profiles(document: Mapping[str, Any]) -> list[Profile]:
    """The profiles ``destinations`` names, read leniently: a list or a profile that is wrong
    is left to ``parse_destinations`` to refuse."""
    listed = document.get("destinations")
    items = listed if isinstance(listed, list) else []
    named = (item.get("profile") for item in items if isinstance(item, Mapping))
    return [PROFILES[name] for name in named if isinstance(name, str) and name in PROFILES]


def _check_profiles_met(spec: BridgeSpec) -> None:
    """The call's stream meets its profile and each destination's: a field the spec writes
    against one of them is named (its default met them all, ``profiles.combined_defaults``)."""
    named = [("", PROFILES[spec.profile])]
    named += [
        (f" (the profile of destinations[{index}])", PROFILES[destination.profile])
        for index, destination in enumerate(spec.more_destinations)
    ]
    for whose, profile in named:
        found = stream_problem(profile, spec.output)
        if found is not None:
            raise SpecError(found[0], f"{found[1]}{whose}")


def check_live_destinations(spec: BridgeSpec, more: tuple[Destination, ...], path: str) -> None:
    """Destinations added to a live call (``path`` is the list's name) take its stream as it
    is, fixed when the call was placed: a destination whose profile it breaks is refused,
    naming that destination's profile."""
    for index, destination in enumerate(more):
        found = stream_problem(PROFILES[destination.profile], spec.output)
        if found is not None:
            field_path, problem = found
            raise SpecError(
                f"{path}[{index}].profile",
                f"is not met by this call's stream (fixed when the call was placed): "
                f"{field_path} {problem}",
            )


def _with_dtmf(spec: BridgeSpec, document: Mapping[str, Any]) -> BridgeSpec:
    """``dtmfAfterAnswer`` and ``dtmfMethod``, checked with the REST API's DTMF rules."""
    sequence, method_value = document.get("dtmfAfterAnswer"), document.get("dtmfMethod")
    try:
        method = parse_method(method_value)
    except DtmfError as error:
        raise SpecError("dtmfMethod", error.problem) from error
    if sequence is None:
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
