"""How a far end says no to a delayed offer (an INVITE without SDP).

RFC 3261 requires every UA to accept one, but some gateways and SBCs answer it with an error
instead of an offer. These responses mean "send me an offer" rather than "I do not want this
call", so the bridge calls again with an ordinary audio offer and, once the call is up, asks for
the far end's video with a re-INVITE without SDP (the same delayed offer, mid-call).
"""

from __future__ import annotations

# 400 (SDP missing), 415 (no body), 488/606 (not acceptable): each seen from real SBCs.
DELAYED_OFFER_REFUSALS = frozenset({400, 415, 488, 606})


def refuses_delayed_offer(status_code: int) -> bool:
    return status_code in DELAYED_OFFER_REFUSALS
