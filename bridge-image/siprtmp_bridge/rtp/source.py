"""Which source the video relay takes media from: the far end's, never a third party's.

Anyone who can reach the bridge's video port could otherwise put pictures on a public stream.
As pjmedia does for audio RTP, media is taken from the host the far end's SDP names (at once,
whatever else was taken), and a source elsewhere (a far end behind NAT, whose packets come from
its public address) only after it alone has sent ``PROBATION_PACKETS`` in a row. Once a source
is taken, another one elsewhere replaces it only that way and only after the taken one has been
silent for ``SILENCE_SECONDS`` (an SBC failing over); while it talks, everything else is
dropped. Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Address = tuple[str, int]

#: Packets in a row a source must send, with nothing from the far end's own address, to be
#: taken (pjmedia's NAT probation for RTP, PJMEDIA_RTP_NAT_PROBATION_CNT, is 10).
PROBATION_PACKETS = 10
#: How long the taken source must have been silent before another may replace it.
SILENCE_SECONDS = 1.0


@dataclass
class SourceLatch:
    """``offered_host``: the host the far end's SDP names (None: unknown, so probation only)."""

    offered_host: str | None
    source: Address | None = None
    dropped: int = 0
    _last_taken: float = 0.0
    _candidate: Address | None = None
    _candidate_count: int = field(default=0, repr=False)

    def admit(self, sender: Address, now: float) -> bool:
        """Whether a packet from ``sender`` is the far end's (and so forwarded)."""
        if sender == self.source:
            self._take(sender, now)
            return True
        if sender[0] == self.offered_host and (
            self.source is None or self.source[0] != self.offered_host or self._silent(now)
        ):
            self._take(sender, now)  # the offered host itself: no probation
            return True
        if self.source is None or self._silent(now):
            self._candidate_count = self._candidate_count + 1 if sender == self._candidate else 1
            self._candidate = sender
            if self._candidate_count >= PROBATION_PACKETS:
                self._take(sender, now)
                return True
        self.dropped += 1
        return False

    def same_host(self, sender: Address) -> bool:
        """RTCP comes from the far end's host, on a port of its own: from the taken source's
        host, or the offered one before anything was taken."""
        host = self.source[0] if self.source is not None else self.offered_host
        return sender[0] == host

    def _silent(self, now: float) -> bool:
        return now - self._last_taken >= SILENCE_SECONDS

    def _take(self, sender: Address, now: float) -> None:
        self.source, self._last_taken = sender, now
        self._candidate, self._candidate_count = None, 0
