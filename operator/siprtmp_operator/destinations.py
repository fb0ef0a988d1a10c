"""A live call's ``destinations``: what the operator tells the bridge to publish to.

The resource's list may change while the call runs (the CRD lets it, unlike the call's other
fields). On each reconcile step of a running bridge the operator sends the list the bridge is
to have, whole (POST /destinations on its status port, with the pod's control token), when it
differs from the last one the bridge took; the bridge opens and closes publishers to match.
Left out of it, with a Warning event each: a destination whose host is off the operator's RTMP
allowlist, one whose stream another live bridge already publishes (``DuplicateStream``
applies per destination; on a live call it drops the destination, not the call), and one whose
``rtmpStreamSecretRef`` names a Secret the running pod does not mount (a pod's Secrets are fixed
when it is created; the bridge reads a key from the Secrets it has, pod.STREAM_KEYS_DIR). A list
the bridge refuses (400: a destination whose profile the call's stream, fixed when it was placed,
breaks) is reported once as a Warning and not resent until the list changes; the bridge goes on
with the destinations it had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from siprtmp_contract.outcome import Reason
from siprtmp_contract.redact import redacted_publish_url

from .policy import destinations_of, host_allowed, stream_key

JSON = dict[str, Any]
#: How long the bridge may take to answer: closing a removed destination takes it up to 2 s
#: (it sends its queue first).
SEND_TIMEOUT_SECONDS = 5.0
#: The fields of a destination the bridge takes (the CRD's, as the resource holds them).
SENT_FIELDS = ("rtmpUrl", "rtmpStream", "rtmpStreamSecretRef", "profile", "name")


@dataclass(frozen=True)
class LiveDestinations:
    """What to send, and a Warning (reason, message) for each destination left out."""

    listed: tuple[JSON, ...]
    left_out: tuple[tuple[str, str], ...]

    @property
    def body(self) -> JSON:
        return {"destinations": list(self.listed)}


def live_destinations(
    spec: Mapping[str, Any],
    rtmp_hosts: tuple[str, ...],
    published_by: Callable[[str], str | None],
    mounted: frozenset[str] = frozenset(),
) -> LiveDestinations:
    """The spec's ``destinations`` a running bridge is to publish to. ``published_by(key)``
    names the live bridge that owns a stream (``policy.duplicate_owner``), None if none does;
    ``mounted`` are the Secrets its pod mounts for keys (``PodObservation.key_secrets``)."""
    listed: list[JSON] = []
    left_out: list[tuple[str, str]] = []
    for index, destination in enumerate(destinations_of(spec)[1:]):
        url = str(destination.get("rtmpUrl") or "")
        shown = f"spec.destinations[{index}] ({redacted_publish_url(url)})"
        host = urlsplit(url).hostname or ""
        key = stream_key(destination)
        owner = published_by(key) if key is not None else None
        ref = destination.get("rtmpStreamSecretRef")
        secret = str(ref.get("name") or "") if isinstance(ref, Mapping) else None
        if secret is not None and secret not in mounted:
            left_out.append(
                (
                    Reason.SECRET_NOT_USABLE,
                    f"{shown}: rtmpStreamSecretRef names Secret {secret}, which the running pod "
                    "does not mount (its Secrets are fixed when it is created: name one a "
                    "destination named then, or give rtmpStream); not published",
                )
            )
        elif rtmp_hosts and not host_allowed(host, rtmp_hosts):
            left_out.append(
                (Reason.NOT_ALLOWED, f"{shown}: {host} is not an allowed RTMP host; not published")
            )
        elif owner is not None:
            left_out.append(
                (
                    Reason.DUPLICATE_STREAM,
                    f"{shown}: the stream is already published by {owner}; not published",
                )
            )
        else:
            listed.append({k: destination[k] for k in SENT_FIELDS if k in destination})
    return LiveDestinations(tuple(listed), tuple(left_out))


def refusal(answer: Mapping[str, Any]) -> tuple[str, str]:
    """The Warning (reason, message) for a list the bridge refused with ``answer`` (its 400
    body: one line naming the destination's field, no key in it)."""
    error = answer.get("error")
    shown = error if isinstance(error, str) and error else "no reason given"
    return Reason.INVALID_SPEC, f"the bridge refused spec.destinations: {shown}"
