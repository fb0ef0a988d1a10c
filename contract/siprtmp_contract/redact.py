"""Keep secrets out of logs, status and metrics: stream keys, URL credentials, SIP passwords.

Two tools, both pure: ``redact_url`` and ``redacted_publish_url`` show an RTMP URL with its
credentials masked (what status shows on purpose), and a ``Scrubber`` masks every occurrence of
a run's secrets in whatever text or document the bridge emits, however it got there (PyAV
appends the URL it was given to its errors; a library may quote, escape or split it). The
bridge passes everything it prints through one Scrubber (the log's formatter and the status
reporter) instead of taking care at each call site.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

MASK = "***"
#: Shorter secrets are not masked: replacing every "ab" in a log line hides nothing worth it.
MIN_SECRET_LENGTH = 3
#: Pieces of a stream key (its name, its parameters' values) are masked from this length on.
MIN_PART_LENGTH = 4
#: Where stream keys are cut into pieces by the software that reads them: FFmpeg and servers
#: split at ``?`` (name, then parameters) and ``&``; fragments and path separators too.
_KEY_SEPARATORS = re.compile(r"[?&#/;]")


def redact_url(url: str) -> str:
    """An RTMP URL with its userinfo, query string and fragment masked; host, port, path kept."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username or parts.password:
        netloc = f"{MASK}@{netloc}"
    query = MASK if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redacted_publish_url(rtmp_url: str) -> str:
    """``rtmpUrl/***`` as status and logs show the publish URL: the stream key is never looked
    at, so no character in it (``?``, ``#``, ``/``) can make part of it show."""
    return f"{redact_url(rtmp_url).rstrip('/')}/{MASK}"


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret parts of an RTMP URL: its userinfo, query string (and each value), fragment."""
    try:
        parts = urlsplit(url)
        found = [parts.username, parts.password]
    except ValueError:
        return (url,)
    if parts.query:
        found.append(parts.query)
        found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    found.append(parts.fragment)
    return tuple(s for s in found if s)


def key_parts(key: str) -> tuple[str, ...]:
    """A stream key and the pieces of it that software prints on their own.

    The whole key; the stream name before any ``?`` or ``#`` (the key itself at most CDNs); what
    follows the first ``?`` (the arguments servers print) and what follows the first ``#``, in
    either order (``#?000`` prints its arguments ``000``); each piece between ``?``, ``&``,
    ``#``, ``/``, ``;`` (a parameter's value rather than the whole ``name=value``) long enough to
    be a credential (Facebook's ``s_sc`` signature, a ``token=`` value). Parameter names stay
    readable.
    """
    name = re.split(r"[?#]", key, maxsplit=1)[0]
    tails = (key.partition("?")[2], key.partition("#")[2])
    segments = (segment.partition("=") for segment in _KEY_SEPARATORS.split(key))
    pieces = [v if eq else n for n, eq, v in segments if len(v if eq else n) >= MIN_PART_LENGTH]
    return tuple(dict.fromkeys(s for s in (key, name, *tails, *pieces) if s))


def encoded_forms(secret: str) -> tuple[str, ...]:
    """``secret`` as it may appear in printed text: raw, inside a Python repr (PyAV's errors
    repr the URL: backslashes doubled, ``'`` escaped or not), inside JSON, percent-encoded, or
    percent-decoded."""
    escaped = "".join(repr(c)[1:-1] for c in secret)  # each character's repr, quotes bare
    return tuple(
        dict.fromkeys(
            (
                secret,
                escaped,
                escaped.replace("'", "\\'"),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
                quote(secret, safe=""),
                quote(secret),
                unquote(secret),
            )
        )
    )


def _sorted_forms(secrets: Iterable[str | None]) -> tuple[str, ...]:
    forms = {
        form
        for secret in secrets
        if secret and len(secret) >= MIN_SECRET_LENGTH
        for form in encoded_forms(secret)
        if len(form) >= MIN_SECRET_LENGTH
    }
    return tuple(sorted(forms, key=lambda s: (-len(s), s)))


@dataclass
class Scrubber:
    """Masks every form of each secret; longest first, so a key goes before its pieces.

    Not frozen: a live call that gains a destination gains its stream key as a secret
    (``widen``), and the log's formatter and the status reporter share the run's one Scrubber.
    """

    patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, secrets: Iterable[str | None]) -> Scrubber:
        return cls(_sorted_forms(secrets))

    def widen(self, secrets: Iterable[str | None]) -> None:
        """Mask these too from now on (one assignment: a reader sees the old or the new set)."""
        self.patterns = _sorted_forms((*self.patterns, *secrets))

    def text(self, text: str) -> str:
        for pattern in self.patterns:
            if pattern in text:
                text = text.replace(pattern, MASK)
        return text

    def document(
        self,
        value: Any,
        vocabulary: frozenset[tuple[str, ...]] = frozenset(),
        at: tuple[str, ...] = (),
    ) -> Any:
        """A JSON-like document with every string value scrubbed, except the values at the
        ``vocabulary`` paths: fields whose values are fixed words (a phase, a state), which
        carry no secret but may equal a short piece of one (a stream named ``slate``). Keys
        are the document's own field names."""
        if isinstance(value, str):
            return value if at in vocabulary else self.text(value)
        if isinstance(value, Mapping):
            return {k: self.document(v, vocabulary, (*at, str(k))) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.document(v, vocabulary, at) for v in value]
        return value


class ScrubbingFormatter(logging.Formatter):
    """Formats a record, traceback included, then masks every secret in the result (the
    bridge's log, through its run's Scrubber, and the operator's, by the fields' shape)."""

    def __init__(self, scrub: Callable[[str], str], fmt: str, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))
