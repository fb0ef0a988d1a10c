"""The REST API's rate limit: the pure token buckets, and the real aiohttp app answering 429."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from siprtmp_operator.api.app import build_app
from siprtmp_operator.api.calls import Calls
from siprtmp_operator.api.ratelimit import MAX_CLIENTS, RateLimiter
from siprtmp_operator.api.store import CallStore
from siprtmp_operator.kube import Kube
from siprtmp_operator.settings import Settings


def test_a_burst_then_the_rate_and_each_address_its_own() -> None:
    limiter = RateLimiter(per_minute=60, burst=3)
    assert [limiter.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", 100.0) == 1.0  # one a second: the next token in a second
    assert limiter.take("b", 100.0) == 0.0
    assert limiter.take("a", 100.5) == 0.5
    assert limiter.take("a", 101.0) == 0.0  # refilled
    assert limiter.take("a", 101.0) > 0
    assert [limiter.take("a", 200.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # never above burst
    assert limiter.take("a", 200.0) > 0


def test_no_limit_and_a_bounded_memory() -> None:
    assert all(RateLimiter(0, 0).take("a", 0.0) == 0.0 for _ in range(1000))
    limiter = RateLimiter(per_minute=60, burst=2)
    for n in range(MAX_CLIENTS):
        limiter.take(f"10.0.{n // 256}.{n % 256}", 0.0)
    limiter.take("late", 10.0)  # every earlier bucket has refilled by now: forgotten
    assert set(limiter.buckets) == {"late"}
    busy = RateLimiter(per_minute=60, burst=2)
    for n in range(MAX_CLIENTS + 1):
        busy.take(f"client-{n}", n / 1e6)  # all still draining: the longest-seen tenth goes
    assert len(busy.buckets) <= MAX_CLIENTS * 0.9
    assert "client-0" not in busy.buckets and f"client-{MAX_CLIENTS}" in busy.buckets


def test_the_app_answers_429_with_retry_after_before_checking_the_token() -> None:
    async def run() -> list[tuple[int, str | None]]:
        calls = Calls(CallStore(Kube(), "calls"), Settings())  # never reached: refused first
        app = build_app(calls, "t" * 16, (), RateLimiter(per_minute=6, burst=2))
        async with TestClient(TestServer(app)) as client:
            answers = []
            for _ in range(4):
                response = await client.post("/rest-api/call/find_all")
                answers.append((response.status, response.headers.get("Retry-After")))
            console = await client.get("/rest-api/openapi.json")  # not a call: not limited
            answers.append((console.status, None))
            return answers

    answers = asyncio.run(run())
    assert answers[:2] == [(401, None), (401, None)]
    assert [status for status, _ in answers[2:4]] == [429, 429]
    assert all(1 <= int(wait or 0) <= 10 for _, wait in answers[2:4])
    assert answers[4] == (200, None)
