"""The traffic that runs by the clock rather than on the daily curve.

Support agents and analysts work in Chicago business hours, admins are on call at any
hour, and the analytics ETL job copies the shop into the warehouse at 03:00 local time.
Their volume is set per person and per hour (a bigger shop has more people, not busier
ones), so the generator budgets them first and gives the rest to :mod:`.background`.
"""

from __future__ import annotations

import random

from monitor.event import Event

from .cast import ADMINS, AGENTS, ANALYSTS, N_CUSTOMERS, SERVICE_IPS, Actor, cust, rr, staff
from .clock import MINUTE_MS
from .shapes import event, login_event, table_event

TICKETS_PER_AGENT_HOUR = 12.0
ANALYST_EVENTS_PER_HOUR = 5.0
ADMIN_EVENTS_PER_HOUR = 2.0
ETL_LOCAL_HOUR = 3

_REPORTS = (
    "weekly-sales",
    "daily-orders",
    "returns-by-sku",
    "conversion-funnel",
    "inventory-aging",
)


class Staff:
    """The support desk, the analysts and the admins of a shop ``rate`` times the default."""

    def __init__(self, rate: float) -> None:
        # Office addresses: 10.20.1.x support, 10.20.2.x analysts, 10.20.3.x admins.
        self.agents = staff("agent-{:03d}", AGENTS * rate, 1)
        self.analysts = staff("analyst-{:02d}", ANALYSTS * rate, 2)
        self.admins = staff("admin-{:02d}", ADMINS * rate, 3)

    def support_desk(self, rng: random.Random, lo: int, hi: int, tickets: int) -> list[Event]:
        """Agents answering tickets: one customer per ticket, looked up a few times."""
        out: list[Event] = []
        span = hi - lo - 3 * MINUTE_MS  # every lookup of a ticket stays inside the hour
        if span <= 0:
            return out
        app = "support-console"
        for _ in range(tickets):
            agent = self.agents[rr(rng, 0, len(self.agents))]
            cid = cust(rr(rng, 1, N_CUSTOMERS + 1))
            t = lo + rr(rng, 0, span)
            out.append(table_event(t, agent, "select", "customers", 1, app, cid))
            t += rr(rng, 2_000, 30_000)
            out.append(
                table_event(t, agent, "select", "customer_addresses", rr(rng, 1, 3), app, cid)
            )
            t += rr(rng, 2_000, 40_000)
            out.append(table_event(t, agent, "select", "orders", rr(rng, 1, 9), app, cid))
            if rng.random() < 0.3:
                t += rr(rng, 10_000, 90_000)
                out.append(table_event(t, agent, "update", "orders", 1, app, cid))
        return out

    def analysts_at_work(self, rng: random.Random, lo: int, hi: int, n: int) -> list[Event]:
        """Analysts querying orders and running reports; now and then a small customer sample."""
        out: list[Event] = []
        span = hi - lo
        app = "metabase"
        for _ in range(n):
            who = self.analysts[rr(rng, 0, len(self.analysts))]
            t = lo + rr(rng, 0, span)
            r = rng.random()
            if r < 0.40:
                out.append(table_event(t, who, "select", "orders", rr(rng, 1_000, 80_000), app))
            elif r < 0.65:
                rows = rr(rng, 1_000, 60_000)
                out.append(table_event(t, who, "select", "order_items", rows, app))
            elif r < 0.72:
                # A small customer sample for a cohort chart: far below every customer threshold.
                out.append(table_event(t, who, "select", "customers", rr(rng, 50, 500), app))
            else:
                report = ("report", "warehouse", _REPORTS[rr(rng, 0, len(_REPORTS))])
                if r < 0.90:
                    rows = rr(rng, 10, 5_000)
                    out.append(event(t, who, "select", report, rows, rows * 120, app))
                else:
                    nbytes = rr(rng, 1_000_000, 40_000_000)
                    out.append(event(t, who, "export", report, nbytes // 150, nbytes, app))
        return out

    def admins_on_call(self, rng: random.Random, lo: int, hi: int, n: int) -> list[Event]:
        """Admins keep the catalog and stock right, at any hour; they stay out of customer data."""
        out: list[Event] = []
        span = hi - lo
        app = "admin-console"
        for _ in range(n):
            who = self.admins[rr(rng, 0, len(self.admins))]
            t = lo + rr(rng, 0, span)
            r = rng.random()
            if r < 0.25:
                out.append(login_event(t, who, "/admin/login", app))
            elif r < 0.55:
                out.append(table_event(t, who, "update", "products", rr(rng, 1, 30), app))
            elif r < 0.80:
                out.append(table_event(t, who, "select", "inventory", rr(rng, 1, 500), app))
            else:
                out.append(table_event(t, who, "update", "inventory", rr(rng, 1, 50), app))
        return out


def nightly_etl(lo: int, rate: float) -> list[Event]:
    """analytics-etl copies the shop into the warehouse: big reads, then an export."""
    out: list[Event] = []
    me: Actor = ("analytics-etl", "service", SERVICE_IPS["analytics-etl"])
    customers = round(N_CUSTOMERS * max(rate, 1.0))
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
            ev = table_event(t, me, "select", table, min(chunk, total - first), "airflow")
            total_bytes += ev["bytes"]
            out.append(ev)
            t += 7_000
    for _ in range(3):
        staging = ("bucket", "s3", "warehouse-staging")
        out.append(event(t, me, "export", staging, 0, total_bytes // 3, "airflow"))
        t += 20_000
    return out
