"""Who and what the simulated shop has: its tables, customers, staff, services and addresses.

The background traffic and the incidents draw their actors from the same cast, so that an
incident's actor is one the rules have seen before (``agent-007``, ``hvac-vendor``) or,
where that is the point, one they have not (:data:`ATTACKER_IP`). Two of these lists
mirror ``rules/common.yaml`` and must be kept in step with it (see the comments). It also
holds :func:`rr`, the fast random draw every generator here uses.
"""

from __future__ import annotations

import random

Actor = tuple[str, str, str]  # id, type, ip

CUSTOMER_TABLES = frozenset({"customers", "customer_addresses", "payment_cards"})

# People, per 200,000 events a day; a bigger shop has more of them, not busier ones.
AGENTS = 20
ANALYSTS = 6
ADMINS = 3

N_CUSTOMERS = 400_000
IP_POOL_SIZE = 20_000

OFFICE_NET = "10.20"
SERVICE_IPS = {
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

BYTES_PER_ROW = {
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


def rr(rng: random.Random, lo: int, hi: int) -> int:
    """A number in [lo, hi), like ``randrange`` but several times faster (it matters here)."""
    return lo + int(rng.random() * (hi - lo))


def cust(n: int) -> str:
    """Customer number ``n`` as an id (``cust-0000042``)."""
    return f"cust-{n:07d}"


def ip_pool(seed: int) -> list[str]:
    """The shoppers' public addresses; customer ``n`` shops from ``pool[n % IP_POOL_SIZE]``."""
    pool_rng = random.Random(f"exfil-monitor/ip-pool/{seed}")
    return [
        f"{rr(pool_rng, 24, 223)}.{rr(pool_rng, 0, 256)}."
        f"{rr(pool_rng, 0, 256)}.{rr(pool_rng, 1, 255)}"
        for _ in range(IP_POOL_SIZE)
    ]


def staff(pattern: str, headcount: float, team: int) -> list[Actor]:
    """A team of employees on office addresses ``10.20.<team>.x``, at least one of them."""
    n = max(1, round(headcount))
    return [
        (pattern.format(i), "employee", f"{OFFICE_NET}.{team}.{10 + (i - 1) % 240}")
        for i in range(1, n + 1)
    ]
