"""Loading the daemon's config: YAML with positions, environment overrides, every problem.

Every problem is reported at once as ``FILE:LINE:COL: key.path: message``, because an
operator fixing a config during an incident should not have to restart five times to
find five typos. The models in :mod:`monitor.config` say what is valid; this module
finds where in the file (or which variable) each pydantic error comes from, gives it a
code (:mod:`monitor.problems`, the same :class:`Problem` rule packs report) and adds a
did-you-mean hint to unknown keys.

Environment variables override the file, so secrets need not be written in it:
``EXFIL_MONITOR_`` followed by the key path in capitals, levels joined by ``__``
(``EXFIL_MONITOR_KAFKA__SASL__PASSWORD``, ``EXFIL_MONITOR_ENGINE__ALLOWED_LATENESS``);
names without a ``__``, like ``EXFIL_MONITOR_RULES``, are not overrides.
A number segment indexes a list (``EXFIL_MONITOR_OUTPUTS__1__TOPIC``). Values are text,
converted like the file's (``"true"``, ``"5000"``); keys holding lists also take
comma-separated text.

It knows no model: :func:`monitor.config.load_config` passes the top-level model and the
output models by ``type:``, so the import runs one way only (config imports this).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from monitor.configtypes import KeyProblem
from monitor.problems import Problem, did_you_mean
from monitor.rules.yamlpos import Doc, YamlProblem, load
from monitor.timeparse import parse_duration

M = TypeVar("M", bound=BaseModel)
# (the top-level model, per list key (`outputs`, `sources`) the models of its items by `type`)
Models = tuple[type[BaseModel], Mapping[str, Mapping[str, type[BaseModel]]]]
ENV_PREFIX = "EXFIL_MONITOR_"


class ConfigError(Exception):
    """Every problem found in a config file and its environment overrides."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


__all__ = ["ENV_PREFIX", "ConfigError", "KeyProblem", "key_position", "load_model"]


def load_model(path: str | Path, environ: Mapping[str, str] | None, model: type[M],
               item_models: Mapping[str, Mapping[str, type[BaseModel]]]) -> M:  # fmt: skip
    """Read, override from the environment, validate as ``model``; raise
    :class:`ConfigError` with all problems."""
    models: Models = (model, item_models)
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(name, 1, 1, f"cannot read: {exc.strerror or exc}", code="E-CANNOT-READ")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(name, 1, 1, f"not UTF-8 text (byte {exc.start})", code="E-NOT-UTF8")]) from None
    try:
        doc = load(text)
    except YamlProblem as exc:
        raise ConfigError([Problem(name, exc.pos.line, exc.pos.col, exc.message, code=exc.code)]) from None
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(name, 1, 1, "expected a mapping of sections (kafka, rules, ...)", code="E-BAD-TYPE")]
        )
    problems: list[Problem] = []
    env_paths = _apply_env(data, os.environ if environ is None else environ, problems)
    try:
        config = model.model_validate(data, context={"base": Path(path).resolve().parent})
    except ValidationError as exc:
        found = [_describe(err, doc, data, name, env_paths, models) for err in exc.errors()]
        problems.extend(sorted(found, key=lambda p: (p.line, p.col, str(p))))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def key_position(path: str | Path, keys: tuple[Any, ...]) -> tuple[int, int]:
    """(line, col) of the key at ``keys`` in a config that loaded, for a warning about a
    valid config; (1, 1) when the file no longer reads or the key came from elsewhere."""
    try:
        doc = load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlProblem):
        return 1, 1
    pos = doc.key_at(keys)
    return pos.line, pos.col


def _apply_env(
    data: dict[str, Any], environ: Mapping[str, str], problems: list[Problem]
) -> dict[tuple[Any, ...], str]:
    """Set ``EXFIL_MONITOR_A__B`` values into ``data``; return path -> variable name."""
    applied: dict[tuple[Any, ...], str] = {}
    # An override names a key inside a section, so it has a "__": other EXFIL_MONITOR_
    # variables (EXFIL_MONITOR_RULES, the rule pack `demo` uses) are not overrides.
    for var in sorted(v for v in environ if v.startswith(ENV_PREFIX) and "__" in v[len(ENV_PREFIX):]):
        parts: list[Any] = [int(p) if p.isdigit() else p.lower() for p in var[len(ENV_PREFIX):].split("__")]
        if "" in parts:
            problems.append(_env_problem(var, "malformed name (levels are joined by a double underscore)"))
            continue
        cur: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(cur, dict) and isinstance(part, str):
                if last:
                    cur[part] = environ[var]
                elif not isinstance(cur.get(part), dict | list):
                    if isinstance(parts[i + 1], int):  # a list item can only be changed, not made
                        problems.append(_env_problem(var, f"{_dotted(parts[: i + 1])} has no item {parts[i + 1]}"))
                        break
                    cur[part] = {}
            elif not (isinstance(cur, list) and isinstance(part, int) and part < len(cur)):
                problems.append(_env_problem(var, f"{_dotted(parts[:i]) or 'the top level'} has no item {part}"))
                break
            elif last:
                cur[part] = environ[var]
            cur = None if last else cur[part]
        else:
            applied[tuple(parts)] = var
    return applied


def _env_problem(var: str, message: str) -> Problem:
    return Problem(f"${var}", 0, 0, message, code="E-BAD-ENV")


def _dotted(path: Any) -> str:
    return ".".join(str(p) for p in path)


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], bool]:
    """The part of pydantic's ``loc`` that exists in the data, without union tags.

    Returns (path, complete): complete is False when the last item is missing.
    """
    path: list[Any] = []
    cur = data
    for seg in loc:
        if (isinstance(cur, dict) and seg in cur) or (
            isinstance(cur, list) and isinstance(seg, int) and 0 <= seg < len(cur)
        ):
            cur = cur[seg]
        elif isinstance(cur, dict) and cur.get("type") == seg:
            continue  # the discriminator's tag, not a key
        else:
            return tuple(path), False
        path.append(seg)
    return tuple(path), True


# Keys an earlier release had, with what replaced them: said instead of a did-you-mean.
RETIRED = {
    "commit_interval": ": replaced by checkpoint.interval (offsets and positions are committed right after "
    "each checkpoint of the state they reflect)",
}


def _describe(err: Any, doc: Doc, data: Any, name: str, env: dict[tuple[Any, ...], str], models: Models) -> Problem:
    """The problem, ``FILE:LINE:COL: key.path: message`` with a code, for one pydantic error."""
    loc = tuple(err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyProblem):
        loc += cause.path
    path, complete = _data_path(loc, data)
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = str(path[-1])
        message = f"unknown key {key!r}" + (RETIRED.get(key) or did_you_mean(key, _known_keys(path[:-1], data, models)))
        where_path = path[:-1]
    elif kind == "missing":
        message = f"missing required key {str(loc[-1])!r}"
        where_path = path
    elif kind == "union_tag_invalid":
        kind_of = str(path[0]).removesuffix("s") if path else "item"
        message = f"unknown {kind_of} type {err['input'].get('type')!r} (known: {err['ctx']['expected_tags']})"
        where_path = path
    else:
        where_path = path
    code = _code(kind, path if complete else (), data, models)
    label = _dotted(where_path)
    text = f"{label}: {message}" if label else message
    # The value came from a variable (it or a parent was set), or the key did not exist
    # in the file and a variable created it.
    blame = [v for p, v in env.items() if path[: len(p)] == p] or (
        [v for p, v in env.items() if p[: len(path)] == path] if path not in doc.values else []
    )
    if blame:
        return Problem(f"${blame[0]}", 0, 0, text, code=code)
    if kind == "extra_forbidden":
        pos = doc.key_at(path)
    elif kind == "missing" or not complete:
        pos = doc.key_at(path) if path else doc.where(())
    else:
        pos = doc.where(path)
    return Problem(name, pos.line, pos.col, text, code=code)


_CODES = {
    "extra_forbidden": "E-UNKNOWN-KEY",
    "missing": "E-MISSING-KEY",
    "union_tag_not_found": "E-MISSING-KEY",
    "union_tag_invalid": "E-UNKNOWN-TYPE",
}


def _code(kind: str, path: tuple[Any, ...], data: Any, models: Models) -> str:
    """The problem code for a pydantic error type; ``path`` leads to the offending value."""
    if kind in _CODES:
        return _CODES[kind]
    if kind.endswith(("_type", "_parsing")) or kind in ("is_instance_of", "model_attributes_type"):
        return "E-BAD-TYPE"
    if kind == "value_error" and path and isinstance(path[-1], str):
        model = _model_at(path[:-1], data, models)
        info = model.model_fields.get(path[-1]) if model is not None else None
        if info is not None and any(getattr(m, "func", None) is parse_duration for m in info.metadata):
            return "E-BAD-DURATION"
    return "E-BAD-VALUE"


def _known_keys(path: tuple[Any, ...], data: Any, models: Models) -> list[str]:
    """The keys the model at ``path`` accepts, for did-you-mean hints."""
    model = _model_at(path, data, models)
    return list(model.model_fields) if model is not None else []


def _model_at(path: tuple[Any, ...], data: Any, models: Models) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path`` of the data."""
    model: Any = models[0]
    cur = data
    key: Any = None
    for seg in path:
        cur = cur[seg]
        if isinstance(seg, int):  # an item of `outputs` or `sources`: its model is chosen by `type`
            by_type = models[1].get(str(key), {})
            model = by_type.get(str(cur.get("type"))) if isinstance(cur, dict) else None
        elif model is not None and seg in model.model_fields:
            key = seg
            ann = model.model_fields[seg].annotation
            args = getattr(ann, "__args__", (ann,))
            model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        else:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None
