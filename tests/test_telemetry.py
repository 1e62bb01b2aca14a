"""Loggers: one per stream, nothing global configured, JSON rendered by orjson."""

from __future__ import annotations

import io
import json

import structlog

from monitor.telemetry import configure_logging


def test_two_loggers_write_to_their_own_streams_and_leave_structlog_alone() -> None:
    before = structlog.get_config()
    a, b = io.StringIO(), io.StringIO()
    log_a = configure_logging("json", "info", a)
    log_b = configure_logging("console", "error", b)
    log_a.info("from_a", n=1, nested={"k": [1, 2]}, big=2**70)
    log_b.info("below_level")
    log_b.error("from_b")
    log_a.debug("below_level")
    line = json.loads(a.getvalue())
    assert (line["event"], line["level"], line["n"], line["nested"], line["big"]) == ("from_a", "info", 1, {"k": [1, 2]}, 2**70)
    assert "from_b" in b.getvalue() and "below_level" not in a.getvalue() + b.getvalue()
    assert structlog.get_config() == before


def test_a_binary_stream_gets_bytes() -> None:
    out = io.BytesIO()
    configure_logging("json", "info", out).warning("bytes", value="é")
    assert json.loads(out.getvalue())["value"] == "é"
