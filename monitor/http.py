"""The daemon's HTTP face: metrics for Prometheus, probes for the orchestrator, and a look
at the rules and recent alerts for people.

It reads everything through a :class:`Status` it is given, never from globals, so a test
can serve a fresh registry and a fake status. Nothing here shows an event: ``/alerts``
carries the alerts as outputs send them (sample event ids, never the events).
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ALERTS_LIMIT_MAX = 1000


class Status(Protocol):
    def ready(self) -> tuple[bool, str]:
        """(ready, reason); the reason is shown either way."""
        ...

    def rules(self) -> dict[str, Any] | None:
        """The rule set in force (``None`` before one loaded)."""
        ...

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        """The newest alerts first, at most ``limit``."""
        ...


class HttpServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, status: Status) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.status = status
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/rules", self._rules)
        app.router.add_get("/alerts", self._alerts)
        return app

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server: Any = site._server  # aiohttp offers no public way to read a port-0 address
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the point: the event loop is not stuck.
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reason = self.status.ready()
        return web.json_response(
            {"status": "ready" if ready else "not ready", "reason": reason}, status=200 if ready else 503
        )

    async def _rules(self, request: web.Request) -> web.Response:
        rules = self.status.rules()
        if rules is None:
            return web.json_response({"status": "not loaded"}, status=503)
        return web.json_response(rules)

    async def _alerts(self, request: web.Request) -> web.Response:
        text = request.query.get("limit", "100")
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) >= 1):
            return web.json_response({"error": "limit must be a whole number above zero"}, status=400)
        alerts = self.status.recent_alerts(min(int(text), ALERTS_LIMIT_MAX))
        return web.json_response({"alerts": alerts, "count": len(alerts)})
