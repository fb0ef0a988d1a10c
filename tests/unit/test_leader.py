"""The election's pure part: when a replica may take the Lease, and what it writes."""

from __future__ import annotations

from datetime import UTC, datetime

from siprtmp_operator.leader import LeaseView, Observation, lease_body, may_take, observe

NOW = datetime(2026, 12, 4, 3, 4, 5, tzinfo=UTC)


def view(holder: str, renew: str = "t1", transitions: int = 0, rv: str = "1") -> LeaseView:
    return LeaseView(holder, 8.0, renew, transitions, rv)


def test_a_free_released_or_own_lease_is_taken_at_once() -> None:
    assert may_take("me", Observation(None, 0.0), 0.0)
    assert may_take("me", Observation(view(""), 0.0), 0.0)
    assert may_take("me", Observation(view("me"), 0.0), 0.0)  # my container restarted


def test_a_held_lease_is_taken_only_after_its_duration_without_a_change() -> None:
    seen = observe(None, view("other"), 100.0)
    assert not may_take("me", seen, 107.9)
    # A renewal (the record changed) restarts the standby's own clock...
    renewed = observe(seen, view("other", renew="t2", rv="2"), 106.0)
    assert renewed.changed_at == 106.0
    assert not may_take("me", renewed, 113.9)
    assert may_take("me", renewed, 114.0)
    # ...a read of the same record does not (the resourceVersion alone is no renewal).
    assert observe(renewed, view("other", renew="t2", rv="3"), 110.0).changed_at == 106.0


def test_what_a_holder_writes() -> None:
    created = lease_body("l", "ns", "me", 8.0, NOW, None)
    assert created["metadata"] == {"name": "l", "namespace": "ns"}
    spec = created["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == (
        "me",
        8,
        0,
    )
    # A zero microsecond part would be dropped by the client and refused by the API server.
    assert spec["renewTime"].microsecond == 1 and spec["acquireTime"] == spec["renewTime"]
    renewed = lease_body("l", "ns", "me", 8.0, NOW, view("me", transitions=2, rv="7"))
    assert renewed["metadata"]["resourceVersion"] == "7"  # a conflict if someone wrote since
    assert renewed["spec"]["leaseTransitions"] == 2 and "acquireTime" not in renewed["spec"]
    taken = lease_body("l", "ns", "me", 8.0, NOW, view("other", transitions=2))
    assert taken["spec"]["leaseTransitions"] == 3 and "acquireTime" in taken["spec"]
    released = lease_body("l", "ns", "", 8.0, NOW, view("me", transitions=3))
    assert released["spec"]["holderIdentity"] == "" and released["spec"]["leaseTransitions"] == 3
