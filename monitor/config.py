"""The daemon's configuration: one YAML file, typed and validated, environment on top.

Every problem is reported at once as ``FILE:LINE:COL: key.path: message``, because an
operator fixing a config during an incident should not have to restart five times to
find five typos. Unknown keys are errors rather than ignored: a misspelt
``dead_letter_topc`` that silently does nothing is how events get lost.

Environment variables override the file, so secrets need not be written in it:
``EXFIL_MONITOR_`` followed by the key path in capitals, levels joined by ``__``
(``EXFIL_MONITOR_KAFKA__SASL__PASSWORD``, ``EXFIL_MONITOR_ENGINE__ALLOWED_LATENESS``);
names without a ``__``, like ``EXFIL_MONITOR_RULES``, are not overrides.
A number segment indexes a list (``EXFIL_MONITOR_OUTPUTS__1__TOPIC``). Values are text,
converted like the file's (``"true"``, ``"5000"``); keys holding lists also take
comma-separated text. Relative paths are relative to the config file's folder.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.rules.errors import Problem
from monitor.rules.yamlpos import Doc, YamlProblem, load
from monitor.timeparse import parse_duration

ENV_PREFIX = "EXFIL_MONITOR_"


class ConfigError(Exception):
    """Every problem found in a config file and its environment overrides."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


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
    time_field: str = "ts"
    allowed_lateness: Duration = 60_000
    max_future_skew: Duration = 300_000
    max_groups_per_rule: PositiveInt = 100_000
    distinct_exact_limit: PositiveInt = 4096


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


class Config(_Model):
    kafka: KafkaConfig
    rules: RulesConfig
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
        return self


OUTPUT_MODELS: dict[str, type[_OutputBase]] = {
    get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(get_args(OutputConfig)[0])
}

# ---------------------------------------------------------------- loading


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate; raise :class:`ConfigError` with all problems."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{name}:1:1: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}:1:1: not UTF-8 text (byte {exc.start})"]) from None
    try:
        doc = load(text)
    except YamlProblem as exc:
        raise ConfigError([str(Problem(name, exc.pos.line, exc.pos.col, exc.message))]) from None
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([f"{name}:1:1: expected a mapping of sections (kafka, rules, ...)"])
    problems: list[str] = []
    env_paths = _apply_env(data, os.environ if environ is None else environ, problems)
    try:
        config = Config.model_validate(data, context={"base": Path(path).resolve().parent})
    except ValidationError as exc:
        found = sorted(_describe(err, doc, data, name, env_paths) for err in exc.errors())
        problems.extend(text for _pos, text in found)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _apply_env(data: dict[str, Any], environ: Mapping[str, str], problems: list[str]) -> dict[tuple[Any, ...], str]:
    """Set ``EXFIL_MONITOR_A__B`` values into ``data``; return path -> variable name."""
    applied: dict[tuple[Any, ...], str] = {}
    # An override names a key inside a section, so it has a "__": other EXFIL_MONITOR_
    # variables (EXFIL_MONITOR_RULES, the rule pack `demo` uses) are not overrides.
    for var in sorted(v for v in environ if v.startswith(ENV_PREFIX) and "__" in v[len(ENV_PREFIX):]):
        parts: list[Any] = [int(p) if p.isdigit() else p.lower() for p in var[len(ENV_PREFIX):].split("__")]
        if "" in parts:
            problems.append(f"${var}: malformed name (levels are joined by a double underscore)")
            continue
        cur: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(cur, dict) and isinstance(part, str):
                if last:
                    cur[part] = environ[var]
                elif not isinstance(cur.get(part), dict | list):
                    if isinstance(parts[i + 1], int):  # a list item can only be changed, not made
                        problems.append(f"${var}: {_dotted(parts[: i + 1])} has no item {parts[i + 1]}")
                        break
                    cur[part] = {}
            elif not (isinstance(cur, list) and isinstance(part, int) and part < len(cur)):
                problems.append(f"${var}: {_dotted(parts[:i]) or 'the top level'} has no item {part}")
                break
            elif last:
                cur[part] = environ[var]
            cur = None if last else cur[part]
        else:
            applied[tuple(parts)] = var
    return applied


def _dotted(path: Any) -> str:
    return ".".join(str(p) for p in path)


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], bool]:
    """The part of pydantic's ``loc`` that exists in the data, without union tags.

    Returns (path, complete): complete is False when the last item is missing.
    """
    path: list[Any] = []
    cur = data
    for seg in loc:
        if (isinstance(cur, dict) and seg in cur) or (
            isinstance(cur, list) and isinstance(seg, int) and 0 <= seg < len(cur)
        ):
            cur = cur[seg]
        elif isinstance(cur, dict) and cur.get("type") == seg:
            continue  # the discriminator's tag, not a key
        else:
            return tuple(path), False
        path.append(seg)
    return tuple(path), True


def _describe(
    err: Any, doc: Doc, data: Any, name: str, env: dict[tuple[Any, ...], str]
) -> tuple[tuple[int, int], str]:
    """((line, col) to sort by, ``FILE:LINE:COL: key.path: message``) for one pydantic error."""
    loc = tuple(err["loc"])
    path, complete = _data_path(loc, data)
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = str(path[-1])
        hint = difflib.get_close_matches(key, _known_keys(path[:-1], data), n=1)
        message = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        where_path = path[:-1]
    elif kind == "missing":
        message = f"missing required key {str(loc[-1])!r}"
        where_path = path
    elif kind == "union_tag_invalid":
        message = f"unknown output type {err['input'].get('type')!r} (known: {err['ctx']['expected_tags']})"
        where_path = path
    else:
        where_path = path
    label = _dotted(where_path)
    text = f"{label}: {message}" if label else message
    # The value came from a variable (it or a parent was set), or the key did not exist
    # in the file and a variable created it.
    blame = [v for p, v in env.items() if path[: len(p)] == p] or (
        [v for p, v in env.items() if p[: len(path)] == path] if path not in doc.values else []
    )
    if blame:
        return (0, 0), f"${blame[0]}: {text}"
    if kind == "extra_forbidden":
        pos = doc.key_at(path)
    elif kind == "missing" or not complete:
        pos = doc.key_at(path) if path else doc.where(())
    else:
        pos = doc.where(path)
    return (pos.line, pos.col), f"{name}:{pos.line}:{pos.col}: {text}"


def _known_keys(path: tuple[Any, ...], data: Any) -> list[str]:
    """The keys the model at ``path`` accepts, for did-you-mean hints."""
    model: Any = Config
    cur = data
    for seg in path:
        cur = cur[seg]
        if isinstance(seg, int):  # an item of `outputs`: its model is chosen by `type`
            model = OUTPUT_MODELS.get(str(cur.get("type"))) if isinstance(cur, dict) else None
        elif model is not None and seg in model.model_fields:
            ann = model.model_fields[seg].annotation
            args = getattr(ann, "__args__", (ann,))
            model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        else:
            return []
    return list(model.model_fields) if model is not None else []
