"""A deterministic simulator of an online shop's data-access traffic, with injected incidents.

The background is what a mid-size shop's databases see in a day (about 200,000 events):
shoppers reading their own records through the storefront, the services behind checkout,
payments, orders, search and recommendations, support agents looking up one customer at a
time during business hours in Chicago, analysts, admins, two vendors with narrow access,
and a nightly ETL job that reads the customer tables in bulk. The load follows a daily
curve in ``America/Chicago``. Over a third of the events touch the customer tables
(``customers``, ``customer_addresses``, ``payment_cards``), yet none of this background
trips the bundled rule pack in ``rules/``: the thresholds there are set above it.

On top of it, :func:`incidents_for` places five incidents (a Target-style vendor breach,
off-hours enumeration by an employee, an insider's bulk export, a compromised service
probing tables, and a slow drip of customer rows over hours), each one aimed at a rule.

Everything comes from ``random.Random`` instances seeded from ``seed``: the same arguments
give byte-identical output in any process. Timestamps are formatted from integer
milliseconds with a cached per-second prefix, so a million events take seconds.
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import orjson

__all__ = [
    "ATTACKER_IP",
    "CUSTOMER_TABLES",
    "DEFAULT_EVENTS_PER_DAY",
    "US_HOLIDAYS",
    "VENDOR_IPS",
    "Incident",
    "format_ts",
    "generate",
    "incidents_for",
    "parse_start",
    "write_jsonl",
]

Event = dict[str, Any]

DEFAULT_EVENTS_PER_DAY = 200_000
"""Background events in 24 hours when ``events`` is not given: a mid-size shop."""

CUSTOMER_TABLES = frozenset({"customers", "customer_addresses", "payment_cards"})

LOCAL_TZ = ZoneInfo("America/Chicago")
# Days the support desk is closed. Keep in step with `business_hours` in rules/common.yaml.
US_HOLIDAYS = frozenset(
    {
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-05-25", "2026-06-19", "2026-07-03",
        "2026-09-07", "2026-10-12", "2026-11-11", "2026-11-26", "2026-12-25", "2027-01-01",
    }
)  # fmt: skip
BUSINESS_HOURS = (8, 18)  # local, start inclusive, end exclusive; Monday to Friday

HOUR_MS = 3_600_000
MINUTE_MS = 60_000

# Relative load by local hour of day (shoppers peak in the evening).
_CURVE = (
    0.35, 0.26, 0.20, 0.18, 0.20, 0.30, 0.50, 0.80, 1.10, 1.30, 1.40, 1.50,
    1.60, 1.50, 1.45, 1.40, 1.45, 1.55, 1.70, 1.80, 1.70, 1.40, 1.00, 0.60,
)  # fmt: skip

# People, per 200,000 events a day; a bigger shop has more of them, not busier ones.
_AGENTS = 20
_ANALYSTS = 6
_ADMINS = 3
_TICKETS_PER_AGENT_HOUR = 12.0
_ANALYST_EVENTS_PER_HOUR = 5.0
_ADMIN_EVENTS_PER_HOUR = 2.0
_ETL_LOCAL_HOUR = 3

_N_CUSTOMERS = 400_000
_IP_POOL_SIZE = 20_000

_OFFICE_NET = "10.20"
_SERVICE_IPS = {
    "checkout-api": "10.0.1.11",
    "order-service": "10.0.1.12",
    "payment-service": "10.0.2.10",
    "search": "10.0.1.20",
    "recommendation": "10.0.1.30",
    "inventory-sync": "10.0.1.40",
    "analytics-etl": "10.0.5.5",
}
# The vendors' known addresses. Keep in step with `vendor_known_ips` in rules/common.yaml.
VENDOR_IPS = {
    "shipping-partner": ("198.51.100.20", "198.51.100.21"),
    "hvac-vendor": ("192.0.2.10",),
}
ATTACKER_IP = "203.0.113.66"

_BYTES_PER_ROW = {
    "customers": 520,
    "customer_addresses": 310,
    "payment_cards": 180,
    "orders": 260,
    "order_items": 140,
    "products": 900,
    "inventory": 90,
    "shipments": 240,
    "hvac_readings": 64,
}


# -- time ------------------------------------------------------------------------------


def parse_start(start: str) -> int:
    """An RFC 3339 time (``Z`` or an offset) as epoch milliseconds."""
    dt = datetime.fromisoformat(start.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt.toordinal() - 719163) * 86_400_000 + _ms_of_day(dt) - _offset_ms(dt)


def _ms_of_day(dt: datetime) -> int:
    return ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1000 + dt.microsecond // 1000


def _offset_ms(dt: datetime) -> int:
    off = dt.utcoffset()
    return 0 if off is None else int(off.total_seconds() * 1000)


class _TsFormatter:
    """RFC 3339 UTC with milliseconds from epoch ms; the second's text is computed once."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        sec, frac = divmod(ms, 1000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        return f"{self._prefix}{frac:03d}Z"


def format_ts(ms: int) -> str:
    """One timestamp as the simulator writes it (``2026-11-27T14:03:05.123Z``)."""
    return _TsFormatter()(ms)


def _local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(LOCAL_TZ)


def _is_business_hour(ms: int) -> bool:
    local = _local(ms)
    return (
        local.weekday() < 5
        and local.date().isoformat() not in US_HOLIDAYS
        and BUSINESS_HOURS[0] <= local.hour < BUSINESS_HOURS[1]
    )


def _rr(rng: random.Random, lo: int, hi: int) -> int:
    """A number in [lo, hi), like ``randrange`` but several times faster (it matters here)."""
    return lo + int(rng.random() * (hi - lo))


# -- event shapes ----------------------------------------------------------------------

Actor = tuple[str, str, str]  # id, type, ip


def _event(
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


def _table(
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
    nbytes = rows * _BYTES_PER_ROW.get(name, 200)
    return _event(ts, actor, action, ("table", db, name), rows, nbytes, app, customer_id, outcome)


def _login(ts: int, actor: Actor, path: str, app: str, outcome: str = "success") -> Event:
    return _event(ts, actor, "login", ("api", "gateway", path), 0, 0, app, None, outcome)


Maker = Callable[[random.Random, int], Event]


def _cust(n: int) -> str:
    return f"cust-{n:07d}"


class _Background:
    """The shop's steady traffic: services and shoppers on the daily curve, people by the clock."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rate = rate
        pool_rng = random.Random(f"exfil-monitor/ip-pool/{seed}")
        self.ip_pool = [
            f"{_rr(pool_rng, 24, 223)}.{_rr(pool_rng, 0, 256)}."
            f"{_rr(pool_rng, 0, 256)}.{_rr(pool_rng, 1, 255)}"
            for _ in range(_IP_POOL_SIZE)
        ]
        # Office addresses: 10.20.1.x support, 10.20.2.x analysts, 10.20.3.x admins.
        self.agents = _staff("agent-{:03d}", _AGENTS * rate, 1)
        self.analysts = _staff("analyst-{:02d}", _ANALYSTS * rate, 2)
        self.admins = _staff("admin-{:02d}", _ADMINS * rate, 3)
        makers: list[tuple[float, Maker]] = [
            # customer tables (about 40% of this stream)
            (0.100, self._shopper_reads("customers")),
            (0.050, self._shopper_reads("customer_addresses")),
            (0.010, self._shopper_updates_profile),
            (0.070, self._service_lookup("checkout-api", "customers", 1)),
            (0.050, self._service_lookup("checkout-api", "customer_addresses", 3)),
            (0.040, self._service_lookup("order-service", "customers", 1)),
            (0.050, self._service_lookup("payment-service", "payment_cards", 1)),
            (0.005, self._card_insert),
            (0.0005, self._recommendation_segment),
            # everything else
            (0.070, self._shopper_login),
            (0.010, self._invoice_download),
            (0.040, self._service_table("checkout-api", "insert", "orders", 1, 1)),
            (0.050, self._service_table("checkout-api", "insert", "order_items", 1, 6)),
            (0.030, self._service_table("checkout-api", "update", "inventory", 1, 6)),
            (0.050, self._service_table("order-service", "select", "orders", 1, 20)),
            (0.030, self._service_table("order-service", "update", "orders", 1, 1)),
            (0.020, self._service_table("order-service", "select", "shipments", 1, 3)),
            (0.120, self._service_table("search", "select", "products", 10, 50)),
            (0.025, self._service_table("recommendation", "select", "order_items", 100, 500)),
            (0.025, self._service_table("recommendation", "select", "products", 20, 200)),
            (0.020, self._service_table("inventory-sync", "update", "inventory", 1, 40)),
            (0.010, self._service_table("inventory-sync", "select", "products", 1, 100)),
            (0.010, self._service_table("inventory-sync", "select", "inventory", 50, 500)),
            (0.015, self._vendor_table("shipping-partner", "select", "shipments", 10, 100)),
            (0.010, self._vendor_table("shipping-partner", "update", "shipments", 1, 5)),
            (0.0005, self._vendor_login("shipping-partner")),
            (0.0003, self._vendor_table("hvac-vendor", "select", "hvac_readings", 50, 2000)),
            (0.0001, self._vendor_login("hvac-vendor")),
        ]
        total = sum(w for w, _ in makers)
        acc = 0.0
        self.cum: list[float] = []
        for w, _ in makers:
            acc += w / total
            self.cum.append(acc)
        self.cum[-1] = 1.0
        self.makers = [m for _, m in makers]

    # shoppers --------------------------------------------------------------------------

    def _shopper(self, rng: random.Random) -> Actor:
        n = _rr(rng, 1, _N_CUSTOMERS + 1)
        return (_cust(n), "customer", self.ip_pool[n % _IP_POOL_SIZE])

    def _shopper_reads(self, table: str) -> Maker:
        def make(rng: random.Random, ts: int) -> Event:
            who = self._shopper(rng)
            rows = 1 if table == "customers" else _rr(rng, 1, 3)
            return _table(ts, who, "select", table, rows, "storefront", who[0])

        return make

    def _shopper_updates_profile(self, rng: random.Random, ts: int) -> Event:
        who = self._shopper(rng)
        table = "customers" if rng.random() < 0.6 else "customer_addresses"
        return _table(ts, who, "update", table, 1, "storefront", who[0])

    def _shopper_login(self, rng: random.Random, ts: int) -> Event:
        outcome = "denied" if rng.random() < 0.04 else "success"  # a mistyped password
        return _login(ts, self._shopper(rng), "/login", "storefront", outcome)

    def _invoice_download(self, rng: random.Random, ts: int) -> Event:
        who = self._shopper(rng)
        nbytes = _rr(rng, 30_000, 120_000)
        return _event(
            ts, who, "download", ("api", "gateway", "/invoices"), 1, nbytes, "storefront", who[0]
        )

    # services --------------------------------------------------------------------------

    @staticmethod
    def _outcome(rng: random.Random) -> str:
        r = rng.random()
        return "error" if r < 0.002 else "denied" if r < 0.0022 else "success"

    def _service_lookup(self, svc: str, table: str, max_rows: int) -> Maker:
        """One customer's rows, for the request of that customer."""
        me: Actor = (svc, "service", _SERVICE_IPS[svc])

        def make(rng: random.Random, ts: int) -> Event:
            cid = _cust(_rr(rng, 1, _N_CUSTOMERS + 1))
            rows = 1 if max_rows == 1 else _rr(rng, 1, max_rows + 1)
            return _table(ts, me, "select", table, rows, svc, cid, self._outcome(rng))

        return make

    def _card_insert(self, rng: random.Random, ts: int) -> Event:
        me: Actor = ("payment-service", "service", _SERVICE_IPS["payment-service"])
        cid = _cust(_rr(rng, 1, _N_CUSTOMERS + 1))
        return _table(ts, me, "insert", "payment_cards", 1, "payment-service", cid)

    def _recommendation_segment(self, rng: random.Random, ts: int) -> Event:
        """A batch read of a customer segment ("people like you"): many rows, no one customer."""
        me: Actor = ("recommendation", "service", _SERVICE_IPS["recommendation"])
        return _table(ts, me, "select", "customers", _rr(rng, 50, 200), "recommendation")

    def _service_table(self, svc: str, action: str, table: str, lo: int, hi: int) -> Maker:
        me: Actor = (svc, "service", _SERVICE_IPS[svc])

        def make(rng: random.Random, ts: int) -> Event:
            rows = lo if lo == hi else _rr(rng, lo, hi + 1)
            return _table(ts, me, action, table, rows, svc, None, self._outcome(rng))

        return make

    # vendors ---------------------------------------------------------------------------

    @staticmethod
    def _vendor_table(vendor: str, action: str, table: str, lo: int, hi: int) -> Maker:
        ips = VENDOR_IPS[vendor]
        db = "ops" if table == "hvac_readings" else "shop"

        def make(rng: random.Random, ts: int) -> Event:
            who: Actor = (vendor, "vendor", ips[_rr(rng, 0, len(ips))])
            return _table(ts, who, action, table, _rr(rng, lo, hi + 1), "vendor-portal", db=db)

        return make

    @staticmethod
    def _vendor_login(vendor: str) -> Maker:
        ips = VENDOR_IPS[vendor]

        def make(rng: random.Random, ts: int) -> Event:
            who: Actor = (vendor, "vendor", ips[_rr(rng, 0, len(ips))])
            return _login(ts, who, "/vendor/login", "vendor-portal")

        return make

    # the slices ------------------------------------------------------------------------

    def services(self, rng: random.Random, lo: int, hi: int, n: int) -> list[Event]:
        cum, makers, span = self.cum, self.makers, hi - lo
        rand, find = rng.random, bisect.bisect_right
        return [makers[find(cum, rand())](rng, lo + int(rand() * span)) for _ in range(n)]

    def support_desk(self, rng: random.Random, lo: int, hi: int, tickets: int) -> list[Event]:
        """Agents answering tickets: one customer per ticket, looked up a few times."""
        out: list[Event] = []
        span = hi - lo - 3 * MINUTE_MS  # every lookup of a ticket stays inside the hour
        if span <= 0:
            return out
        app = "support-console"
        for _ in range(tickets):
            agent = self.agents[_rr(rng, 0, len(self.agents))]
            cid = _cust(_rr(rng, 1, _N_CUSTOMERS + 1))
            t = lo + _rr(rng, 0, span)
            out.append(_table(t, agent, "select", "customers", 1, app, cid))
            t += _rr(rng, 2_000, 30_000)
            out.append(_table(t, agent, "select", "customer_addresses", _rr(rng, 1, 3), app, cid))
            t += _rr(rng, 2_000, 40_000)
            out.append(_table(t, agent, "select", "orders", _rr(rng, 1, 9), app, cid))
            if rng.random() < 0.3:
                t += _rr(rng, 10_000, 90_000)
                out.append(_table(t, agent, "update", "orders", 1, app, cid))
        return out

    def analysts_at_work(self, rng: random.Random, lo: int, hi: int, n: int) -> list[Event]:
        out: list[Event] = []
        span = hi - lo
        for _ in range(n):
            who = self.analysts[_rr(rng, 0, len(self.analysts))]
            t = lo + _rr(rng, 0, span)
            r = rng.random()
            if r < 0.40:
                out.append(_table(t, who, "select", "orders", _rr(rng, 1_000, 80_000), "metabase"))
            elif r < 0.65:
                out.append(
                    _table(t, who, "select", "order_items", _rr(rng, 1_000, 60_000), "metabase")
                )
            elif r < 0.72:
                # A small customer sample for a cohort chart: far below every customer threshold.
                out.append(_table(t, who, "select", "customers", _rr(rng, 50, 500), "metabase"))
            else:
                report = ("report", "warehouse", _REPORTS[_rr(rng, 0, len(_REPORTS))])
                if r < 0.90:
                    rows = _rr(rng, 10, 5_000)
                    out.append(_event(t, who, "select", report, rows, rows * 120, "metabase"))
                else:
                    nbytes = _rr(rng, 1_000_000, 40_000_000)
                    out.append(_event(t, who, "export", report, nbytes // 150, nbytes, "metabase"))
        return out

    def admins_on_call(self, rng: random.Random, lo: int, hi: int, n: int) -> list[Event]:
        """Admins keep the catalog and stock right, at any hour; they stay out of customer data."""
        out: list[Event] = []
        span = hi - lo
        app = "admin-console"
        for _ in range(n):
            who = self.admins[_rr(rng, 0, len(self.admins))]
            t = lo + _rr(rng, 0, span)
            r = rng.random()
            if r < 0.25:
                out.append(_login(t, who, "/admin/login", app))
            elif r < 0.55:
                out.append(_table(t, who, "update", "products", _rr(rng, 1, 30), app))
            elif r < 0.80:
                out.append(_table(t, who, "select", "inventory", _rr(rng, 1, 500), app))
            else:
                out.append(_table(t, who, "update", "inventory", _rr(rng, 1, 50), app))
        return out

    def nightly_etl(self, lo: int) -> list[Event]:
        """analytics-etl copies the shop into the warehouse: big reads, then an export."""
        out: list[Event] = []
        me: Actor = ("analytics-etl", "service", _SERVICE_IPS["analytics-etl"])
        customers = round(_N_CUSTOMERS * max(self.rate, 1.0))
        chunk = customers // 8  # a fixed number of chunks: the job fits in its hour
        plan = [
            ("customers", customers),
            ("customer_addresses", customers * 3 // 2),
            ("orders", customers * 4),
            ("order_items", customers * 10),
        ]
        t = lo + 5 * MINUTE_MS
        total_bytes = 0
        for table, total in plan:
            for first in range(0, total, chunk):
                ev = _table(t, me, "select", table, min(chunk, total - first), "airflow")
                total_bytes += ev["bytes"]
                out.append(ev)
                t += 7_000
        for _ in range(3):
            staging = ("bucket", "s3", "warehouse-staging")
            out.append(_event(t, me, "export", staging, 0, total_bytes // 3, "airflow"))
            t += 20_000
        return out


_REPORTS = (
    "weekly-sales",
    "daily-orders",
    "returns-by-sku",
    "conversion-funnel",
    "inventory-aging",
)


def _staff(pattern: str, headcount: float, team: int) -> list[Actor]:
    n = max(1, round(headcount))
    return [
        (pattern.format(i), "employee", f"{_OFFICE_NET}.{team}.{10 + (i - 1) % 240}")
        for i in range(1, n + 1)
    ]


# -- incidents -------------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    """One injected incident: who, when, what happened, and which rules exist to catch it."""

    name: str
    actor: str
    start: str  # RFC 3339 UTC, the time of its first event
    description: str
    end: str = ""  # RFC 3339 UTC, the time of its last event
    rules: tuple[str, ...] = ()  # bundled rules that should fire on it


@dataclass(frozen=True)
class _Plan:
    name: str
    actor: str
    offset_min: float  # from the start of a 24-hour span; scaled for shorter spans
    duration_min: float
    rules: tuple[str, ...]
    what: str
    build: Callable[[random.Random, int], list[Event]]


def _vendor_breach(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("hvac-vendor", "vendor", ATTACKER_IP)
    app = "psql"
    out = [_login(t0, who, "/vendor/login", "vendor-portal")]
    for i in range(12):  # 40,000 customers every 5 minutes
        out.append(_table(t0 + (3 + 5 * i) * MINUTE_MS, who, "select", "customers", 40_000, app))
    for i in range(6):  # 40,000 addresses every 10 minutes
        t = t0 + (5 + 10 * i) * MINUTE_MS + 30_000
        out.append(_table(t, who, "select", "customer_addresses", 40_000, app))
    for i in range(10):  # then the cards, 4,000 every 3 minutes
        t = t0 + (30 + 3 * i) * MINUTE_MS + 15_000
        out.append(_table(t, who, "select", "payment_cards", 4_000, app))
    dumps = (
        ("customers", 480_000, 1_200_000_000),
        ("customer_addresses", 240_000, 600_000_000),
        ("payment_cards", 40_000, 350_000_000),
    )
    for i, (table, rows, nbytes) in enumerate(dumps):
        t = t0 + (66 + 2 * i) * MINUTE_MS
        out.append(_event(t, who, "export", ("table", "shop", table), rows, nbytes, app))
    return out


def _off_hours_enumeration(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("agent-007", "employee", "10.8.0.77")  # over the VPN, at night
    ids = rng.sample(range(1, _N_CUSTOMERS + 1), 600)
    app = "support-console"
    return [
        _table(t0 + i * 4_000 + _rr(rng, 0, 1_000), who, "select", "customers", 1, app, _cust(n))
        for i, n in enumerate(ids)
    ]


def _denied_probe(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("inventory-sync", "service", "10.0.9.203")  # its key, used from another host
    tables = (
        "customers", "customer_addresses", "orders", "employees", "admin_users", "api_keys",
        "gift_cards", "refunds", "coupons", "sessions", "password_resets", "audit_log",
    )  # fmt: skip
    app = "inventory-sync"
    return [
        _table(t0 + i * 4_000, who, "select", tables[i % 12], 0, app, outcome="denied")
        for i in range(60)
    ]


def _slow_drip(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("analyst-04", "employee", f"{_OFFICE_NET}.2.13")
    # 300 rows a minute: at most 3,300 in any 10 minutes (under the 5,000 bulk threshold),
    # 90,000 over the five hours (over the 50,000 of sustained-customer-read).
    return [
        _table(t0 + i * MINUTE_MS + 250, who, "select", "customers", 300, "jupyter")
        for i in range(300)
    ]


def _insider_export(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("admin-02", "employee", f"{_OFFICE_NET}.3.11")
    table = ("table", "shop", "customers")
    out = [_event(t0, who, "export", table, 2_400_000, 1_400_000_000, "admin-console")]
    for i in range(4):
        t = t0 + (8 + i * 7) * MINUTE_MS
        backup = ("bucket", "s3", f"db-backups/shop-2026-11-26.part{i + 1}.sql.gz")
        out.append(_event(t, who, "download", backup, 0, 650_000_000, "aws-cli"))
    return out


_PLANS = (
    _Plan(
        "off-hours-enumeration", "agent-007", 8 * 60 + 10, 41,
        ("customer-enumeration", "off-hours-customer-access"),
        "support agent agent-007 looks up 600 different customers one by one over 40 minutes "
        "from the VPN",
        _off_hours_enumeration,
    ),
    _Plan(
        "vendor-breach", "hvac-vendor", 9 * 60 + 30, 71,
        (
            "vendor-login-unknown-ip", "vendor-touches-customer-data", "bulk-customer-read",
            "sustained-customer-read", "payment-cards-non-payment-service",
            "payment-card-bulk-read", "export-volume",
        ),
        f"Target-style breach: the HVAC contractor's account hvac-vendor logs in from {ATTACKER_IP} "
        "(never seen before), reads 480,000 customer rows, 240,000 addresses and 40,000 payment "
        "cards over an hour, then exports the three tables (2.15 GB)",
        _vendor_breach,
    ),
    _Plan(
        "denied-probe", "inventory-sync", 12 * 60 + 20, 4,
        ("denied-access-burst",),
        "the inventory-sync service account, used from an unknown host, probes 12 tables it "
        "has no grant on: 60 denied selects in 4 minutes",
        _denied_probe,
    ),
    _Plan(
        "slow-drip", "analyst-04", 15 * 60, 300,
        ("sustained-customer-read",),
        "analyst-04 runs a script that reads 300 customer rows a minute for five hours "
        "(90,000 rows), staying under the 10-minute bulk threshold all along",
        _slow_drip,
    ),
    _Plan(
        "insider-export", "admin-02", 21 * 60 + 10, 30,
        ("export-volume",),
        "admin-02 exports the customers table (1.4 GB) and downloads four database backup parts "
        "(2.6 GB) within half an hour",
        _insider_export,
    ),
)  # fmt: skip


def _placed(start_ms: int, hours: float) -> list[tuple[_Plan, int]]:
    span_ms = int(hours * HOUR_MS)
    scale = 1.0 if hours >= 24 else hours / 24
    out = []
    for plan in _PLANS:
        t0 = start_ms + int(plan.offset_min * scale * MINUTE_MS)
        if t0 + plan.duration_min * MINUTE_MS <= start_ms + span_ms:
            out.append((plan, t0))
    return out


def _incident_events(start_ms: int, hours: float) -> list[tuple[Incident, list[Event]]]:
    out = []
    for plan, t0 in _placed(start_ms, hours):
        # Seeded by the incident alone, so that incidents_for() is exact for every seed.
        rng = random.Random(f"exfil-monitor/incident/{plan.name}")
        events = plan.build(rng, t0)
        first, last = min(e["ts"] for e in events), max(e["ts"] for e in events)
        local = _local(first)
        where = "inside" if _is_business_hour(first) else "outside"
        description = (
            f"{plan.what}. Starts {local:%a %H:%M} America/Chicago ({where} business hours); "
            f"{len(events)} events."
        )
        inc = Incident(
            plan.name,
            plan.actor,
            format_ts(first),
            description,
            format_ts(last),
            _rules(plan, events),
        )
        out.append((inc, events))
    return out


_OFF_HOURS_RULE = "off-hours-customer-access"


def _rules(plan: _Plan, events: list[Event]) -> tuple[str, ...]:
    """The plan's rules, with off-hours-customer-access only when the clock says so."""
    off_hours_rows = sum(
        e["rows"]
        for e in events
        if e["actor"]["type"] == "employee"
        and e["resource"]["name"] in CUSTOMER_TABLES
        and e["action"] in ("select", "export", "download")
        and not _is_business_hour(e["ts"])
    )
    rules = [r for r in plan.rules if r != _OFF_HOURS_RULE]
    return (*rules, _OFF_HOURS_RULE) if off_hours_rows >= 10 else tuple(rules)


def incidents_for(start_ms: int, hours: float) -> list[Incident]:
    """The incidents :func:`generate` injects into a span starting at ``start_ms`` (epoch ms).

    In a span of 24 hours or more they sit at fixed offsets in its first day; in a shorter
    span the offsets shrink in proportion and an incident that no longer fits is left out.
    """
    return [inc for inc, _ in _incident_events(start_ms, hours)]


# -- the generator ---------------------------------------------------------------------


def generate(
    *,
    seed: int = 7,
    start: str = "2026-11-27T00:00:00Z",
    hours: float = 24.0,
    events: int | None = None,
    incidents: bool = True,
) -> Iterator[Event]:
    """Yield the shop's data-access events in non-decreasing ``ts`` order.

    ``events`` is the approximate number of background events (default: 200,000 per 24
    hours); the injected incidents come on top when ``incidents`` is true.
    """
    if hours <= 0:
        return
    start_ms = parse_start(start)
    end_ms = start_ms + int(hours * HOUR_MS)
    total = round(DEFAULT_EVENTS_PER_DAY * hours / 24) if events is None else max(0, events)
    rate = total / (DEFAULT_EVENTS_PER_DAY * hours / 24)
    bg = _Background(seed, rate)
    rng = random.Random(f"exfil-monitor/background/{seed}")

    # Slices on UTC hour boundaries: America/Chicago's offset is whole hours, so each slice
    # has one local hour, one weekday and one date.
    slices: list[tuple[int, int, datetime]] = []
    lo = start_ms
    while lo < end_ms:
        hi = min(end_ms, (lo // HOUR_MS + 1) * HOUR_MS)
        slices.append((lo, hi, _local(lo)))
        lo = hi

    # People and the ETL job first; the services share whatever is left of the budget.
    people: list[tuple[float, float, float]] = []  # tickets, analyst events, admin events
    etl_events = 0
    for lo, hi, local in slices:
        frac = (hi - lo) / HOUR_MS
        open_ = _is_business_hour(lo)
        people.append(
            (
                _TICKETS_PER_AGENT_HOUR * _AGENTS * rate * frac if open_ else 0.0,
                _ANALYST_EVENTS_PER_HOUR * _ANALYSTS * rate * frac if open_ else 0.0,
                _ADMIN_EVENTS_PER_HOUR * _ADMINS * rate * frac,
            )
        )
        if local.hour == _ETL_LOCAL_HOUR and lo == (lo // HOUR_MS) * HOUR_MS and total > 0:
            etl_events += len(bg.nightly_etl(lo))
    people_events = sum(t * 3.3 + a + d for t, a, d in people)
    budget = max(0.0, total - people_events - etl_events)
    weights = [_CURVE[local.hour] * (hi - lo) / HOUR_MS for lo, hi, local in slices]
    wsum = sum(weights) or 1.0

    by_slice: dict[int, list[Event]] = {}
    starts = [lo for lo, _, _ in slices]
    if incidents:
        for _inc, evs in _incident_events(start_ms, hours):
            for ev in evs:
                i = max(0, bisect.bisect_right(starts, ev["ts"]) - 1)
                by_slice.setdefault(i, []).append(ev)

    fmt = _TsFormatter()
    n = 0
    carry = [0.0, 0.0, 0.0, 0.0]
    prefix = f"evt-{seed}-"

    def take(i: int, x: float) -> int:
        carry[i] += x
        k = int(carry[i])
        carry[i] -= k
        return k

    for idx, (lo, hi, local) in enumerate(slices):
        tickets, analyst_n, admin_n = people[idx]
        batch = bg.services(rng, lo, hi, take(0, budget * weights[idx] / wsum))
        batch += bg.support_desk(rng, lo, hi, take(1, tickets))
        batch += bg.analysts_at_work(rng, lo, hi, take(2, analyst_n))
        batch += bg.admins_on_call(rng, lo, hi, take(3, admin_n))
        if local.hour == _ETL_LOCAL_HOUR and lo == (lo // HOUR_MS) * HOUR_MS and total > 0:
            batch += bg.nightly_etl(lo)
        batch += by_slice.get(idx, ())
        batch = [e for e in batch if e["ts"] < hi]
        batch.sort(key=_ts_key)
        for ev in batch:
            ev["ts"] = fmt(ev["ts"])
            ev["id"] = f"{prefix}{n}"
            n += 1
            yield ev


def _ts_key(ev: Event) -> int:
    ts: int = ev["ts"]
    return ts


def write_jsonl(events: Iterable[Event], out: BinaryIO) -> int:
    """Write events as JSON Lines (one object a line) to a binary stream; return the count."""
    dumps, nl = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    count = 0
    chunk: list[bytes] = []
    for ev in events:
        chunk.append(dumps(ev, option=nl))
        if len(chunk) >= 4096:
            out.write(b"".join(chunk))
            count += len(chunk)
            chunk.clear()
    if chunk:
        out.write(b"".join(chunk))
        count += len(chunk)
    return count
