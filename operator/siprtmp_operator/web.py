"""The operator's own HTTP endpoints: /metrics, /healthz (liveness), /readyz (readiness).

Readiness turns true once the operator has started its watches; liveness answers as long as the
event loop does, which is what a hung operator stops doing.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import REGISTRY


class Probes:
    """Mutable readiness flag shared by the handlers and the HTTP server."""

    def __init__(self) -> None:
        self.ready = False


def build_app(probes: Probes) -> web.Application:
    """aiohttp application serving the three endpoints."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if probes.ready:
            return web.Response(text="ready\n")
        return web.Response(text="starting\n", status=503)

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
