"""Routing: which outputs an alert goes to, from each output's ``match:``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from monitor.outputs.routing import MatchSpec, matches, route, unrouted_severities
from tests.outputs.conftest import alert


class Holder(BaseModel):
    match: MatchSpec | None = None


def spec(m: Any) -> Any:
    return Holder.model_validate({"match": m}).match


def rec(severity: str = "high", rule: str = "bulk-customer-read", **labels: str) -> dict[str, Any]:
    return {**alert(0, rule=rule, severity=severity).to_dict(), "labels": labels}


def test_no_match_takes_everything() -> None:
    assert matches(None, rec())
    assert matches({}, rec())


def test_severity_in_a_list_or_equal() -> None:
    m = spec({"severity": ["critical", "high"]})
    assert matches(m, rec("high")) and matches(m, rec("critical"))
    assert not matches(m, rec("low"))
    assert matches(spec({"severity": "low"}), rec("low"))


def test_label_values_and_rule_ids_all_must_hold() -> None:
    m = spec({"severity": "high", "team": ["security", "fraud"], "rule": "bulk-customer-read"})
    assert matches(m, rec("high", team="fraud"))
    assert not matches(m, rec("high", team="ops"))
    assert not matches(m, rec("high"))  # a label the alert lacks never matches
    assert not matches(m, rec("high", rule="other", team="fraud"))


def test_route_returns_every_matching_output_in_order() -> None:
    outputs = {"pager": spec({"severity": ["critical", "high"]}), "slack": spec({"severity": "low"}),
               "archive": None}  # fmt: skip
    assert route(outputs, rec("high")) == ["pager", "archive"]
    assert route(outputs, rec("low")) == ["slack", "archive"]
    assert route({"pager": outputs["pager"]}, rec("medium")) == []


def test_severities_no_output_takes() -> None:
    outputs = {"pager": spec({"severity": ["critical", "high"]}), "t": spec({"team": "x"})}
    assert (
        unrouted_severities(outputs, ["critical", "high", "medium", "low"]) == []
    )  # t may take any
    outputs = {"pager": spec({"severity": ["critical", "high"]})}
    assert unrouted_severities(outputs, ["critical", "high", "medium", "low"]) == ["medium", "low"]


@pytest.mark.parametrize("bad", [{"severity": []}, {"": "x"}, {"severity": 3}, ["severity"]])
def test_bad_match_blocks_are_errors(bad: Any) -> None:
    with pytest.raises(ValidationError):
        spec(bad)
