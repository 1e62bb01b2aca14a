"""The YAML loader: YAML 1.2 core-schema scalars, positions, duplicate keys, syntax errors."""

from __future__ import annotations

import math

import pytest

from monitor.rules.errors import Pos
from monitor.rules.yamlpos import YamlProblem, load, resolve_plain


def value_of(scalar: str) -> object:
    """What ``key: <scalar>`` loads as."""
    return load(f"key: {scalar}\n").data["key"]


# -- scalars: no YAML 1.1 surprises ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # YAML 1.1 booleans are text in 1.2
        "off", "Off", "OFF", "on", "On", "ON", "yes", "Yes", "YES", "no", "No", "NO", "y", "n", "Y", "N",
        # dates and times are never dates, times or sexagesimal numbers
        "2026-11-26", "2026-11-26T08:00:00Z", "2026-11-26 08:00:00", "08:00", "1:30", "1:30:00", "190:20:30",
        # numbers that only YAML 1.1 reads as numbers
        "1_000", "0b101", "+0b101", "0x_1F", "1,000", "12e", ".", "e3",
        # null, true, false only in the core schema's spellings
        "nULL", "tRue", "fALSE", "None", "nil", "NaN", "inf", "Infinity",
        # anything else
        "select", "customer_addresses", "$customer_tables", "10m", "10.0.0.0/8", "=", "<<",
    ],
)  # fmt: skip
def test_plain_text_stays_text(text: str) -> None:
    assert value_of(text) == text
    assert resolve_plain(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("-0", 0),
        ("+12", 12),
        ("-12", -12),
        ("50000", 50000),
        ("0755", 755),  # decimal in YAML 1.2: 1.1 read it as octal 493
        ("07", 7),
        ("08", 8),  # not an invalid octal
        ("0o755", 0o755),
        ("0x1F", 31),
        ("0xff", 255),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_yaml_12_integers(text: str, expected: int) -> None:
    value = value_of(text)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5", 1.5),
        ("-1.5", -1.5),
        (".5", 0.5),
        ("+.5", 0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("1E3", 1000.0),
        ("-1.5e-3", -0.0015),
        (".inf", math.inf),
        (".Inf", math.inf),
        ("+.INF", math.inf),
        ("-.inf", -math.inf),
    ],
)
def test_yaml_12_floats(text: str, expected: float) -> None:
    value = value_of(text)
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_yaml_12_nan(text: str) -> None:
    value = value_of(text)
    assert isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
    ],
)
def test_yaml_12_booleans_and_nulls(text: str, expected: object) -> None:
    assert value_of(text) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("key: '0755'\n", "0755"),
        ('key: "true"\n', "true"),
        ("key: 'null'\n", "null"),
        ("key: '08:00'\n", "08:00"),
        ("key: !!str 5\n", "5"),  # an explicit tag is the author's word
        ("key: !!str 0755\n", "0755"),
        ("key: !!str 1e3\n", "1e3"),
        ("key: !!str true\n", "true"),
        ("key: !!str null\n", "null"),
        ("key: |\n  0755\n", "0755\n"),
        ("key: >-\n  08:00\n", "08:00"),
    ],
)
def test_quoted_block_and_str_tagged_scalars_are_text(source: str, expected: str) -> None:
    assert load(source).data["key"] == expected


def test_flow_and_block_collections_resolve_each_item() -> None:
    doc = load("days: [mon, off, 2026-11-26, '1', 1, 1.5, true, null]\nmore:\n  - yes\n  - 0755\n")
    assert doc.data == {
        "days": ["mon", "off", "2026-11-26", "1", 1, 1.5, True, None],
        "more": ["yes", 755],
    }


@pytest.mark.parametrize("key", ["on", "off", "yes", "no", "1", "true", "null", "2026-11-26"])
def test_keys_are_always_the_text_written(key: str) -> None:
    assert load(f"{key}: v\n").data == {key: "v"}


def test_the_issue_example_schedule_reads_as_written() -> None:
    doc = load(
        "business_hours:\n"
        "  timezone: America/Chicago\n"
        "  days: [mon, tue, wed, thu, fri]\n"
        "  hours: [08:00-18:00]\n"
        "  holidays: [2026-11-26]\n"
    )
    assert doc.data["business_hours"]["hours"] == ["08:00-18:00"]
    assert doc.data["business_hours"]["holidays"] == ["2026-11-26"]


def test_an_empty_document_is_none() -> None:
    doc = load("# only a comment\n")
    assert doc.data is None
    assert doc.where(()) == Pos(1, 1)


# -- positions ---------------------------------------------------------------------------


def test_positions_of_nested_values_and_keys() -> None:
    doc = load(
        "rules:\n"  # 1
        "  - id: r1\n"  # 2
        "    match:\n"  # 3
        "      actor.id: {in: [a, b]}\n"  # 4
        "      action: select\n"  # 5
        "    window: 10m\n"  # 6
    )
    assert doc.where(("rules",)) == Pos(2, 3)
    assert doc.where(("rules", 0)) == Pos(2, 5)
    assert doc.where(("rules", 0, "id")) == Pos(2, 9)
    assert doc.key_at(("rules", 0, "id")) == Pos(2, 5)
    assert doc.key_at(("rules", 0, "match", "actor.id")) == Pos(4, 7)
    assert doc.where(("rules", 0, "match", "actor.id")) == Pos(4, 17)
    assert doc.key_at(("rules", 0, "match", "actor.id", "in")) == Pos(4, 18)
    assert doc.where(("rules", 0, "match", "actor.id", "in")) == Pos(4, 22)
    assert doc.where(("rules", 0, "match", "actor.id", "in", 1)) == Pos(4, 26)
    assert doc.where(("rules", 0, "match", "action")) == Pos(5, 15)
    assert doc.where(("rules", 0, "window")) == Pos(6, 13)


def test_where_falls_back_to_the_nearest_existing_parent() -> None:
    doc = load("rules:\n  - id: r1\n    match: {}\n")
    assert doc.where(("rules", 0, "match", "missing", "deeper")) == Pos(3, 12)
    assert doc.key_at(("rules", 0, "severity")) == doc.where(("rules", 0)) == Pos(2, 5)


def test_positions_survive_comments_and_blank_lines() -> None:
    doc = load("# header\n\nlists:   # comment\n\n  tables:  [customers]\n")
    assert doc.key_at(("lists", "tables")) == Pos(5, 3)
    assert doc.where(("lists", "tables", 0)) == Pos(5, 13)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "col", "first"),
    [
        ("a: 1\na: 2\n", 2, 1, 1),
        ("a:\n  b: 1\n  c: 2\n  b: 3\n", 4, 3, 2),
        ("{a: 1, a: 2}\n", 1, 8, 1),
        ("rules:\n  - id: r1\n    severity: low\n\n    severity: high\n", 5, 5, 3),
        ("a: 1\n'a': 2\n", 2, 1, 1),  # quoting does not make it another key
    ],
)
def test_duplicate_keys_are_errors_naming_both_lines(source: str, line: int, col: int, first: int) -> None:
    with pytest.raises(YamlProblem) as info:
        load(source)
    assert info.value.pos == Pos(line, col)
    assert "duplicate key" in info.value.message
    assert f"first at line {first}" in info.value.message


@pytest.mark.parametrize(
    ("source", "line", "col"),
    [
        ("a: [1, 2\n", 2, 1),
        ("a: b: c\n", 1, 5),
        ("- a\nb: 1\n", 2, 1),
        ('a: "unterminated\n', 2, 1),
        ("a: *nowhere\n", 1, 4),
        ("a:\n  b: 1\n c: 2\n", 3, 2),
        ("a: [1, 2]]\n", 1, 10),
        ("a: @x\n", 1, 4),
        ("\tb: 1\n", 1, 1),
        ("a: 1\n---\nb: 2\n", 2, 1),
    ],
)
def test_syntax_errors_carry_line_and_column(source: str, line: int, col: int) -> None:
    with pytest.raises(YamlProblem) as info:
        load(source)
    assert info.value.pos == Pos(line, col)
    assert info.value.message.startswith("YAML syntax error: ")


def test_complex_mapping_keys_are_errors() -> None:
    with pytest.raises(YamlProblem) as info:
        load("? [a, b]\n: 1\n")
    assert info.value.pos == Pos(1, 3)
    assert "keys must be plain text" in info.value.message


def test_aliases_are_expanded_without_yaml_11_merge_keys() -> None:
    doc = load("base: &b [customers]\nother: *b\n<<: {x: 1}\n")
    assert doc.data == {"base": ["customers"], "other": ["customers"], "<<": {"x": 1}}
