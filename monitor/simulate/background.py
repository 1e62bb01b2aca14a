"""The traffic that follows the daily curve: shoppers, the shop's services, and two vendors.

This is most of a day's events. Each one is drawn from a fixed, weighted mix of event
makers (a shopper reading their own record, checkout looking up one customer, search
reading products, the shipping partner updating shipments, ...). Over a third of the mix
touches the customer tables, yet every maker stays under the thresholds of the bundled
rules: this is what a healthy shop looks like. People who keep office hours are in
:mod:`.scheduled`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable

from monitor.event import Event

from .cast import (
    IP_POOL_SIZE,
    N_CUSTOMERS,
    SERVICE_IPS,
    VENDOR_IPS,
    Actor,
    cust,
    ip_pool,
    rr,
)
from .shapes import event, login_event, table_event

Maker = Callable[[random.Random, int], Event]


class Background:
    """Shoppers, services and vendors, drawn from a weighted mix of event makers."""

    def __init__(self, seed: int) -> None:
        self.ip_pool = ip_pool(seed)
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

    def services(self, rng: random.Random, lo: int, hi: int, n: int) -> list[Event]:
        """``n`` events drawn from the mix, at random times in [lo, hi)."""
        cum, makers, span = self.cum, self.makers, hi - lo
        rand, find = rng.random, bisect.bisect_right
        return [makers[find(cum, rand())](rng, lo + int(rand() * span)) for _ in range(n)]

    # shoppers --------------------------------------------------------------------------

    def _shopper(self, rng: random.Random) -> Actor:
        n = rr(rng, 1, N_CUSTOMERS + 1)
        return (cust(n), "customer", self.ip_pool[n % IP_POOL_SIZE])

    def _shopper_reads(self, table: str) -> Maker:
        def make(rng: random.Random, ts: int) -> Event:
            who = self._shopper(rng)
            rows = 1 if table == "customers" else rr(rng, 1, 3)
            return table_event(ts, who, "select", table, rows, "storefront", who[0])

        return make

    def _shopper_updates_profile(self, rng: random.Random, ts: int) -> Event:
        who = self._shopper(rng)
        table = "customers" if rng.random() < 0.6 else "customer_addresses"
        return table_event(ts, who, "update", table, 1, "storefront", who[0])

    def _shopper_login(self, rng: random.Random, ts: int) -> Event:
        outcome = "denied" if rng.random() < 0.04 else "success"  # a mistyped password
        return login_event(ts, self._shopper(rng), "/login", "storefront", outcome)

    def _invoice_download(self, rng: random.Random, ts: int) -> Event:
        who = self._shopper(rng)
        nbytes = rr(rng, 30_000, 120_000)
        return event(
            ts, who, "download", ("api", "gateway", "/invoices"), 1, nbytes, "storefront", who[0]
        )

    # services --------------------------------------------------------------------------

    @staticmethod
    def _outcome(rng: random.Random) -> str:
        r = rng.random()
        return "error" if r < 0.002 else "denied" if r < 0.0022 else "success"

    def _service_lookup(self, svc: str, table: str, max_rows: int) -> Maker:
        """One customer's rows, for the request of that customer."""
        me: Actor = (svc, "service", SERVICE_IPS[svc])

        def make(rng: random.Random, ts: int) -> Event:
            cid = cust(rr(rng, 1, N_CUSTOMERS + 1))
            rows = 1 if max_rows == 1 else rr(rng, 1, max_rows + 1)
            return table_event(ts, me, "select", table, rows, svc, cid, self._outcome(rng))

        return make

    def _card_insert(self, rng: random.Random, ts: int) -> Event:
        me: Actor = ("payment-service", "service", SERVICE_IPS["payment-service"])
        cid = cust(rr(rng, 1, N_CUSTOMERS + 1))
        return table_event(ts, me, "insert", "payment_cards", 1, "payment-service", cid)

    def _recommendation_segment(self, rng: random.Random, ts: int) -> Event:
        """A batch read of a customer segment ("people like you"): many rows, no one customer."""
        me: Actor = ("recommendation", "service", SERVICE_IPS["recommendation"])
        return table_event(ts, me, "select", "customers", rr(rng, 50, 200), "recommendation")

    def _service_table(self, svc: str, action: str, table: str, lo: int, hi: int) -> Maker:
        me: Actor = (svc, "service", SERVICE_IPS[svc])

        def make(rng: random.Random, ts: int) -> Event:
            rows = lo if lo == hi else rr(rng, lo, hi + 1)
            return table_event(ts, me, action, table, rows, svc, None, self._outcome(rng))

        return make

    # vendors ---------------------------------------------------------------------------

    @staticmethod
    def _vendor_table(vendor: str, action: str, table: str, lo: int, hi: int) -> Maker:
        ips = VENDOR_IPS[vendor]
        db = "ops" if table == "hvac_readings" else "shop"

        def make(rng: random.Random, ts: int) -> Event:
            who: Actor = (vendor, "vendor", ips[rr(rng, 0, len(ips))])
            return table_event(ts, who, action, table, rr(rng, lo, hi + 1), "vendor-portal", db=db)

        return make

    @staticmethod
    def _vendor_login(vendor: str) -> Maker:
        ips = VENDOR_IPS[vendor]

        def make(rng: random.Random, ts: int) -> Event:
            who: Actor = (vendor, "vendor", ips[rr(rng, 0, len(ips))])
            return login_event(ts, who, "/vendor/login", "vendor-portal")

        return make
