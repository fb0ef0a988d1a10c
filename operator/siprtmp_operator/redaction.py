"""What the operator's own log masks: the value of every secret spec field, however it is printed.

kopf prints resources and their changes whole at ``logLevel: debug`` (``Creation is in
progress: {...}``, ``Updating diff: (('change', ('spec', 'rtmpStream'), 'old', 'new'),)``,
the ``last-handled-configuration`` annotation as JSON inside them), before any handler of ours
has seen the resource; keys reach resources through kubectl as well as the REST API. So the log
is masked by shape, not by learnt values: a secret field's value (``fields.Field.secret``) in
a Python mapping, a JSON object (also one JSON-escaped inside a string), or after a diff's path
naming the field. Nothing is remembered between lines, so nothing grows with the calls seen.
"""

from __future__ import annotations

import re

from siprtmp_contract.fields import walk
from siprtmp_contract.redact import MASK

#: The names of the spec's secret fields (rtmpUrl, rtmpStream, sipPassword, dtmfAfterAnswer...).
SECRET_FIELD_NAMES = frozenset(field.name for _, field in walk() if field.secret)

_NAME = "|".join(sorted(map(re.escape, SECRET_FIELD_NAMES), key=len, reverse=True))


def _quoted(quote: str) -> str:
    """A string between ``quote`` marks, backslash escapes inside kept whole."""
    q = re.escape(quote)
    return rf"{q}(?:\\.|(?!{q})[^\\])*{q}" if len(quote) == 1 else rf"{q}(?:(?!{q}).)*{q}"


#: A string value in a Python repr (either quote) or JSON.
_VALUE = "|".join(_quoted(q) for q in ("'", '"'))
_ENTRIES = (
    # 'rtmpStream': 'key', "rtmpStream": "key", 'rtmpStream': "it's"
    re.compile(rf"(?P<head>(['\"])(?:{_NAME})\2\s*:\s*)(?:{_VALUE})"),
    # {\"rtmpStream\": \"key\"}: JSON escaped inside a JSON string
    re.compile(rf'(?P<head>\\"(?:{_NAME})\\"\s*:\s*)(?:{_quoted(chr(92) + chr(34))})'),
)
#: A kopf diff: ``(op, (..., 'rtmpStream'), old, new)``; old and new are strings or None.
_DIFF = re.compile(
    rf"(?P<head>(['\"])(?:{_NAME})\2\)\s*,\s*)(?:{_VALUE}|None)(?P<sep>\s*,\s*)(?:{_VALUE}|None)"
)


def mask_secret_fields(text: str) -> str:
    """``text`` with the value of each secret field it prints replaced by ``***`` (pure)."""
    for entry in _ENTRIES:
        text = entry.sub(rf"\g<head>'{MASK}'", text)
    return _DIFF.sub(rf"\g<head>'{MASK}'\g<sep>'{MASK}'", text)
