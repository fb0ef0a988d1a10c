"""The HTTP adapter: routes, token, CORS, JSON in and out. Decisions live in ``calls``.

Served on its own port (``SIPRTMP_API_PORT``) by the operator process: ``/rest-api/call/*`` and
``/rest-api/push/*`` (bearer token), ``/rest-api/openapi.json`` and the console under
``/console/`` (no token: the page asks for it and sends it with each call).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from ..kube import Kube
from ..settings import Settings
from .auth import authorized, cors_headers
from .bodies import parse_json
from .calls import Calls
from .errors import ApiError
from .openapi import openapi_document
from .ratelimit import RateLimiter
from .store import CallStore

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
CONSOLE_FILES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The paths of the calls: each rate-limited, each asks for the token.
GUARDED = ("/rest-api/call/", "/rest-api/push/")


def _json(status: int, doc: Any) -> web.Response:
    return web.json_response(doc, status=status)


def _error(error: ApiError) -> web.Response:
    response = _json(error.status, error.body())
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sip-rtmp"'
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def build_app(
    calls: Calls,
    token: str,
    cors_origins: tuple[str, ...],
    limiter: RateLimiter | None = None,
) -> web.Application:
    """The aiohttp application; ``calls`` holds everything that talks to the cluster."""
    limiter = limiter or RateLimiter(per_minute=0, burst=0)

    def guard_call(request: web.Request) -> None:
        """The rate limit, then the token, of one request to a GUARDED path."""
        client = request.remote or "unknown"
        wait = limiter.take(client, time.monotonic())
        if wait > 0:
            seconds = math.ceil(wait)
            raise ApiError(
                429, f"too many requests from {client}: retry in {seconds} s", None, seconds
            )
        if not authorized(request.headers.get("Authorization"), token):
            # Who tried, never what they sent: a mistyped token is one character from the real one.
            log.warning(
                "REST API: refused a bearer token from %s for %s %s",
                client,
                request.method,
                request.path,
            )
            raise ApiError(401, "a bearer token is required (Authorization: Bearer …)")

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """CORS on every answer; the rate limit and the token on every call; errors as JSON,
        never a traceback."""
        cors = cors_headers(request.headers.get("Origin"), cors_origins)
        if request.method == "OPTIONS" and request.path.startswith("/rest-api/"):
            return web.Response(status=204 if cors else 403, headers=cors)
        try:
            if request.path.startswith(GUARDED):
                guard_call(request)
            response = await handler(request)
        except ApiError as error:
            response = _error(error)
        except web.HTTPRequestEntityTooLarge:
            response = _error(ApiError(413, f"body: larger than {MAX_BODY_BYTES} bytes", "body"))
        except web.HTTPException as exc:  # 404/405 of the router
            response = _error(ApiError(exc.status, exc.reason))
        except Exception:
            log.exception("REST API: %s %s failed", request.method, request.path)
            response = _error(ApiError(500, "internal error (logged by the operator)"))
        response.headers.update(cors)
        return response

    async def body(request: web.Request) -> Any:
        return parse_json(await request.read())

    async def startup(request: web.Request) -> web.Response:
        return _json(200, await calls.startup(await body(request)))

    async def terminate(request: web.Request) -> web.Response:
        return _json(200, await calls.terminate(await body(request)))

    async def find(request: web.Request) -> web.Response:
        return _json(200, await calls.find(await body(request)))

    async def find_all(_: web.Request) -> web.Response:
        return _json(200, await calls.find_all())

    async def send_dtmf(request: web.Request) -> web.Response:
        return _json(200, await calls.send_dtmf(await body(request)))

    async def push_startup(request: web.Request) -> web.Response:
        return _json(200, await calls.push_startup(await body(request)))

    async def push_find(request: web.Request) -> web.Response:
        return _json(200, await calls.push_find(await body(request)))

    async def push_terminate(request: web.Request) -> web.Response:
        return _json(200, await calls.push_terminate(await body(request)))

    async def openapi(_: web.Request) -> web.Response:
        return _json(200, openapi_document())

    async def console(request: web.Request) -> web.Response:
        name = request.match_info.get("name") or "index.html"
        if name not in CONSOLE_FILES:
            raise ApiError(404, "not found")
        text = resources.files(__package__).joinpath("console", name).read_text("utf-8")
        return web.Response(
            text=text,
            content_type=CONSOLE_FILES[name],
            headers={
                "Cache-Control": "no-cache",
                # The page runs only its own script and talks only to its own origin.
                "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def root(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/console/"})

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY_BYTES)
    for name, handler in (
        ("startup", startup),
        ("terminate", terminate),
        ("find", find),
        ("find_all", find_all),
        ("send_dtmf", send_dtmf),
    ):
        app.router.add_post(f"/rest-api/call/{name}", handler)
    for name, handler in (
        ("startup", push_startup),
        ("find", push_find),
        ("terminate", push_terminate),
    ):
        app.router.add_post(f"/rest-api/push/{name}", handler)
    app.router.add_get("/rest-api/call/find_all", find_all)
    app.router.add_get("/rest-api/openapi.json", openapi)
    app.router.add_get("/console/", console)
    app.router.add_get("/console/{name}", console)
    app.router.add_get("/", root)
    return app


async def start(settings: Settings, kube: Kube) -> web.AppRunner:
    """Serve the API as ``settings`` say; the caller keeps the runner to stop it at shutdown."""
    calls = Calls(CallStore(kube, settings.api_namespace), settings)
    limiter = RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst)
    app = build_app(calls, settings.api_token, settings.api_cors_origins, limiter)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.api_host, settings.api_port).start()
    log.info(
        "REST API and console on %s:%d, calls in namespace %s",
        settings.api_host,
        settings.api_port,
        settings.api_namespace,
    )
    return runner
