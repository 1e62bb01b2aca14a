"""The daemon's configuration: typed, validated models of its one YAML file.

Unknown keys are errors rather than ignored: a misspelt ``dead_letter_topc`` that
silently does nothing is how events get lost. Durations take ``"500ms"``/``"5s"`` or
milliseconds, host lists take comma-separated text, and relative paths are relative to
the config file's folder (passed as the ``base`` of the validation context).

Each component's section is modelled beside the component (:mod:`monitor.kafka_client`,
each output's module, registered by ``type:`` in :mod:`monitor.outputs`); this module
composes the top level. Reading the file, applying environment overrides and turning
pydantic's errors into positioned messages is :mod:`monitor.configload`, which knows no
model: :func:`load_config` hands it :class:`Config`. Callers import everything from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor import configload, defaults
from monitor.checkpoints.config import CheckpointConfig as CheckpointConfig
from monitor.configload import ENV_PREFIX as ENV_PREFIX
from monitor.configload import ConfigError as ConfigError
from monitor.configtypes import ByteSize, Duration, KeyProblem, Model, PositiveInt, RelPath
from monitor.engine.engine import EngineOptions
from monitor.kafka_client import KafkaConfig as KafkaConfig
from monitor.kafka_client import SaslConfig as SaslConfig
from monitor.kafka_client import SslConfig as SslConfig
from monitor.outputs import OUTPUT_MODELS as OUTPUT_MODELS
from monitor.outputs import OutputConfig as OutputConfig
from monitor.outputs.alertmanager import AlertmanagerConfig as AlertmanagerConfig
from monitor.outputs.file import FileOutputConfig as FileOutputConfig
from monitor.outputs.kafka import KafkaOutputConfig as KafkaOutputConfig
from monitor.outputs.routing import UNROUTED_DETAIL, unrouted_severities
from monitor.outputs.spool import DEFAULT_MAX_BYTES as DEFAULT_SPOOL_BYTES
from monitor.outputs.stdout import StdoutOutputConfig as StdoutOutputConfig
from monitor.privacy import PrivacyConfig as PrivacyConfig
from monitor.problems import Problem
from monitor.secrets import resolve_secret
from monitor.sources import SOURCE_MODELS as SOURCE_MODELS
from monitor.sources import SourceConfig as SourceConfig
from monitor.sources.logfile import FileSourceConfig as FileSourceConfig


class RulesConfig(Model):
    path: RelPath
    # Reload when the files change (monitor.reload): polled, compared by content, acted on
    # once they held still for one interval. SIGHUP reloads either way.
    watch: bool = True
    watch_interval: Duration = Field(default=2_000, gt=0)


class EngineConfig(Model):
    time_field: str = defaults.TIME_FIELD
    allowed_lateness: Duration = defaults.ALLOWED_LATENESS_MS
    max_future_skew: Duration = defaults.MAX_FUTURE_SKEW_MS
    max_groups_per_rule: PositiveInt = defaults.MAX_GROUPS_PER_RULE
    distinct_exact_limit: PositiveInt = defaults.DISTINCT_EXACT_LIMIT
    # A source idle this long (caught up, no events) lets resolutions whose resolved_at
    # the wall clock has passed go out, at that same resolved_at (monitor.engine.episodes).
    idle_resolve_after: Duration = Field(default=30_000, gt=0)

    def options(self, template_field: Callable[[str, Any], Any] | None = None) -> EngineOptions:
        """The engine's options from this section (the daemon's and ``warmup``'s)."""
        return EngineOptions(allowed_lateness_ms=self.allowed_lateness, max_groups_per_rule=self.max_groups_per_rule,
                             distinct_exact_limit=self.distinct_exact_limit, template_field=template_field)  # fmt: skip


class HttpConfig(Model):
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
    # A secret (monitor.httpauth): every endpoint but /healthz and /readyz then needs
    # "Authorization: Bearer <token>"; /metrics too unless open_metrics.
    auth_token: SecretStr | None = None
    auth_token_file: RelPath | None = None
    open_metrics: bool = False

    @model_validator(mode="after")
    def _token(self) -> HttpConfig:
        resolve_secret(self, "auth_token", required=False)
        return self

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


class LogConfig(Model):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class StateConfig(Model):
    # Everything the daemon keeps on disk, under one lock (monitor.statedir). The default is
    # relative to the working directory; a path written in the file, like every path there,
    # to the file's folder.
    dir: RelPath = Path(".exfil-monitor")


class SpoolConfig(Model):
    # Each output's undelivered records, under state.dir/spool/<output> (monitor.outputs.spool).
    # A full spool pauses consumption until it drains; nothing is dropped.
    max_bytes: ByteSize = DEFAULT_SPOOL_BYTES
    # How long a stop waits for the outputs to deliver what is spooled (the rest waits
    # for the next start).
    drain_timeout: Duration = Field(default=10_000, ge=0)


class Config(Model):
    # Where events come from: exactly one of the Kafka section and a list of sources.
    kafka: KafkaConfig | None = None
    sources: list[SourceConfig] | None = None
    rules: RulesConfig
    state: StateConfig = StateConfig()
    spool: SpoolConfig = SpoolConfig()
    engine: EngineConfig = EngineConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    outputs: list[OutputConfig] = Field(default_factory=lambda: [StdoutOutputConfig(type="stdout")])  # type: ignore[arg-type]
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    privacy: PrivacyConfig = PrivacyConfig()

    @model_validator(mode="after")
    def _one_origin(self) -> Config:
        if self.kafka is None and self.sources is None:
            raise ValueError("give the source of events: a kafka: section or a sources: list (e.g. "
                             "[{type: file, path: /var/log/postgresql/*.csv, format: pgaudit}])")  # fmt: skip
        if self.kafka is not None and self.sources is not None:
            raise KeyProblem(("sources",), "give either kafka: or sources:, not both (one daemon, one source)")
        if self.sources is not None:
            if len(self.sources) != 1:
                raise KeyProblem(("sources",), f"exactly one source is supported, got {len(self.sources)}; "
                                               "run one daemon (with its own state.dir) per source")  # fmt: skip
            for i, o in enumerate(self.outputs):
                if isinstance(o, KafkaOutputConfig):
                    raise KeyProblem(("outputs", i), "a kafka output takes its brokers and security settings "
                                                     "from the kafka: section, which a file source has not")  # fmt: skip
        if self.kafka is None and self.checkpoint.store == "kafka":
            raise KeyProblem(("checkpoint", "store"), "store: kafka keeps checkpoints on the kafka: section's "
                                                      "cluster, which a file source has not: use directory")  # fmt: skip
        k = self.kafka
        if k is not None and self.checkpoint.store_kind(k) == "kafka":
            topic = self.checkpoint.topic_for(k)
            if key := k.consumes(topic):
                raise KeyProblem(("kafka", *key), f"consumes the checkpoint topic {topic!r}: checkpoints are not "
                                                  "events (set checkpoint.topic, or narrow the topics)")  # fmt: skip
            if topic == k.repartition_topic:
                raise KeyProblem(("checkpoint", "topic"), f"{topic!r} is the internal topic of repartitioned rules")
            if k.dead_letter_topic == topic:
                raise KeyProblem(("kafka", "dead_letter_topic"), f"is the checkpoint topic {topic!r}: dead letters "
                                                                 "are not checkpoints")  # fmt: skip
        return self

    @property
    def retry_backoff(self) -> tuple[float, float]:
        """(initial, max) seconds between retries of a failing output: the Kafka section's, or its defaults."""
        k = self.kafka
        if k is None:
            fields = KafkaConfig.model_fields
            return fields["retry_backoff"].default / 1000, fields["retry_backoff_max"].default / 1000
        return k.retry_backoff / 1000, k.retry_backoff_max / 1000

    @model_validator(mode="after")
    def _unique_outputs(self) -> Config:
        labels = [o.label for o in self.outputs]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"outputs: give each output of a type a distinct name: {', '.join(dupes)}")
        k = self.kafka
        if k is None:
            return self
        for o in self.outputs:  # an alerts topic on the source's own cluster must not be consumed
            if not isinstance(o, KafkaOutputConfig) or set(o.bootstrap_servers or k.bootstrap_servers) != set(k.bootstrap_servers):
                continue
            if key := k.consumes(o.topic):
                raise KeyProblem(("kafka", *key), f"consumes the alerts topic {o.topic!r} of output {o.label!r}: "
                                                  "the daemon would read its own alerts back")  # fmt: skip
            if o.topic in (k.repartition_topic, self.checkpoint.topic_for(k)):
                raise KeyProblem(("outputs", self.outputs.index(o), "topic"), f"{o.topic!r} is one of the daemon's "
                                 "own topics (the internal topic or the checkpoints): alerts go to another")  # fmt: skip
        return self


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate; raise :class:`ConfigError` with all problems."""
    return configload.load_model(path, environ, Config, {"outputs": OUTPUT_MODELS, "sources": SOURCE_MODELS})


def config_warnings(config: Config, path: str | Path) -> list[Problem]:
    """What loads but is probably not meant, for ``check --config``: each severity no
    output takes, found by the same test as the daemon's warning at start."""
    unrouted = unrouted_severities({o.label: o.match for o in config.outputs})
    if not unrouted:
        return []
    line, col = configload.key_position(path, ("outputs",))
    return [Problem(str(path), line, col, f"outputs: no output takes severity {sev!r}: {UNROUTED_DETAIL}",
                    code="W-UNROUTED-SEVERITY") for sev in unrouted]  # fmt: skip
