"""A signed JSON webhook, for a SOAR or ticketing system: one POST per record.

The body is the alert or resolution record itself (masked already), as JSON. With a
``secret`` every request carries

    X-Exfil-Monitor-Timestamp: <unix seconds>
    X-Exfil-Monitor-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">

so a receiver can check that the monitor sent it and that it is not a replay: it
recomputes the HMAC over the exact bytes it got and refuses a timestamp older than five
minutes (:func:`verify` is that check, and docs/paging.md shows it as a receiver).

Answers: any 2xx is success; 408, 429 (honouring ``Retry-After``) and 5xx are retried;
any other 4xx is parked, since the receiver refused the record and will again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.outputs.base import Record
from monitor.outputs.httpsend import HttpOutput, HttpOutputConfig, http_url
from monitor.secrets import resolve_secret

TIMESTAMP_HEADER = "X-Exfil-Monitor-Timestamp"
SIGNATURE_HEADER = "X-Exfil-Monitor-Signature"
_OWN_HEADERS = {"content-type", TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower()}


class WebhookConfig(HttpOutputConfig):
    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None  # without one, requests are not signed
    secret_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not http_url(v):
            raise ValueError(f"expected an http:// or https:// URL with a host, got {v!r}")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        taken = sorted(k for k in v if k.lower() in _OWN_HEADERS)
        if taken:
            raise ValueError(f"the output sets these headers itself: {', '.join(taken)}")
        return v

    @model_validator(mode="after")
    def _secret(self) -> WebhookConfig:
        resolve_secret(self, "secret", required=False)
        return self


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 under ``secret`` of ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float,
           tolerance: float = 300) -> bool:  # fmt: skip
    """What a receiver checks: the signature over these exact bytes, and a timestamp
    within ``tolerance`` seconds of ``now`` either way (an old one is a replay)."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def request(record: Mapping[str, Any], config: WebhookConfig, now: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers for one record, signed at ``now`` when there is a secret."""
    body = orjson.dumps(record)
    headers = {**config.headers, "Content-Type": "application/json"}
    if config.secret is not None:
        ts = str(int(now))
        headers[TIMESTAMP_HEADER] = ts
        headers[SIGNATURE_HEADER] = sign(config.secret.get_secret_value(), ts, body)
    return body, headers


class WebhookOutput(HttpOutput):
    """One URL, one POST per record, each signed when it is sent (a retry an hour later is
    signed afresh, so the receiver does not refuse it as a replay)."""

    kind = "webhook"
    max_batch = 1  # a record per request; a retry never repeats one the receiver took

    def __init__(self, config: WebhookConfig, **kw: Any) -> None:
        super().__init__(config.label, send_timeout=config.send_timeout / 1000, **kw)
        self.config = config

    async def _send(self, records: Sequence[Record]) -> None:
        for r in records:
            body, headers = request(r, self.config, self.clock())
            await self.post(self.config.url, body, headers)
