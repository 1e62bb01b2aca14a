"""Input formats: how raw records from a database's or cloud's log become canonical events.

Each format is one module with its mapping table in the docstring; this is the one place
that names them. ``jsonl`` is the default and passes canonical events through.

The canonical vocabulary every format maps to (so one rule serves all sources):
``action`` one of :data:`~monitor.inputs.base.ACTIONS`, ``action_name`` the source's verb,
``resource.kind``/``service``/``db``/``schema``/``name``, ``outcome`` one of
:data:`~monitor.inputs.base.OUTCOMES`, ``rows``, ``bytes``, ``actor.id``/``kind``/``ip``/
``host``/``session``, and ``raw.*`` the original record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any

from monitor.event import Event
from monitor.inputs.base import Format, Result, Skip
from monitor.inputs.cloudtrail import Cloudtrail
from monitor.inputs.custom import Custom, CustomInput
from monitor.inputs.jsonl import Jsonl
from monitor.inputs.mariadb_audit import MariadbAudit
from monitor.inputs.mysql_audit import MysqlAudit
from monitor.inputs.ocsf import Ocsf
from monitor.inputs.pgaudit import PgAudit

__all__ = ["FORMATS", "CustomInput", "Event", "Format", "Result", "Skip", "UnknownFormat", "get_format"]

FORMATS: dict[str, Callable[[], Format]] = {
    "jsonl": Jsonl,
    "pgaudit": PgAudit,
    "mariadb-audit": MariadbAudit,
    "mysql-audit": MysqlAudit,
    "cloudtrail": Cloudtrail,
    "ocsf": Ocsf,
}


class UnknownFormat(ValueError):
    pass


# Formats whose timestamps carry no zone take the source's ``timezone``.
ZONED: dict[str, Callable[[tzinfo], Format]] = {"mariadb-audit": MariadbAudit}


def _builtin(name: str, timezone: tzinfo | None) -> Format:
    if timezone is not None and name in ZONED:
        return ZONED[name](timezone)
    return FORMATS[name]()


def get_format(name: str, custom: Mapping[str, CustomInput | Mapping[str, Any]] | None = None,
               timezone: tzinfo | None = None) -> Format:  # fmt: skip
    """The format called ``name``: built in, or one of the ``custom`` mappings (whose
    ``from`` must name a built-in format), usually a rule set's ``RuleSet.inputs``;
    ``timezone`` reads zone-less timestamps (default UTC)."""
    if name in FORMATS:
        return _builtin(name, timezone)
    if custom and name in custom:
        given = custom[name]
        spec = given if isinstance(given, CustomInput) else CustomInput.model_validate(given)
        if spec.base not in FORMATS:
            raise UnknownFormat(
                f"input {name!r}: from: unknown format {spec.base!r}; known: {', '.join(FORMATS)}"
            )
        return Custom(name, _builtin(spec.base, timezone), spec)
    known = [*FORMATS, *(custom or {})]
    raise UnknownFormat(f"unknown input format {name!r}; known: {', '.join(known)}")
