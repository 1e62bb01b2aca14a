"""The five incidents the simulator can inject, each written as a plan aimed at some rules.

A :class:`Plan` says who acts, when in a 24-hour day (as an offset from its start), for
how long, which bundled rules exist to catch it, and how to build its events. Placing the
plans in a span and describing them is :mod:`.incidents`' job; this module only says what
each incident does, so a new one is added here and nowhere else.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from monitor.event import Event

from .cast import ATTACKER_IP, N_CUSTOMERS, OFFICE_NET, Actor, cust, rr
from .clock import MINUTE_MS
from .shapes import event, login_event, table_event


@dataclass(frozen=True)
class Plan:
    """One incident as written: the events ``build`` makes from ``t0`` on, and its rules."""

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
    out = [login_event(t0, who, "/vendor/login", "vendor-portal")]
    for i in range(12):  # 40,000 customers every 5 minutes
        t = t0 + (3 + 5 * i) * MINUTE_MS
        out.append(table_event(t, who, "select", "customers", 40_000, app))
    for i in range(6):  # 40,000 addresses every 10 minutes
        t = t0 + (5 + 10 * i) * MINUTE_MS + 30_000
        out.append(table_event(t, who, "select", "customer_addresses", 40_000, app))
    for i in range(10):  # then the cards, 4,000 every 3 minutes
        t = t0 + (30 + 3 * i) * MINUTE_MS + 15_000
        out.append(table_event(t, who, "select", "payment_cards", 4_000, app))
    dumps = (
        ("customers", 480_000, 1_200_000_000),
        ("customer_addresses", 240_000, 600_000_000),
        ("payment_cards", 40_000, 350_000_000),
    )
    for i, (table, rows, nbytes) in enumerate(dumps):
        t = t0 + (66 + 2 * i) * MINUTE_MS
        out.append(event(t, who, "export", ("table", "shop", table), rows, nbytes, app))
    return out


def _off_hours_enumeration(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("agent-007", "employee", "10.8.0.77")  # over the VPN, at night
    ids = rng.sample(range(1, N_CUSTOMERS + 1), 600)
    app = "support-console"
    return [
        table_event(t0 + i * 4_000 + rr(rng, 0, 1_000), who, "select", "customers", 1, app, cust(n))
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
        table_event(t0 + i * 4_000, who, "select", tables[i % 12], 0, app, outcome="denied")
        for i in range(60)
    ]


def _slow_drip(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("analyst-04", "employee", f"{OFFICE_NET}.2.13")
    # 300 rows a minute: at most 3,300 in any 10 minutes (under the 5,000 bulk threshold),
    # 90,000 over the five hours (over the 50,000 of sustained-customer-read).
    return [
        table_event(t0 + i * MINUTE_MS + 250, who, "select", "customers", 300, "jupyter")
        for i in range(300)
    ]


def _insider_export(rng: random.Random, t0: int) -> list[Event]:
    who: Actor = ("admin-02", "employee", f"{OFFICE_NET}.3.11")
    table = ("table", "shop", "customers")
    out = [event(t0, who, "export", table, 2_400_000, 1_400_000_000, "admin-console")]
    for i in range(4):
        t = t0 + (8 + i * 7) * MINUTE_MS
        backup = ("bucket", "s3", f"db-backups/shop-2026-11-26.part{i + 1}.sql.gz")
        out.append(event(t, who, "download", backup, 0, 650_000_000, "aws-cli"))
    return out


PLANS = (
    Plan(
        "off-hours-enumeration", "agent-007", 8 * 60 + 10, 41,
        ("customer-enumeration", "off-hours-customer-access"),
        "support agent agent-007 looks up 600 different customers one by one over 40 minutes "
        "from the VPN",
        _off_hours_enumeration,
    ),
    Plan(
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
    Plan(
        "denied-probe", "inventory-sync", 12 * 60 + 20, 4,
        ("denied-access-burst",),
        "the inventory-sync service account, used from an unknown host, probes 12 tables it "
        "has no grant on: 60 denied selects in 4 minutes",
        _denied_probe,
    ),
    Plan(
        "slow-drip", "analyst-04", 15 * 60, 300,
        ("sustained-customer-read",),
        "analyst-04 runs a script that reads 300 customer rows a minute for five hours "
        "(90,000 rows), staying under the 10-minute bulk threshold all along",
        _slow_drip,
    ),
    Plan(
        "insider-export", "admin-02", 21 * 60 + 10, 30,
        ("export-volume",),
        "admin-02 exports the customers table (1.4 GB) and downloads four database backup parts "
        "(2.6 GB) within half an hour",
        _insider_export,
    ),
)  # fmt: skip
