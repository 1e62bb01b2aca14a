"""A local HTTP receiver that records what it is sent and answers as scripted.

PagerDuty and Slack cannot exist here, so their tests POST to this instead: each request
is recorded (method, path, headers, body) and answered with the next scripted
:class:`Reply` (202, 400, 500, 429 with ``Retry-After``, or a hang that never answers),
then with the default reply once the script is used up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False  # accept the request and never answer


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() when it arrived, for pacing checks

    def json(self) -> Any:
        return orjson.loads(self.body)


class Recorder:
    def __init__(self, *script: Reply, default: Reply | None = None) -> None:
        self.script = list(script)
        self.default = default or Reply(200, "ok")
        self.requests: list[Request] = []
        self.answered: list[int | None] = []  # the status each request got (None: a hang)
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Request(request.method, request.path, dict(request.headers), body, time.monotonic()))
        reply = self.script.pop(0) if self.script else self.default
        self.answered.append(None if reply.hang else reply.status)
        if reply.hang:
            await self._released.wait()
        return web.Response(status=reply.status, text=reply.body, headers=dict(reply.headers))
