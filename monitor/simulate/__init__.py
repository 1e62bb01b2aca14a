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

This package only gathers the public API; the parts are, in dependency order:

- ``clock``: epoch milliseconds, timestamp formatting, business hours, the daily curve
- ``cast``: the tables, customers, staff, services, vendors and their addresses
- ``shapes``: how one event is built
- ``background``: shoppers, services and vendors on the daily curve
- ``scheduled``: the support desk, analysts, admins and the nightly ETL job
- ``scenarios``: the five incidents, each aimed at some rules
- ``incidents``: where incidents land in a span, and :class:`Incident`
- ``generator``: :func:`generate`, the day's stream hour by hour
- ``jsonl``: :func:`write_jsonl`
"""

from __future__ import annotations

from monitor.event import Event as Event

from .background import Maker as Maker
from .cast import ATTACKER_IP, CUSTOMER_TABLES, VENDOR_IPS
from .cast import Actor as Actor
from .clock import BUSINESS_HOURS as BUSINESS_HOURS
from .clock import HOUR_MS as HOUR_MS
from .clock import LOCAL_TZ as LOCAL_TZ
from .clock import MINUTE_MS as MINUTE_MS
from .clock import US_HOLIDAYS, format_ts, parse_start
from .generator import DEFAULT_EVENTS_PER_DAY, generate
from .incidents import Incident, incidents_for
from .jsonl import write_jsonl

# The names re-exported "as" themselves above were public in the single-module simulator
# without being in __all__; they stay importable from here.

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
