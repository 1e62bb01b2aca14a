"""The Kafka settings every client shares (:class:`KafkaConfig`, the source's section of
the config, whose :meth:`~KafkaConfig.client_options` the consumer and both producers
use), and why a Kafka client could not start, in words an operator can act on.

aiokafka's bootstrap catches every per-server failure, logs it, and raises one
``KafkaConnectionError("Unable to bootstrap from ...")``: a wrong password, a broker
certificate the CA does not vouch for and a broker that is down all read the same on
``/readyz``. When that is the error, one direct connection per bootstrap server, with the
same security settings, recovers the cause. It runs only after a failed start (once per
retry, between backoffs), never on the hot path. Secrets stay out of the text: the broker's
SASL error message names the mechanism, not the credentials, and only the username is added.
"""

from __future__ import annotations

import re
import ssl
import zlib
from collections.abc import Callable
from typing import Any, Literal

from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.partitioner import murmur2
from pydantic import SecretStr, field_validator, model_validator

from monitor.configtypes import (
    Duration,
    KeyProblem,
    Model,
    PositiveInt,
    RelPath,
    Replicas,
    TextList,
    TimeZone,
)

PARTITIONERS: dict[str, Callable[[bytes, int], int]] = {  # named in monitor.defaults.PARTITIONERS
    "murmur2": lambda key, n: (murmur2(key) & 0x7FFFFFFF) % n,  # Java client, aiokafka
    "crc32": lambda key, n: zlib.crc32(key) % n,  # librdkafka's consistent(_random)
}

_CONNECT_OPTIONS = ("client_id", "request_timeout_ms", "ssl_context", "security_protocol",
                    "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")  # fmt: skip


async def explain(exc: BaseException, options: dict[str, Any]) -> str:
    """The problem to report for ``exc``, raised by starting a client made with ``options``
    (:meth:`monitor.config.KafkaConfig.client_options`)."""
    if not (isinstance(exc, KafkaConnectionError) and "Unable to bootstrap" in str(exc)):
        return f"broker unreachable: {exc}"
    for server in options["bootstrap_servers"]:
        cause = await _probe(server, options)
        if cause is not None:
            return cause
    return f"broker unreachable: {exc}"


async def _probe(server: str, options: dict[str, Any]) -> str | None:
    """A security failure connecting to ``server``, or None (it connects, or is merely down)."""
    host, _, port = server.rpartition(":")
    kwargs = {key: options[key] for key in _CONNECT_OPTIONS if key in options}
    try:
        conn = await create_conn(host.strip("[]"), int(port), **kwargs)
    except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as err:
        user, mechanism = options.get("sasl_plain_username"), options.get("sasl_mechanism")
        return f"authentication failed: {server} refused SASL {mechanism} as user {user!r}: {err}"
    except ssl.SSLCertVerificationError as err:
        return f"TLS certificate verification failed for {server}: {err.verify_message} (check ssl.cafile)"
    except ssl.SSLError as err:
        return f"TLS handshake with {server} failed: {err.reason or err}"
    except (TimeoutError, OSError, KafkaError, ValueError):
        return None
    conn.close()
    return None


async def describe_partitions(options: dict[str, Any], topic: str) -> tuple[list[int], int]:
    """``topic``'s partitions as the broker says now (a client's cached metadata may not know
    a topic made a moment ago), with the broker's error code (0: none; 3, unknown topic, for
    one that does not exist). Listed before it is described: asking a broker with
    ``auto.create.topics.enable`` (the default) for a missing topic's metadata creates it,
    with the broker's default partition count."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import UnknownTopicOrPartitionError

    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return [], UnknownTopicOrPartitionError.errno
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = sorted(p["partition"] for p in described.get("partitions") or [])
    return parts, int(described.get("error_code") or 0)


class TopicError(Exception):
    """A topic the daemon needs cannot be made; the message says why."""


async def ensure_topic(admin: Any, topic: str, *, partitions: int, replication_factor: int,
                       configs: dict[str, str], what: str) -> bool:  # fmt: skip
    """Create ``topic`` (the daemon's own: checkpoints, the internal topic) unless it exists;
    True if it existed. ``replication_factor`` -1: as many as the cluster has brokers, up to
    3, so that losing a broker loses nothing. Another instance making it first is fine."""
    from aiokafka.admin import NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    if topic in await admin.list_topics():
        return True
    replicas = replication_factor
    if replicas == -1:
        replicas = min(3, len((await admin.describe_cluster()).get("brokers", [])) or 1)
    response = await admin.create_topics([NewTopic(topic, partitions, replicas, topic_configs=configs)])
    for _, code, *rest in getattr(response, "topic_errors", []):
        if code not in (0, TopicAlreadyExistsError.errno):
            message = rest[0] if rest and rest[0] else f"error code {code}"
            raise TopicError(f"cannot create the {what} {topic}: {message}")
    return False


class SslConfig(Model):
    cafile: RelPath | None = None
    certfile: RelPath | None = None
    keyfile: RelPath | None = None
    password: SecretStr | None = None
    check_hostname: bool = True


class SaslConfig(Model):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str
    password: SecretStr


class RepartitionConfig(Model):
    """The internal topic of rules evaluated after repartitioning (monitor.engine.repartition)."""

    topic: str | None = None  # default: <group_id>.repartition
    partitions: PositiveInt | None = None  # when the daemon creates it; default: the most a consumed topic has
    replication_factor: Replicas = -1  # of a topic the daemon creates; -1: min(3, brokers)


class KafkaConfig(Model):
    bootstrap_servers: TextList
    topics: TextList = []  # noqa: RUF012 - pydantic copies defaults
    topic_pattern: str | None = None
    group_id: str = "exfil-monitor"
    client_id: str = "exfil-monitor"
    auto_offset_reset: Literal["earliest", "latest"] = "latest"
    format: str = "jsonl"  # the input format of the messages (monitor.inputs)
    timezone: TimeZone = "UTC"  # for formats whose timestamps have no zone
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl: SslConfig | None = None
    sasl: SaslConfig | None = None
    dead_letter_topic: str | None = None
    max_batch: PositiveInt = 5000
    fetch_max_wait: Duration = 100
    poll_timeout: Duration = 500
    max_partition_fetch_bytes: PositiveInt = 4 * 1024 * 1024
    fetch_max_bytes: PositiveInt = 50 * 1024 * 1024
    session_timeout: Duration = 10_000
    heartbeat_interval: Duration = 3000
    max_poll_interval: Duration = 300_000
    request_timeout: Duration = 30_000
    metadata_max_age: Duration = 10_000
    # The field producers key records by: rules grouped by it see each group whole in one
    # partition (monitor.engine.partitioned); records keyed otherwise are counted.
    key_field: str = "actor.id"
    # false: producers key by something else (Kafka Connect, Debezium, another
    # partitioner), so every rule that remembers a group is repartitioned.
    keyed: bool = True
    repartition: RepartitionConfig = RepartitionConfig()
    retry_backoff: Duration = 500
    retry_backoff_max: Duration = 30_000

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @property
    def repartition_topic(self) -> str:
        return self.repartition.topic or f"{self.group_id}.repartition"

    def consumes(self, topic: str) -> tuple[str | int, ...] | None:
        """The key (path under ``kafka``) by which ``topic`` is consumed, or None.

        aiokafka matches ``topic_pattern`` with ``re.match``: a prefix match."""
        if self.topic_pattern is not None:
            return ("topic_pattern",) if re.match(self.topic_pattern, topic) else None
        return ("topics", self.topics.index(topic)) if topic in self.topics else None

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConfig:
        if bool(self.topics) == bool(self.topic_pattern):
            raise ValueError("give exactly one of topics (a list of names) or topic_pattern")
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers: at least one host:port is needed")
        if self.security_protocol.startswith("SASL") and self.sasl is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl section")
        if not self.security_protocol.startswith("SASL") and self.sasl is not None:
            raise ValueError(f"a sasl section needs a SASL security_protocol, not {self.security_protocol}")
        if not self.security_protocol.endswith("SSL") and self.ssl is not None:
            raise ValueError(f"an ssl section needs security_protocol SSL or SASL_SSL, not {self.security_protocol}")
        if self.dead_letter_topic and (key := self.consumes(self.dead_letter_topic)):
            raise KeyProblem(key, f"consumes the dead-letter topic {self.dead_letter_topic!r}: the daemon would "
                                  "read its own dead letters back for ever")  # fmt: skip
        if self.dead_letter_topic == self.repartition_topic:
            raise KeyProblem(("dead_letter_topic",), "is the internal topic of repartitioned rules: dead letters "
                                                     "would be read back as forwarded events")  # fmt: skip
        if key := self.consumes(self.repartition_topic):
            raise KeyProblem(key, f"consumes the internal topic {self.repartition_topic!r} as events: it is read "
                                  "as forwarded events already (set kafka.repartition.topic, or narrow the topics)")  # fmt: skip
        return self

    def client_options(self, bootstrap_servers: list[str] | None = None) -> dict[str, Any]:
        """aiokafka keyword arguments for connecting and authenticating, shared by every
        client the daemon makes (consumer, dead-letter producer, alerts producer)."""
        opts: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers or self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout,
            "retry_backoff_ms": self.retry_backoff,
            "metadata_max_age_ms": self.metadata_max_age,
        }
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            ssl = self.ssl or SslConfig()
            context = create_ssl_context(
                cafile=str(ssl.cafile) if ssl.cafile else None,
                certfile=str(ssl.certfile) if ssl.certfile else None,
                keyfile=str(ssl.keyfile) if ssl.keyfile else None,
                password=ssl.password.get_secret_value() if ssl.password else None,
            )
            context.check_hostname = ssl.check_hostname
            opts["ssl_context"] = context
        if self.sasl is not None:
            opts["sasl_mechanism"] = self.sasl.mechanism
            opts["sasl_plain_username"] = self.sasl.username
            opts["sasl_plain_password"] = self.sasl.password.get_secret_value()
        return opts
