"""The generated dispatch loop reads back: tracebacks through it show its lines, under a
name saying which rule set it runs, and its constants are named by the rules they serve."""

from __future__ import annotations

import re
import traceback

import pytest

from monitor.engine import Engine
from monitor.engine.dispatch import filename
from monitor.rules.loader import load_texts

RULES = b"""rules:
  - id: bulk-customer-read
    severity: high
    match: {action: select, resource.kind: {in: [customers]}, rows: {gt: 10}}
    group_by: [actor.id]
    window: 5m
    threshold: {gte: 2}
"""


def test_a_traceback_through_the_generated_loop_shows_its_source_line() -> None:
    ruleset = load_texts([("r.yaml", RULES)])
    engine = Engine(ruleset)
    with pytest.raises(AttributeError) as info:
        engine.process([(None, 1)])  # type: ignore[list-item]  # not an event: e.get fails
    text = "".join(traceback.format_exception(info.value))
    name = filename(ruleset.digest)
    assert name == f"<exfil-monitor rules sha256:{ruleset.digest[:12]}>"
    frame = re.search(rf'File "{re.escape(name)}", line \d+, in process\n\s+(\S.*)\n', text)
    assert frame is not None, text
    assert frame[1].startswith("v = e.get(K")


def test_constants_carry_the_rule_id_and_the_source_only_generated_names() -> None:
    source = Engine(load_texts([("r.yaml", RULES)])).source
    assert source is not None
    assert re.search(r"\bA\d+_bulk_customer_read\(e, ts, now", source)
    assert re.search(r"\bM\d+_bulk_customer_read\(\)", source)
    assert "customers" not in source and "select" not in source  # values stay in the namespace
    assert "'" not in source and '"' not in source  # no string literal of any kind


def test_the_reference_loop_has_no_source() -> None:
    assert Engine(load_texts([("r.yaml", RULES)]), generated=False).source is None
