"""The shape of one data-access event, built the same way by background and incidents.

Every event the simulator emits goes through :func:`event`, so the key order of the JSON
it writes (and with it the byte-identical output for a seed) is decided in one place.
"""

from __future__ import annotations

from monitor.event import Event

from .cast import BYTES_PER_ROW, Actor


def event(
    ts: int,
    actor: Actor,
    action: str,
    resource: tuple[str, str, str],  # kind, db, name
    rows: int,
    nbytes: int,
    app: str,
    customer_id: str | None = None,
    outcome: str = "success",
) -> Event:
    """An event with integer ``ts``; the generator formats ``ts`` and sets ``id`` on output."""
    # "ts" holds integer ms until the events of a slice are sorted; "id" is set on output.
    ev: Event = {
        "ts": ts,
        "id": "",
        "actor": {"id": actor[0], "type": actor[1], "ip": actor[2]},
        "action": action,
        "resource": {"kind": resource[0], "db": resource[1], "name": resource[2]},
        "rows": rows,
        "bytes": nbytes,
        "outcome": outcome,
    }
    if customer_id is not None:
        ev["customer_id"] = customer_id
    ev["app"] = app
    return ev


def table_event(
    ts: int,
    actor: Actor,
    action: str,
    name: str,
    rows: int,
    app: str,
    customer_id: str | None = None,
    outcome: str = "success",
    db: str = "shop",
) -> Event:
    """An access to a table; denied and failed accesses return nothing (0 rows, 0 bytes)."""
    if outcome != "success":
        rows = 0
    nbytes = rows * BYTES_PER_ROW.get(name, 200)
    return event(ts, actor, action, ("table", db, name), rows, nbytes, app, customer_id, outcome)


def login_event(ts: int, actor: Actor, path: str, app: str, outcome: str = "success") -> Event:
    """A login through the API gateway."""
    return event(ts, actor, "login", ("api", "gateway", path), 0, 0, app, None, outcome)
