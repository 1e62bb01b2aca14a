"""YAML to plain data plus the position of every node, without YAML 1.1 surprises.

PyYAML's resolver turns ``off`` into ``False``, ``2026-11-26`` into a date and ``08:00``
into 480. Rules are written by people who mean the text they typed, so scalars are
resolved here with the YAML 1.2 core schema only: null, true/false, integers and floats;
everything else, quoted or not, stays a string. Duplicate keys are errors, not
last-one-wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from monitor.rules.errors import Pos

Path = tuple[str | int, ...]

_NULL = re.compile(r"(?:~|null|Null|NULL|)\Z")
_TRUE = re.compile(r"(?:true|True|TRUE)\Z")
_FALSE = re.compile(r"(?:false|False|FALSE)\Z")
_INT10 = re.compile(r"[-+]?[0-9]+\Z")
_INT8 = re.compile(r"0o[0-7]+\Z")
_INT16 = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"([-+]?)\.(?:inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)\Z")

try:  # the C composer is faster, but only positions and raw text matter here
    _Base: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader

_PLAIN = "!plain"  # the tag of untagged plain scalars, so an explicit !!str stays visible
_STR = "tag:yaml.org,2002:str"


class _Loader(_Base):  # type: ignore[misc]
    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN  # resolved by resolve_plain (YAML 1.2 core), not PyYAML's 1.1 guess
        return super().resolve(kind, value, implicit)


class YamlProblem(Exception):
    def __init__(self, pos: Pos, message: str, code: str = "E-YAML-SYNTAX") -> None:
        self.pos = pos
        self.message = message
        self.code = code  # one of monitor.problems.CODES
        super().__init__(message)


@dataclass
class Doc:
    """Plain data with positions: ``where(path)`` is the value's, ``key_at(path)`` its key's."""

    data: Any
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)

    def where(self, path: Path) -> Pos:
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Pos(1, 1))

    def key_at(self, path: Path) -> Pos:
        return self.keys.get(path) or self.where(path)


def resolve_plain(text: str) -> Any:
    if _NULL.match(text):
        return None
    if _TRUE.match(text):
        return True
    if _FALSE.match(text):
        return False
    if _INT10.match(text):
        return int(text)
    if _INT8.match(text):
        return int(text[2:], 8)
    if _INT16.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    m = _INF.match(text)
    if m:
        return float("-inf") if m.group(1) == "-" else float("inf")
    if _NAN.match(text):
        return float("nan")
    return text


def _pos(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def load(text: str) -> Doc:
    """Parse one YAML document; raises :class:`YamlProblem` at the first syntax error."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(mark.line + 1, mark.column + 1) if mark else Pos(1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlProblem(pos, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Pos(1, 1), f"YAML error: {exc}") from None
    doc = Doc(data=None)
    if node is None:
        doc.values[()] = Pos(1, 1)
        return doc
    doc.data = _convert(node, (), doc)
    return doc


def _convert(node: yaml.Node, path: Path, doc: Doc) -> Any:
    doc.values[path] = _pos(node)
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _PLAIN and not node.style:
            return resolve_plain(node.value)
        if node.tag == _STR or node.style:  # quoted, or tagged !!str by its author
            return node.value
        return resolve_plain(node.value)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(child, (*path, i), doc) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(_pos(key_node), "mapping keys must be plain text")
            key = key_node.value
            if key in out:
                first = doc.keys[(*path, key)]
                raise YamlProblem(
                    _pos(key_node), f"duplicate key {key!r} (first at line {first.line})", "E-DUPLICATE-KEY"
                )
            doc.keys[(*path, key)] = _pos(key_node)
            out[key] = _convert(value_node, (*path, key), doc)
        return out
    raise YamlProblem(_pos(node), f"unsupported YAML node {type(node).__name__}")  # pragma: no cover
