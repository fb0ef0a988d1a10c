"""Lost video packets, told from RTP sequence numbers, so that a keyframe is asked for at once.

A frame lost whole (often a single packet) leaves no mark in what FFmpeg hands on: the next
frame comes complete, decodes against a reference that never came, and the picture stays broken
until the far end's next periodic keyframe, seconds later. The relay sees every packet, so it
counts them here (RFC 3550 §A.1): a number skipped is lost once ``window`` later packets have
come without it (a packet overtaken by fewer was reordered, not lost); a new SSRC, or a jump too
far to be loss and confirmed by the next packet, starts the count afresh (a failover or a
restarted sender numbers its packets anew).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEQUENCE_WRAP = 1 << 16
#: RFC 3550 §A.1's bounds: further ahead than this is a restart, not loss ...
MAX_DROPOUT = 3000
#: ... and further behind than this is a restart, not a late packet.
MAX_MISORDER = 100
#: A packet overtaken by this many later ones counts as lost: at a phone's 100-300 video
#: packets a second that is a few tens of ms, at a still picture's 25 a second a third of one.
REORDER_WINDOW = 8


@dataclass
class SequenceGaps:
    """Sequence numbers seen for one SSRC at a time; ``packet`` says how many became lost."""

    window: int = REORDER_WINDOW
    ssrc: int | None = None
    highest: int | None = None  # extended by the wraps seen, so that numbers only grow
    missing: set[int] = field(default_factory=set)  # skipped, within the window: may yet come
    lost: int = 0
    _restart_at: int | None = None  # the number that would confirm a jump as a restart

    def packet(self, ssrc: int, sequence: int) -> int:
        """Note one RTP packet; the count of packets found lost by it (mostly 0)."""
        if ssrc != self.ssrc or self.highest is None:
            self._restart(ssrc, sequence)
            return 0
        delta = (sequence - self.highest + SEQUENCE_WRAP // 2) % SEQUENCE_WRAP - SEQUENCE_WRAP // 2
        if not -MAX_MISORDER < delta <= MAX_DROPOUT:
            if sequence == self._restart_at:
                self._restart(ssrc, sequence)
            else:
                self._restart_at = (sequence + 1) % SEQUENCE_WRAP
            return 0
        self._restart_at = None
        number = self.highest + delta
        if delta > 0:
            self.missing.update(range(self.highest + 1, number))
            self.highest = number
        else:
            self.missing.discard(number)  # late or repeated: either way not lost
        gone = {n for n in self.missing if self.highest - n >= self.window}
        self.missing -= gone
        self.lost += len(gone)
        return len(gone)

    def _restart(self, ssrc: int, sequence: int) -> None:
        self.ssrc, self.highest, self._restart_at = ssrc, sequence, None
        self.missing = set()
