"""The daemon's HTTP face: metrics for Prometheus, probes for the orchestrator, and a look
at the rules and recent alerts for people.

It reads everything through a :class:`Status` it is given, never from globals, so a test
can serve a fresh registry and a fake status. Nothing here shows an event: ``/alerts``
carries the alerts as outputs send them (masked, with sample event ids, never the
events). With ``http.auth_token`` set, :mod:`monitor.httpauth` guards every endpoint but
the probes, and ``POST /-/reload`` reloads the rules (without a token it does not exist:
an unauthenticated caller must not be able to change what is detected).

Connections are bounded (:class:`Limits`), because each holds a file descriptor that the
Kafka clients need too: a connection must send its first request's headers within
``header_timeout``; aiohttp closes one idle for ``keepalive_timeout``; at most
``max_connections`` are open (fewer when RLIMIT_NOFILE is low). At the cap, the oldest
connection not in a request is closed to make room, so a probe still gets in while
hundreds of half-sent connections wait; only when every connection is in a request is the
new one refused (503). Each closing and every ``accept`` that failed for want of
descriptors is counted (``http_refused``) and logged.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.health import Report
from monitor.httpauth import TokenAuth

ALERTS_LIMIT_MAX = 1000
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_EMFILE = "socket.accept() out of system resource"  # what asyncio's accept loop reports

Refusal = Callable[[str, str], None]  # (reason, detail): telemetry.http_refused
Reload = Callable[[], Awaitable[dict[str, Any]]]  # one rule reload; its outcome (monitor.reload)


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 5.0
    keepalive_timeout: float = 15.0
    max_connections: int = 100
    reserved_descriptors: int = 256

    def connection_cap(self) -> int:
        """``max_connections``, or fewer so that ``reserved_descriptors`` stay free."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - self.reserved_descriptors))


class Status(Protocol):
    def health(self) -> Report:
        """Ready, degraded or not ready, and why (see :mod:`monitor.health`)."""
        ...

    def rules(self) -> dict[str, Any] | None:
        """The rule set in force (``None`` before one loaded)."""
        ...

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        """The newest alerts first, at most ``limit``."""
        ...


class _Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the bookkeeping of :class:`HttpServer`."""

    def __init__(self, server: HttpServer, inner: Any) -> None:
        self.server = server
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.served = False  # a request's headers arrived
        self.busy = 0  # requests in a handler
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._open[transport] = self
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.server.limits.header_timeout, self._header_deadline)
        self.inner.connection_made(transport)

    def _header_deadline(self) -> None:
        if not self.served and self.transport is not None:
            self.server._refused("header_timeout", f"no request within {self.server.limits.header_timeout:g}s")
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.server._open.pop(self.transport, None)
        self.inner.connection_lost(exc)


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(_BUSY)  # type: ignore[attr-defined]
        transport.close()


class HttpServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, status: Status, *,
                 limits: Limits | None = None, on_refused: Refusal | None = None,
                 auth: TokenAuth | None = None, reload: Reload | None = None) -> None:  # fmt: skip
        self.host = host
        self.port = port
        self.registry = registry
        self.status = status
        self.limits = limits or Limits()
        self.on_refused = on_refused
        self.auth = auth  # http.auth_token (monitor.httpauth): None serves everyone
        # POST /-/reload changes what the daemon detects: served only behind the token.
        self.reload = reload if auth is not None else None
        self.cap = self.limits.connection_cap()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._open: dict[Any, _Connection] = {}  # transport -> connection, oldest first
        self._previous_handler: Any = None

    def app(self) -> web.Application:
        auth = [self.auth.middleware] if self.auth is not None else []
        app = web.Application(middlewares=[self._track, *auth])
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/rules", self._rules)
        app.router.add_get("/alerts", self._alerts)
        if self.reload is not None:
            app.router.add_post("/-/reload", self._reload)
        return app

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        if self._runner is not None:
            raise RuntimeError("the HTTP server was already started")
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                               keepalive_timeout=self.limits.keepalive_timeout)  # fmt: skip
        await runner.setup()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._factory(runner), self.host, self.port,
                                                    family=socket.AF_UNSPEC, reuse_address=True)  # fmt: skip
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = self._server.sockets[0].getsockname()[1]
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        server, self._server = self._server, None
        if server is not None:
            server.close()
            asyncio.get_running_loop().set_exception_handler(self._previous_handler)
        if runner is not None:
            await runner.cleanup()
        for transport in list(self._open):
            transport.abort()

    # ---------------------------------------------------------- connection bounds

    def _factory(self, runner: web.AppRunner) -> Callable[[], asyncio.Protocol]:
        make = runner.server
        assert make is not None

        def factory() -> asyncio.Protocol:
            if len(self._open) >= self.cap:
                idle = next((c for c in self._open.values() if not c.busy), None)
                if idle is None:
                    self._refused("max_connections", f"{self.cap} connections, all in a request: refused a new one")
                    return _Refuse()
                self._refused("max_connections", f"{self.cap} connections: closed the oldest not in a request")
                self._open.pop(idle.transport, None)
                if idle.transport is not None:
                    idle.transport.abort()
            return _Connection(self, make())

        return factory

    @web.middleware
    async def _track(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:  # fmt: skip
        conn = self._open.get(request.transport)
        if conn is None:
            return await handler(request)
        conn.served = True
        conn.busy += 1
        self._open[request.transport] = self._open.pop(request.transport)  # newest activity last
        try:
            return await handler(request)
        finally:
            conn.busy -= 1

    def _refused(self, reason: str, detail: str) -> None:
        if self.on_refused is not None:
            self.on_refused(reason, detail)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(_EMFILE):
            self._refused("descriptors", f"accept failed: {context.get('exception')!r}")
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the point: the event loop is not stuck.
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        report = self.status.health()
        return web.json_response(report.to_dict(), status=200 if report.ready else 503)

    async def _rules(self, request: web.Request) -> web.Response:
        rules = self.status.rules()
        if rules is None:
            return web.json_response({"status": "not loaded"}, status=503)
        return web.json_response(rules)

    async def _reload(self, request: web.Request) -> web.Response:
        assert self.reload is not None
        outcome = await self.reload()
        return web.json_response(outcome, status=200 if outcome["outcome"] == "success" else 422)

    async def _alerts(self, request: web.Request) -> web.Response:
        text = request.query.get("limit", "100")
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) >= 1):
            return web.json_response({"error": "limit must be a whole number above zero"}, status=400)
        alerts = self.status.recent_alerts(min(int(text), ALERTS_LIMIT_MAX))
        return web.json_response({"alerts": alerts, "count": len(alerts)})
