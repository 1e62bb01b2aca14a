"""The daemon's configuration: typed, validated models of its one YAML file.

Unknown keys are errors rather than ignored: a misspelt ``dead_letter_topc`` that
silently does nothing is how events get lost. Durations take ``"500ms"``/``"5s"`` or
milliseconds, host lists take comma-separated text, and relative paths are relative to
the config file's folder (passed as the ``base`` of the validation context).

Reading the file, applying environment overrides and turning pydantic's errors into
positioned messages is :mod:`monitor.configload`; :func:`load_config` and
:class:`ConfigError` are re-exported here, so callers import everything from this module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor import defaults
from monitor.configload import ENV_PREFIX as ENV_PREFIX
from monitor.configload import ConfigError as ConfigError
from monitor.configload import KeyProblem
from monitor.configload import load_config as load_config
from monitor.timeparse import parse_duration


def _relative(v: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base")
    if v is None or base is None or v.is_absolute():
        return v
    return Path(os.path.normpath(Path(base) / v))


def _comma_list(v: Any) -> Any:
    if isinstance(v, str):
        return [part.strip() for part in v.split(",") if part.strip()]
    return v


Duration = Annotated[int, BeforeValidator(parse_duration)]  # milliseconds
RelPath = Annotated[Path, AfterValidator(_relative)]
TextList = Annotated[list[str], BeforeValidator(_comma_list)]
PositiveInt = Annotated[int, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SslConfig(_Model):
    cafile: RelPath | None = None
    certfile: RelPath | None = None
    keyfile: RelPath | None = None
    password: SecretStr | None = None
    check_hostname: bool = True


class SaslConfig(_Model):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str
    password: SecretStr


class KafkaConfig(_Model):
    bootstrap_servers: TextList
    topics: TextList = []
    topic_pattern: str | None = None
    group_id: str = "exfil-monitor"
    client_id: str = "exfil-monitor"
    auto_offset_reset: Literal["earliest", "latest"] = "latest"
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
    commit_interval: Duration = 1000
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


class RulesConfig(_Model):
    path: RelPath


class EngineConfig(_Model):
    time_field: str = defaults.TIME_FIELD
    allowed_lateness: Duration = defaults.ALLOWED_LATENESS_MS
    max_future_skew: Duration = defaults.MAX_FUTURE_SKEW_MS
    max_groups_per_rule: PositiveInt = defaults.MAX_GROUPS_PER_RULE
    distinct_exact_limit: PositiveInt = defaults.DISTINCT_EXACT_LIMIT


class _OutputBase(_Model):
    name: str | None = None  # the metric label; defaults to the type
    send_timeout: Duration = 30_000

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type", "output"))


class StdoutOutputConfig(_OutputBase):
    type: Literal["stdout"]


class FileOutputConfig(_OutputBase):
    type: Literal["file"]
    path: RelPath


class KafkaOutputConfig(_OutputBase):
    type: Literal["kafka"]
    topic: str
    bootstrap_servers: TextList | None = None  # None: the source's, with its security


# The one place output types are declared; monitor.outputs maps each to its class.
OutputConfig = Annotated[
    StdoutOutputConfig | FileOutputConfig | KafkaOutputConfig, Field(discriminator="type")
]


class HttpConfig(_Model):
    listen: str = "127.0.0.1:8080"
    recent_alerts: PositiveInt = 200
    # Bounds against connections that hold descriptors (monitor.http): a request's headers
    # must arrive within header_timeout, an idle keep-alive ends after keepalive_timeout,
    # and at most max_connections are open, fewer if RLIMIT_NOFILE leaves less than
    # reserved_descriptors for everything else (the Kafka clients, files).
    header_timeout: Duration = Field(default=5_000, gt=0)
    keepalive_timeout: Duration = Field(default=15_000, gt=0)
    max_connections: PositiveInt = 100
    reserved_descriptors: PositiveInt = 256

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected HOST:PORT (port 0 picks a free one), got {v!r}")
        return v


class LogConfig(_Model):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class StateConfig(_Model):
    # Everything the daemon keeps on disk, under one lock (monitor.statedir). The default is
    # relative to the working directory; a path written in the file, like every path there,
    # to the file's folder.
    dir: RelPath = Path(".exfil-monitor")


class Config(_Model):
    kafka: KafkaConfig
    rules: RulesConfig
    state: StateConfig = StateConfig()
    engine: EngineConfig = EngineConfig()
    outputs: list[OutputConfig] = Field(default_factory=lambda: [StdoutOutputConfig(type="stdout")])  # type: ignore[arg-type]
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _unique_outputs(self) -> Config:
        labels = [o.label for o in self.outputs]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"outputs: give each output of a type a distinct name: {', '.join(dupes)}")
        k = self.kafka
        for o in self.outputs:  # an alerts topic on the source's own cluster must not be consumed
            if not isinstance(o, KafkaOutputConfig) or set(o.bootstrap_servers or k.bootstrap_servers) != set(k.bootstrap_servers):
                continue
            if key := k.consumes(o.topic):
                raise KeyProblem(("kafka", *key), f"consumes the alerts topic {o.topic!r} of output {o.label!r}: "
                                                  "the daemon would read its own alerts back")  # fmt: skip
        return self


OUTPUT_MODELS: dict[str, type[_OutputBase]] = {
    get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(get_args(OutputConfig)[0])
}
