"""The DTMF rules: the key and pause alphabet, the two ways keys travel, and what a sequence
may hold.

The spec's ``dtmfAfterAnswer``, the bridge's POST /dtmf and the operator's REST API check keys
with the same functions, and the CRD and OpenAPI patterns are ``SEQUENCE_PATTERN``. Playing keys
out in a call is the bridge's (siprtmp_bridge.dtmf).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

#: RFC 4733 events 0-15: the 16 keys of a DTMF keypad.
DTMF_KEYS = "0123456789*#ABCD"
#: Pauses between keys, as phone dialers write them: ``w`` half a second, ``W`` one second
#: (a conference's PIN prompt may need a moment before it listens: ``"W1234#"``).
PAUSE_SECONDS = {"w": 0.5, "W": 1.0}
MAX_DIGITS = 32
_PAUSES = "".join(PAUSE_SECONDS)
#: What ``parse_digits`` takes (one to MAX_DIGITS keys, any pauses around them): the CRD's
#: pattern for ``dtmfAfterAnswer`` and the REST API's.
SEQUENCE_PATTERN = f"^[{_PAUSES}]*([{DTMF_KEYS}abcd][{_PAUSES}]*){{1,{MAX_DIGITS}}}$"


class DtmfMethod(StrEnum):
    """How keys reach the far end: RFC 2833/4733 events in the bridge's RTP, or one SIP INFO
    (``application/dtmf-relay``) per key for the far ends that ignore in-band events."""

    RFC2833 = "RFC2833"
    INFO = "INFO"


class DtmfError(ValueError):
    """Digits that cannot be sent: ``str()`` names the field, as the spec's errors do."""

    def __init__(self, problem: str, field_path: str = "dtmf") -> None:
        super().__init__(f"{field_path}: {problem}")
        self.field_path = field_path
        self.problem = problem


def parse_digits(value: Any) -> str:
    """Keys and pauses: keypad keys (case-insensitive A-D) and ``w``/``W`` pauses, at least one
    key and at most MAX_DIGITS of them."""
    if not isinstance(value, str) or not value:
        raise DtmfError("is required: a string of 0-9, *, #, A-D, with pauses w (0.5 s), W (1 s)")
    digits = "".join(c if c in PAUSE_SECONDS else c.upper() for c in value)
    bad = sorted({c for c in digits if c not in DTMF_KEYS and c not in PAUSE_SECONDS})
    if bad:
        raise DtmfError(f"has characters that are neither DTMF keys nor pauses: {''.join(bad)!r}")
    keys = sum(c in DTMF_KEYS for c in digits)
    if keys == 0:
        raise DtmfError("has only pauses: at least one key is needed")
    if keys > MAX_DIGITS:
        raise DtmfError(f"at most {MAX_DIGITS} digits at a time, got {keys}")
    return digits


def parse_method(value: Any) -> DtmfMethod:
    """A method name in any case; RFC 2833 when absent (what the seed's API sent)."""
    if value is None or value == "":
        return DtmfMethod.RFC2833
    if isinstance(value, str) and value.strip().upper() in DtmfMethod.__members__:
        return DtmfMethod[value.strip().upper()]
    raise DtmfError(f"must be one of {', '.join(DtmfMethod)}, got {value!r}", "type")
