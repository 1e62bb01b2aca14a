"""The rule files' ``actors:`` and ``inputs:`` tables: loaded into the RuleSet, every
problem at its FILE:LINE:COL with its code, all of them at once."""

from __future__ import annotations

import pytest

from monitor.inputs import CustomInput, get_format
from monitor.rules.errors import RuleLoadError
from monitor.rules.loader import load_texts


def problems(*texts: str) -> list[tuple[str, int, int, str, str]]:
    """(file, line, col, code, message) of every problem loading ``texts`` as f1.yaml, f2.yaml..."""
    with pytest.raises(RuleLoadError) as info:
        load_texts([(f"f{i}.yaml", t.encode()) for i, t in enumerate(texts, 1)])
    return [(p.file, p.line, p.col, p.code, p.message) for p in info.value.problems]


def at(text: str, token: str) -> tuple[int, int]:
    i = text.index(token)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


def test_both_tables_load_into_the_rule_set_in_file_order() -> None:
    a = 'actors:\n  vendor: ["*_vendor", "vendor-*"]\n  employee: ["*@shop.example"]\n'
    b = "actors:\n  service: [svc-*]\ninputs:\n  shop-api: {from: jsonl, fields: {actor.id: user.name}, constants: {resource.kind: api}}\n"
    rs = load_texts([("a.yaml", a.encode()), ("b.yaml", b.encode())])
    assert rs.actors is not None
    assert list(rs.actors.patterns) == ["vendor", "employee", "service"]
    assert rs.inputs == {"shop-api": CustomInput.model_validate({"from": "jsonl", "fields": {"actor.id": "user.name"},
                                                                 "constants": {"resource.kind": "api"}})}  # fmt: skip
    assert get_format("shop-api", rs.inputs).name == "shop-api"
    assert load_texts([("c.yaml", b"rules: []\n")]).actors is None


BAD_ACTORS = """\
actors:
  vendr: ["*_vendor"]
  unknown: [guest]
  service: svc-*
  customer: ["cust-[0-9", "", 7, "ok-*"]
"""


def test_actor_table_problems_at_their_places() -> None:
    t = BAD_ACTORS
    got = problems(t)
    assert got == [
        ("f1.yaml", *at(t, "vendr"), "E-UNKNOWN-KEY",
         "actors: unknown actor type 'vendr' (expected employee, service, vendor, customer) (did you mean 'vendor'?)"),
        ("f1.yaml", *at(t, "unknown"), "E-UNKNOWN-KEY",
         "actors: unknown actor type 'unknown' (expected employee, service, vendor, customer) (accounts no pattern matches are unknown)"),
        ("f1.yaml", *at(t, "svc-*"), "E-BAD-TYPE", "actors: 'service' must be a list of account patterns"),
        ("f1.yaml", *at(t, '"cust-'), "E-BAD-PATTERN", "actors: 'customer': bad pattern 'cust-[0-9': unclosed '[' at character 6"),
        ("f1.yaml", *at(t, '""'), "E-BAD-PATTERN", "actors: 'customer': bad pattern '': a pattern must not be empty"),
        ("f1.yaml", *at(t, "7"), "E-BAD-TYPE", "actors: 'customer': a pattern must be text"),
    ]  # fmt: skip


def test_an_actor_type_defined_in_two_files() -> None:
    second = "actors:\n  vendor: [x]\n"
    assert problems("actors:\n  vendor: [y]\n", second) == [
        ("f2.yaml", 2, 3, "E-DUPLICATE-NAME", "actor type 'vendor' is already defined at f1.yaml:2"),
    ]


BAD_INPUTS = """\
inputs:
  pgaudit: {from: jsonl}
  shop api: {from: jsonl}
  a: {from: jsnol}
  b: {fields: {actor.id: user.name}}
  c: {from: jsonl, feilds: {}}
  d: {from: jsonl, fields: {actor.id: "has space", raw.x: y, ts: 5}}
  e: {from: jsonl, constants: {action: read, outcome: denied, actor.type: robot}}
  f: {from: 3, constants: [action]}
  g: nothing
"""


def test_input_table_problems_at_their_places() -> None:
    t = BAD_INPUTS
    got = problems(t)
    assert got == [
        ("f1.yaml", *at(t, "pgaudit"), "E-BUILTIN-FORMAT", "input 'pgaudit' has the name of a built-in format; choose another"),
        ("f1.yaml", *at(t, "shop api"), "E-BAD-NAME", "invalid input name 'shop api'"),
        ("f1.yaml", *at(t, "jsnol"), "E-UNKNOWN-FORMAT",
         "input 'a': from: unknown format 'jsnol' (a built-in one: jsonl, pgaudit, mariadb-audit, mysql-audit, cloudtrail, ocsf) (did you mean 'jsonl'?)"),
        ("f1.yaml", *at(t, "b:"), "E-MISSING-KEY", "input 'b': 'from' (the built-in format it maps) is required"),
        ("f1.yaml", *at(t, "feilds"), "E-UNKNOWN-KEY", "input 'c': unknown key 'feilds' (expected from, fields, constants) (did you mean 'fields'?)"),
        ("f1.yaml", *at(t, '"has space"'), "E-BAD-FIELD", "input 'd': fields: 'actor.id' must name a field of the jsonl event, like user.name"),
        ("f1.yaml", *at(t, "raw.x"), "E-BAD-FIELD", "input 'd': fields: 'raw.x': raw holds the original record"),
        ("f1.yaml", *at(t, "5}"), "E-BAD-FIELD", "input 'd': fields: 'ts' must name a field of the jsonl event, like user.name"),
        ("f1.yaml", *at(t, "read"), "E-BAD-VALUE",
         "input 'e': constants: action must be one of select, download, export, list, insert, update, delete, login, admin, other, got 'read'"),
        ("f1.yaml", *at(t, "robot"), "E-BAD-VALUE",
         "input 'e': constants: actor.type must be one of employee, service, vendor, customer, unknown, got 'robot'"),
        ("f1.yaml", *at(t, "3,"), "E-BAD-TYPE", "input 'f': from must be a format name"),
        ("f1.yaml", *at(t, "[action]"), "E-BAD-TYPE", "input 'f': constants must be a mapping of field paths"),
        ("f1.yaml", *at(t, "nothing"), "E-BAD-TYPE", "input 'g' must be a mapping with from, fields, constants"),
    ]  # fmt: skip


def test_an_input_defined_in_two_files_and_tables_of_the_wrong_shape() -> None:
    one = "inputs:\n  shop-api: {from: jsonl}\n"
    assert problems(one, one) == [("f2.yaml", 2, 3, "E-DUPLICATE-INPUT", "input 'shop-api' is already defined at f1.yaml:2")]
    assert problems("actors: [vendor]\ninputs: 3\n") == [
        ("f1.yaml", 1, 9, "E-BAD-TYPE", "'actors' must be a mapping of actor types to lists of account patterns"),
        ("f1.yaml", 2, 9, "E-BAD-TYPE", "'inputs' must be a mapping of input names"),
    ]


def test_table_problems_come_with_the_rules_problems() -> None:
    t = "actors:\n  vendor: ['[']\nrules:\n  - {id: r, severity: loud}\n"
    codes = [p[3] for p in problems(t)]
    assert codes == ["E-BAD-PATTERN", "E-BAD-SEVERITY"]
