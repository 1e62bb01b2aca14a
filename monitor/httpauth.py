"""The bearer token in front of the daemon's HTTP endpoints (``http.auth_token``).

``/alerts`` and ``/rules`` say who is being watched and for what, so with a token set
every request needs ``Authorization: Bearer <token>``; only the probes an orchestrator
sends without credentials (``/healthz``, ``/readyz``) are open, and ``/metrics`` when
``http.open_metrics`` lets a Prometheus without the token scrape (metric labels name no
actor or customer). The check runs before routing, so an unknown path answers 401 too
and a caller without the token learns nothing of what is served.

The comparison is :func:`hmac.compare_digest` over bytes, so its time does not tell how
much of a guess was right; the token is never logged, and a refusal says only the path.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
CHALLENGE = 'Bearer realm="exfil-monitor"'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class TokenAuth:
    token: str = field(repr=False)
    open_metrics: bool = False
    on_refused: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("the HTTP auth token is empty")

    def is_open(self, path: str) -> bool:
        return path in OPEN_PATHS or (self.open_metrics and path == "/metrics")

    def allows(self, authorization: str | None) -> bool:
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), self.token.encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.is_open(request.path) or self.allows(request.headers.get("Authorization")):
            return await handler(request)
        if self.on_refused is not None:
            self.on_refused(request.path)
        return web.json_response({"error": "unauthorized: send Authorization: Bearer <http.auth_token>"},
                                 status=401, headers={"WWW-Authenticate": CHALLENGE})  # fmt: skip
