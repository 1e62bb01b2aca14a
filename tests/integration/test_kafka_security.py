"""The daemon over SASL_SSL against a real listener: SCRAM users, TLS verified against a CA.

Accepting ``security_protocol: SASL_SSL`` in the config proves nothing; these tests run a
broker with a SASL_SSL listener (``scripts/kafka-local start --sasl-ssl``) and check what an
operator relies on: consumption, dead letters, the Kafka output, checkpoints and the internal
topic of repartitioned rules work over it; a wrong
password and an untrusted certificate are named as such on ``/readyz`` and in the log (not
as aiokafka's catch-all "Unable to bootstrap"); and the password appears nowhere the daemon
writes or serves. The test's own producers and readers use the broker's PLAINTEXT listener.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.daemon_process import DaemonProcess, produce, read_topic
from tests.support.kafka import SaslSslBroker, create_topic
from tests.support.rules import pack_with

pytestmark = pytest.mark.kafka

VENDOR = {"actor": {"id": "hvac-vendor", "type": "vendor", "ip": "203.0.113.66"}, "action": "select",
          "resource": {"kind": "table", "db": "shop", "name": "customers"}, "rows": 5, "outcome": "success"}  # fmt: skip


# The bundled pack and one rule counted after repartitioning (no group_by, a window).
SHOP_WIDE = """\
rules:
  - {id: vendor-reads-shop-wide, severity: high, match: {actor.type: vendor}, window: 1h, threshold: {gte: 1}}
"""


@pytest.fixture
def rules_with_a_repartitioned_one(tmp_path: Path) -> Path:
    return pack_with(tmp_path / "rules", **{"zz-shop-wide.yaml": SHOP_WIDE})


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Daemons whose ``kafka`` section connects with ``security`` (SASL_SSL keys) instead."""
    started: list[DaemonProcess] = []

    def make(security: dict[str, Any], **kwargs: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path / f"daemon-{len(started)}", bootstrap="unused:9", **kwargs)
        config = orjson.loads(d.config.read_bytes())
        config["kafka"].update(security)
        d.config.write_bytes(orjson.dumps(config))
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


def topic(broker: SaslSslBroker, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, name)
    return name


async def wait_reason(d: DaemonProcess, contains: str, timeout: float = 60.0) -> str:
    """The ``/readyz`` reason once it names ``contains`` (the first 503s may say "not started")."""
    deadline = time.monotonic() + timeout
    reasons: list[str] = []
    while True:
        status, body = await d.get("/readyz", deadline)
        assert status == 503, body
        reasons.append(str(body["reason"]))
        if contains in reasons[-1]:
            return reasons[-1]
        assert time.monotonic() < deadline, f"/readyz never said {contains!r}: {reasons[-3:]}\n{d.stderr_tail()}"
        await asyncio.sleep(0.2)


async def served_text(d: DaemonProcess) -> str:
    """Everything the daemon serves over HTTP, as text."""
    deadline = time.monotonic() + 30
    parts = []
    for path in ("/rules", "/readyz", "/healthz", "/metrics", "/alerts"):
        _, body = await d.get(path, deadline)
        parts.append(body if isinstance(body, str) else orjson.dumps(body).decode())
    return "\n".join(parts)


async def assert_secret_nowhere(d: DaemonProcess, *secrets: str) -> None:
    written = await served_text(d) + d.stderr_text() + d.stdout_path.read_text()
    for secret in secrets:
        assert secret not in written, "a SASL password leaked into the daemon's output or endpoints"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
async def test_consumes_alerts_dead_letters_checkpoints_and_repartitions_over_sasl_ssl(
    kafka_sasl_ssl_broker: SaslSslBroker, daemons: Callable[..., DaemonProcess], mechanism: str,
    rules_with_a_repartitioned_one: Path,
) -> None:
    broker = kafka_sasl_ssl_broker
    events, alerts, dlq = topic(broker, "events"), topic(broker, "alerts"), topic(broker, "dlq")
    await produce(broker.bootstrap, events, [
        (b"k0", b"not json"),
        (b"hvac-vendor", orjson.dumps({**VENDOR, "ts": "2026-11-28T01:05:00Z", "id": "good-1"})),
    ])  # fmt: skip

    d = daemons(broker.client_security(mechanism), topic=events, alerts_topic=alerts, dead_letter_topic=dlq,
                rules=rules_with_a_repartitioned_one)  # fmt: skip
    d.start()
    await d.wait_ready()
    await d.wait_metrics(lambda m: m.total("dead_letters_total") >= 1
                         and m.v("output_sends_total", output="kafka", outcome="success") >= 2
                         and m.v("repartition_forwarded_total") >= 1
                         and m.v("checkpoints_total", outcome="saved") >= 2)  # fmt: skip
    await assert_secret_nowhere(d, broker.password)
    assert d.stop() == 0

    alerts_seen = {a["rule"]: a for a in d.stdout_alerts()}
    assert set(alerts_seen) == {"vendor-touches-customer-data", "vendor-reads-shop-wide"}, "the second by the internal topic"
    sent = await read_topic(broker.bootstrap, alerts, 2)
    assert {(key.decode(), orjson.loads(value)["id"]) for key, value, _ in sent} == {(a["id"], a["id"]) for a in alerts_seen.values()}
    [(_, forwarded, _)] = await read_topic(broker.bootstrap, f"{d.group}.repartition", 1)
    assert orjson.loads(forwarded)["events"][0][0] == f"{events}/0", "stamped with its source partition"
    d.start()  # the state comes back from the checkpoint topic, over SASL_SSL too
    await d.wait_ready()
    assert d.stop() == 0
    restored = {e["partition"] for e in d.log_events() if e.get("event") == "checkpoint_restored"}
    assert f"{events}.0" in restored, restored
    # (the log masks the group id's long digit run as if it were a card number)
    assert any(p.endswith(".repartition.0") for p in restored), restored
    [(key, value, headers)] = await read_topic(broker.bootstrap, dlq, 1)
    assert (key, value) == (b"k0", b"not json")
    assert dict(headers)["exfil_monitor.reason"] == b"invalid_json"
    assert broker.password not in d.stderr_text()


async def test_a_wrong_password_is_reported_as_an_authentication_failure(
    kafka_sasl_ssl_broker: SaslSslBroker, daemons: Callable[..., DaemonProcess]
) -> None:
    broker = kafka_sasl_ssl_broker
    wrong = f"wrong-{uuid.uuid4().hex}"
    security = broker.client_security()
    security["sasl"]["password"] = wrong
    d = daemons(security, topic=topic(broker, "events"))
    d.start()

    reason = await wait_reason(d, "authentication failed")
    assert "Unable to bootstrap" not in reason
    assert f"SCRAM-SHA-512 as user {broker.username!r}" in reason
    logged = [e["error"] for e in d.log_events() if e.get("event") in ("source_error", "checkpoint_store_unavailable")]
    assert any("authentication failed" in error for error in logged), logged
    await assert_secret_nowhere(d, wrong, broker.password)
    assert d.stop() == 0
    assert wrong not in d.stderr_text()


async def test_a_broker_certificate_the_ca_does_not_vouch_for_is_refused(
    kafka_sasl_ssl_broker: SaslSslBroker, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca),
                    "-subj", "/CN=some other CA"], check=True, capture_output=True, timeout=30)  # fmt: skip
    broker = kafka_sasl_ssl_broker
    security = broker.client_security()
    security["ssl"]["cafile"] = str(other_ca)
    d = daemons(security, topic=topic(broker, "events"))
    d.start()

    reason = await wait_reason(d, "TLS certificate verification failed")
    assert broker.sasl_ssl_bootstrap in reason and "Unable to bootstrap" not in reason
    assert d.stop() == 0

