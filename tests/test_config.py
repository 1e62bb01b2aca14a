"""The daemon's config: every problem at once with its position, env overrides, secrets."""

from __future__ import annotations

import asyncio
import io
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import Daemon
from monitor.cli import main
from monitor.config import (
    ConfigError,
    FileOutputConfig,
    KafkaOutputConfig,
    StdoutOutputConfig,
    load_config,
)
from monitor.outputs import OutputContext, build_outputs
from monitor.outputs.file import FileOutput
from monitor.outputs.kafka import KafkaOutput
from monitor.outputs.stdout import StdoutOutput

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
kafka:
  bootstrap_servers: 127.0.0.1:9092
  topics: [events]
rules:
  path: rules
"""


def write(tmp_path: Path, text: str, name: str = "monitor.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return [str(p) for p in info.value.problems]


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, MINIMAL), {})
    assert c.kafka.bootstrap_servers == ["127.0.0.1:9092"]
    assert c.kafka.group_id == "exfil-monitor"
    assert c.kafka.auto_offset_reset == "latest"
    assert c.kafka.security_protocol == "PLAINTEXT"
    assert c.kafka.dead_letter_topic is None
    assert c.engine.allowed_lateness == 60_000
    assert c.engine.max_future_skew == 300_000
    assert c.http.listen == "127.0.0.1:8080"
    assert c.log.format == "json"
    assert [o.type for o in c.outputs] == ["stdout"]
    # Relative paths are relative to the config file, not the working directory.
    assert c.rules.path == tmp_path / "rules"


def test_the_example_config_in_deploy_is_valid() -> None:
    c = load_config(REPO / "deploy" / "monitor.example.yaml", {})
    assert c.rules.path == REPO / "rules"
    assert [o.type for o in c.outputs] == ["stdout", "file", "kafka"]


def test_every_problem_is_reported_at_once_with_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        kafka:
          bootstrap_servers: 127.0.0.1:9092
          topics: [events]
          dead_letter_topc: dlq
          auto_offset_reset: earlest
          max_batch: lots
        rules:
          paht: ./rules
        engine:
          allowed_lateness: 10 minutes
        colour: blue
        """)  # fmt: skip
    found = problems(path)
    assert found == [
        f"{path}:4:3: kafka: unknown key 'dead_letter_topc' (did you mean 'dead_letter_topic'?)",
        f"{path}:5:22: kafka.auto_offset_reset: Input should be 'earliest' or 'latest'",
        f"{path}:6:14: kafka.max_batch: Input should be a valid integer, unable to parse string as an integer",
        f"{path}:7:1: rules: missing required key 'path'",
        f"{path}:8:3: rules: unknown key 'paht' (did you mean 'path'?)",
        f"{path}:10:21: engine.allowed_lateness: expected a duration like 30s, 10m, 1h or 2d (units ms, s, m, h, d), got '10 minutes'",
        f"{path}:11:1: unknown key 'colour'",
    ]


def test_yaml_syntax_errors_and_duplicate_keys_have_positions(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "kafka: [unclosed\n"))
    assert found.startswith(f"{tmp_path / 'monitor.yaml'}:2:1: YAML syntax error: ")
    dup = write(tmp_path, MINIMAL + "rules:\n  path: other\n", "dup.yaml")
    assert problems(dup) == [f"{dup}:6:1: duplicate key 'rules' (first at line 4)"]


def test_a_missing_file_is_one_problem(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}:1:1: cannot read: No such file or directory"]


def test_cross_field_rules(tmp_path: Path) -> None:
    both = write(tmp_path, MINIMAL.replace("topics: [events]", "topics: [events]\n  topic_pattern: ev.*"))
    assert problems(both) == [f"{both}:2:3: kafka: give exactly one of topics (a list of names) or topic_pattern"]
    sasl = write(tmp_path, MINIMAL.replace("topics:", "security_protocol: SASL_SSL\n  topics:"), "sasl.yaml")
    assert problems(sasl) == [f"{sasl}:2:3: kafka: security_protocol SASL_SSL needs a sasl section"]


def test_outputs_are_selected_by_type(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + textwrap.dedent("""\
        outputs:
          - type: stdout
          - type: file
            path: out/alerts.jsonl
          - type: kafka
            topic: alerts
          - type: kafka
            name: other-cluster
            topic: alerts
            bootstrap_servers: a:9092,b:9092
        """))  # fmt: skip
    c = load_config(path, {})
    assert [type(o) for o in c.outputs] == [StdoutOutputConfig, FileOutputConfig, KafkaOutputConfig, KafkaOutputConfig]
    file_out = c.outputs[1]
    assert isinstance(file_out, FileOutputConfig) and file_out.path == tmp_path / "out" / "alerts.jsonl"
    assert [o.label for o in c.outputs] == ["stdout", "file", "kafka", "other-cluster"]
    other = c.outputs[3]
    assert isinstance(other, KafkaOutputConfig) and other.bootstrap_servers == ["a:9092", "b:9092"]

    built = build_outputs(c.outputs, OutputContext(kafka=c.kafka))
    assert [type(o) for o in built] == [StdoutOutput, FileOutput, KafkaOutput, KafkaOutput]
    assert isinstance(built[3], KafkaOutput)
    assert built[3].client_options["bootstrap_servers"] == ["a:9092", "b:9092"]
    assert isinstance(built[2], KafkaOutput)
    assert built[2].client_options["bootstrap_servers"] == ["127.0.0.1:9092"]


def test_output_problems_point_into_the_list(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + textwrap.dedent("""\
        outputs:
          - type: pager
          - type: file
          - type: kafka
            topic: alerts
            bootstrap_server: x:9092
          - type: stdout
        """))  # fmt: skip
    assert problems(path) == [
        f"{path}:7:5: outputs.0: unknown output type 'pager' (known: 'stdout', 'file', 'kafka', 'alertmanager', "
        "'pagerduty', 'slack', 'webhook')",
        f"{path}:8:5: outputs.1: missing required key 'path'",
        f"{path}:11:5: outputs.2: unknown key 'bootstrap_server' (did you mean 'bootstrap_servers'?)",
    ]
    dupes = write(tmp_path, MINIMAL + "outputs: [{type: stdout}, {type: stdout}]\n", "dupes.yaml")
    assert problems(dupes) == [
        f"{dupes}:1:1: outputs: give each output of a type a distinct name: stdout"
    ]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "outputs:\n  - type: kafka\n    topic: alerts\n")
    env = {
        "EXFIL_MONITOR_KAFKA__BOOTSTRAP_SERVERS": "b1:9093, b2:9093",
        "EXFIL_MONITOR_KAFKA__MAX_BATCH": "250",
        "EXFIL_MONITOR_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "EXFIL_MONITOR_KAFKA__SASL__USERNAME": "monitor",
        "EXFIL_MONITOR_KAFKA__SASL__PASSWORD": "hunter2-secret",
        "EXFIL_MONITOR_ENGINE__ALLOWED_LATENESS": "2m",
        "EXFIL_MONITOR_OUTPUTS__0__TOPIC": "security-alerts",
        "UNRELATED": "ignored",
        "EXFIL_MONITOR_RULES": "/opt/exfil-monitor/rules",  # demo's rule pack: not an override
    }
    c = load_config(path, env)
    assert c.kafka.bootstrap_servers == ["b1:9093", "b2:9093"]
    assert c.kafka.max_batch == 250
    assert c.kafka.sasl is not None and c.kafka.sasl.username == "monitor"
    assert c.kafka.sasl.password.get_secret_value() == "hunter2-secret"
    assert c.engine.allowed_lateness == 120_000
    assert isinstance(c.outputs[0], KafkaOutputConfig) and c.outputs[0].topic == "security-alerts"
    opts = c.kafka.client_options()
    assert opts["sasl_mechanism"] == "PLAIN" and opts["sasl_plain_password"] == "hunter2-secret"


def test_paging_secrets_from_files_or_the_environment_never_shown(tmp_path: Path) -> None:
    """Each secret from its ``*_file`` (a mounted secret), or from the environment, which
    wins; a wrong one is refused without quoting it."""
    (tmp_path / "pd").write_text("R0123456789abcdef0123456789abcde\n")
    (tmp_path / "hook").write_text("https://hooks.slack.com/services/T0/B0/SLACKSECRET\n")
    (tmp_path / "hmac").write_text("HMACSECRET\n")
    path = write(tmp_path, MINIMAL + textwrap.dedent(f"""\
        outputs:
          - type: pagerduty
            routing_key_file: {tmp_path / "pd"}
            match: {{severity: [critical, high]}}
          - type: slack
            webhook_url_file: {tmp_path / "hook"}
          - type: webhook
            url: https://soar.example/hooks/exfil
            secret_file: {tmp_path / "hmac"}
        """))  # fmt: skip
    c = load_config(path, {"EXFIL_MONITOR_OUTPUTS__0__ROUTING_KEY": "ENVSECRET0123456789abcdef0123456"})
    pd, sl, wh = c.outputs
    assert pd.routing_key.get_secret_value() == "ENVSECRET0123456789abcdef0123456"  # type: ignore[union-attr]
    assert sl.webhook_url.get_secret_value().endswith("SLACKSECRET")  # type: ignore[union-attr]
    assert wh.secret.get_secret_value() == "HMACSECRET"  # type: ignore[union-attr]
    outputs = build_outputs(c.outputs, OutputContext(kafka=c.kafka))
    assert [o.name for o in outputs] == ["pagerduty", "slack", "webhook"]
    shown = repr(c) + str(c.model_dump()) + repr(outputs)
    assert not any(s in shown for s in ("ENVSECRET", "SLACKSECRET", "HMACSECRET", "R0123456789"))
    (tmp_path / "hook").write_text("hooks.slack.com/services/T0/B0/SLACKSECRET\n")
    [problem] = problems(path)
    assert "webhook_url: not an http(s) URL" in problem and "SLACKSECRET" not in problem


def test_environment_problems_name_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    found = problems(path, {
        "EXFIL_MONITOR_KAFKA__MAX_BATCH": "many",
        "EXFIL_MONITOR_KAFKA__GRUOP_ID": "x",
        "EXFIL_MONITOR_OUTPUTS__3__TOPIC": "x",
    })  # fmt: skip
    assert found == [
        "$EXFIL_MONITOR_OUTPUTS__3__TOPIC: outputs has no item 3",
        "$EXFIL_MONITOR_KAFKA__GRUOP_ID: kafka: unknown key 'gruop_id' (did you mean 'group_id'?)",
        "$EXFIL_MONITOR_KAFKA__MAX_BATCH: kafka.max_batch: Input should be a valid integer, unable to parse string as an integer",
    ]


SASL = MINIMAL.replace("topics:", "security_protocol: SASL_PLAINTEXT\n  topics:") + textwrap.dedent("""\
    outputs: [{type: stdout}]
    http: {listen: "127.0.0.1:0"}
    """)  # fmt: skip


def test_secrets_are_not_in_repr_dumps_or_errors(tmp_path: Path) -> None:
    secret = "correct-horse-battery-staple"
    path = write(tmp_path, SASL.replace("kafka:", f"kafka:\n  sasl: {{username: u, password: {secret}}}"))
    c = load_config(path, {})
    for text in (repr(c), str(c), c.model_dump_json(), repr(c.kafka.sasl)):
        assert secret not in text
    assert "**********" in repr(c.kafka.sasl)
    # A wrong type for the secret is reported without echoing it.
    bad = write(tmp_path, SASL.replace("kafka:", "kafka:\n  sasl: {username: u, password: [" + secret + "]}"), "bad.yaml")
    assert not any(secret in p for p in problems(bad))


async def test_secrets_are_not_logged(tmp_path: Path) -> None:
    """A daemon that cannot reach its broker logs the error, never the password (the
    checkpoint store is the first to try the broker)."""
    secret = "correct-horse-battery-staple"
    path = write(tmp_path, SASL.replace("127.0.0.1:9092", "127.0.0.1:1"))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - id: r\n    severity: low\n    match: {action: select}\n"
    )
    c = load_config(path, {"EXFIL_MONITOR_KAFKA__SASL__USERNAME": "u", "EXFIL_MONITOR_KAFKA__SASL__PASSWORD": secret,
                           "EXFIL_MONITOR_STATE__DIR": str(tmp_path / "state")})
    err, out = io.StringIO(), io.StringIO()
    daemon = Daemon(c, registry=CollectorRegistry(), stdout=out, stderr=err)
    task = asyncio.create_task(daemon.run())
    for _ in range(100):
        if "checkpoint_store_unavailable" in err.getvalue():
            break
        await asyncio.sleep(0.05)
    daemon.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
    logged = err.getvalue()
    assert '"error":"broker unreachable: ' in logged
    assert secret not in logged


def test_run_prints_config_problems_and_exits_1_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, MINIMAL.replace("topics:", "topcs:"))
    assert main(["run", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3:3: kafka: unknown key 'topcs' (did you mean 'topics'?)" in err
    assert "Traceback" not in err
    assert err.strip().endswith(f"problem(s) in {path}")


def codes(path: Path, environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(code, text) of every problem: config problems share the rule packs' Problem."""
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return [(p.code, str(p)) for p in info.value.problems]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (MINIMAL.replace("topics:", "topcs:"), "E-UNKNOWN-KEY"),
        (MINIMAL.replace("rules:\n  path: rules\n", "rules: {}\n"), "E-MISSING-KEY"),
        (MINIMAL + "engine: {max_groups_per_rule: many}\n", "E-BAD-TYPE"),
        (MINIMAL + "engine: {allowed_lateness: 10}\n", "E-BAD-DURATION"),
        (MINIMAL + "kafka_extra: 1\n", "E-UNKNOWN-KEY"),
        (MINIMAL + "outputs: [{type: pager}]\n", "E-UNKNOWN-TYPE"),
        (MINIMAL + "outputs: [{name: x}]\n", "E-MISSING-KEY"),
        (MINIMAL.replace("topics: [events]", "topics: [events]\n  topic_pattern: 'e.*'"), "E-BAD-VALUE"),
        ("kafka: [unclosed\n", "E-YAML-SYNTAX"),
        ("rules: {}\nrules: {}\n", "E-DUPLICATE-KEY"),
        ("- a\n", "E-BAD-TYPE"),
    ],
)
def test_every_config_problem_has_its_code(tmp_path: Path, text: str, code: str) -> None:
    found = codes(write(tmp_path, text))
    assert [c for c, _ in found] == [code], found


def test_unreadable_and_environment_problems_have_codes(tmp_path: Path) -> None:
    assert [c for c, _ in codes(tmp_path / "nope.yaml")] == ["E-CANNOT-READ"]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("# caf\xe9\n".encode("latin-1"))
    assert [c for c, _ in codes(latin)] == ["E-NOT-UTF8"]
    path = write(tmp_path, MINIMAL)
    assert codes(path, {"EXFIL_MONITOR_KAFKA__": "x", "EXFIL_MONITOR_KAFKA__GRUOP_ID": "g"}) == [
        ("E-BAD-ENV", "$EXFIL_MONITOR_KAFKA__: malformed name (levels are joined by a double underscore)"),
        ("E-UNKNOWN-KEY", "$EXFIL_MONITOR_KAFKA__GRUOP_ID: kafka: unknown key 'gruop_id' (did you mean 'group_id'?)"),
    ]


def test_checkpoints_default_to_a_compacted_topic_named_after_the_group(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, MINIMAL), {})
    assert c.kafka is not None
    assert c.checkpoint.store_kind(c.kafka) == "kafka"
    assert c.checkpoint.topic_for(c.kafka) == "exfil-monitor.checkpoints"
    assert (c.checkpoint.interval, c.checkpoint.on_corrupt) == (10_000, "stop")
    assert c.kafka.key_field == "actor.id"
    mine = load_config(write(tmp_path, MINIMAL + "checkpoint: {store: directory, interval: 2s, on_corrupt: start_empty}\n"), {})
    assert mine.checkpoint.store_kind(mine.kafka) == "directory" and mine.checkpoint.interval == 2_000


def test_checkpoint_problems_say_what_and_where(tmp_path: Path) -> None:
    found = problems(write(tmp_path, MINIMAL + "checkpoint:\n  intervall: 1s\n  on_corrupt: ignore\n  interval: 0s\n"))
    assert any(":7:3:" in p and "intervall" in p for p in found), found
    assert any(":8:" in p and "on_corrupt" in p for p in found), found
    assert any(":9:" in p and "interval" in p for p in found), found
    files = "sources:\n  - {type: file, path: '/var/log/*.csv'}\nrules:\n  path: rules\ncheckpoint: {store: kafka}\n"
    [problem] = problems(write(tmp_path, files))
    assert "checkpoint" in problem and "store: kafka" in problem


def test_a_retired_commit_interval_names_its_replacement(tmp_path: Path) -> None:
    [problem] = problems(write(tmp_path, MINIMAL.replace("topics: [events]", "topics: [events]\n  commit_interval: 1s")))
    assert ":4:3:" in problem and "replaced by checkpoint.interval" in problem


def test_repartitioning_defaults_to_an_internal_topic_named_after_the_group(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, MINIMAL), {})
    assert c.kafka is not None
    assert (c.kafka.keyed, c.kafka.repartition_topic, c.kafka.repartition.partitions) == (True, "exfil-monitor.repartition", None)
    mine = MINIMAL.replace("topics: [events]", "topics: [events]\n  keyed: false\n  repartition: {topic: r, partitions: 12}")
    k = load_config(write(tmp_path, mine), {}).kafka
    assert k is not None and (k.keyed, k.repartition_topic, k.repartition.partitions) == (False, "r", 12)


@pytest.mark.parametrize(("kafka", "said"), [
    ("  topic_pattern: 'exfil-monitor.*'", "consumes the internal topic 'exfil-monitor.repartition'"),
    ("  topics: [events, exfil-monitor.checkpoints]", "consumes the checkpoint topic"),
    ("  topics: [events]\n  dead_letter_topic: exfil-monitor.repartition", "is the internal topic"),
    ("  topics: [events]\n  dead_letter_topic: exfil-monitor.checkpoints", "is the checkpoint topic"),
    ("  topics: [events]\n  repartition: {replication_factor: 0}", "a number of replicas"),
])  # fmt: skip
def test_the_daemons_own_topics_are_never_read_as_events_or_written_to(tmp_path: Path, kafka: str, said: str) -> None:
    text = "kafka:\n  bootstrap_servers: 127.0.0.1:9092\n" + kafka + "\nrules:\n  path: rules\n"
    found = problems(write(tmp_path, text))
    assert any(said in p for p in found), found
    alerts = MINIMAL + "outputs:\n  - {type: kafka, topic: exfil-monitor.repartition}\n"
    assert any("one of the daemon's own topics" in p for p in problems(write(tmp_path, alerts)))
