"""The operator's own HTTP endpoints: /metrics, /healthz (liveness), /readyz (readiness).

Readiness needs both: the operator has started, and the API server answered it recently (an
operator that cannot reach or authenticate to the API server must not count as rolled out; the
real-node tier once passed with exactly that). Liveness answers as long as the event loop does,
which is what a hung operator stops doing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import REGISTRY

#: How long one answer from the API server keeps the operator ready (checks run every
#: ``API_CHECK_INTERVAL_SECONDS``, so a few may fail before readiness drops).
API_ANSWER_VALID_SECONDS = 35.0
API_CHECK_INTERVAL_SECONDS = 10.0


def is_ready(started: bool, api_answered_at: float | None, now: float) -> bool:
    """Started, and the API server answered within ``API_ANSWER_VALID_SECONDS``."""
    return (
        started
        and api_answered_at is not None
        and now - api_answered_at <= API_ANSWER_VALID_SECONDS
    )


class Probes:
    """Readiness inputs shared by the handlers and the HTTP server (monotonic clock)."""

    def __init__(self) -> None:
        self.started = False
        self.api_answered_at: float | None = None

    def ready(self) -> bool:
        return is_ready(self.started, self.api_answered_at, time.monotonic())


async def keep_checking_api(
    probes: Probes, answers: Callable[[], bool], interval: float = API_CHECK_INTERVAL_SECONDS
) -> None:
    """Ask the API server (``answers`` blocks, so in a thread) every ``interval`` seconds, and
    every second until it first answers, so a fresh operator turns ready quickly."""
    loop = asyncio.get_running_loop()
    while True:
        if await loop.run_in_executor(None, answers):
            probes.api_answered_at = time.monotonic()
        await asyncio.sleep(interval if probes.api_answered_at is not None else 1.0)


def build_app(probes: Probes) -> web.Application:
    """aiohttp application serving the three endpoints."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if probes.ready():
            return web.Response(text="ready\n")
        if not probes.started:
            return web.Response(text="starting\n", status=503)
        return web.Response(text="no answer from the API server\n", status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start(probes: Probes, host: str, port: int) -> web.AppRunner:
    """Start serving; the caller keeps the runner to stop it at shutdown."""
    runner = web.AppRunner(build_app(probes), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
