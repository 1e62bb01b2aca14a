"""Pytest fixtures for a real Kafka broker (see tests/support/kafka.py).

Loaded from tests/conftest.py with ``pytest_plugins = ["tests.support.kafka_fixtures"]``.

- ``kafka_broker``: session-scoped ``Broker``, started once (or ``KAFKA_BOOTSTRAP``), stopped at
  the end of the session. Tests that restart it use ``restartable_kafka_broker``.
- ``kafka_bootstrap``: its ``host:port``.
- ``kafka_topic_factory``: ``make(partitions=1, prefix="t") -> name`` creates a uniquely named
  topic and waits for its partition leaders.
- ``kafka_sasl_ssl_broker``: session-scoped ``SaslSslBroker``, a second local broker with a
  SASL_SSL listener (SCRAM users, throwaway CA), started only when a test asks for it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.kafka import (
    Broker,
    SaslSslBroker,
    create_topic,
    delete_topic,
    obtain_broker,
    obtain_sasl_ssl_broker,
)

TopicFactory = Callable[..., str]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = obtain_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def restartable_kafka_broker(kafka_broker: Broker) -> Broker:
    """The session broker, for tests that stop/restart it (skips for ``KAFKA_BOOTSTRAP``)."""
    if not kafka_broker.can_restart:
        pytest.skip("KAFKA_BOOTSTRAP points at an external broker, which cannot be restarted")
    return kafka_broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def kafka_topic_factory(
    kafka_broker: Broker, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    created: list[str] = []
    test_name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]

    def make(partitions: int = 1, prefix: str = "t") -> str:
        name = f"{prefix}-{test_name}-{uuid.uuid4().hex[:8]}"
        create_topic(kafka_broker.bootstrap, name, partitions)
        created.append(name)
        return name

    yield make
    # A local broker is thrown away at the end of the session; only clean up someone else's.
    if not kafka_broker.can_restart:
        for name in created:
            delete_topic(kafka_broker.bootstrap, name)


@pytest.fixture(scope="session")
def kafka_sasl_ssl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslSslBroker]:
    broker = obtain_sasl_ssl_broker(tmp_path_factory.mktemp("kafka-sasl-ssl"))
    try:
        yield broker
    finally:
        broker.stop()
