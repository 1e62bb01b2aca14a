"""``exfil-monitor replay``: alerts on standard output (json or table), the summary on
standard error, several inputs as one stream, and exit codes 0/1/2 without a traceback."""

from __future__ import annotations

import gc
import gzip
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

import monitor.replay
from monitor.cli import bundled_rules, main

REPO = Path(__file__).resolve().parent.parent
T0 = 1_795_773_600_000  # 2026-11-27T10:00:00Z
MIN = 60_000

RULES = """\
rules:
  - id: every-export
    severity: low
    match: {action: export}
    group_by: [actor]
  - id: bulk-read
    severity: high
    match: {action: select}
    group_by: [actor]
    window: 10m
    aggregate: {sum: rows}
    threshold: {gte: 100}
    annotations:
      summary: "{actor} read {value} rows in {window}"
"""

ALERT_KEYS = {
    "id", "rule", "severity", "description", "group", "value", "threshold", "window",
    "window_start", "window_end", "fired_at", "event_count", "summary", "labels",
    "annotations", "sample_event_ids",
}  # fmt: skip


def ev(minute: float, actor: str = "a", action: str = "select", rows: int = 60, **more: Any) -> dict[str, Any]:
    ts = T0 + int(minute * MIN)
    return {"ts": ts, "id": f"{actor}-{minute}", "actor": actor, "action": action, "rows": rows, **more}


def jsonl(events: list[Any]) -> bytes:
    return b"".join((e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n" for e in events)


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """replay tunes the garbage collector and configures structlog (onto this test's
    captured stderr) for the whole process; undo both for the tests that follow."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    structlog.reset_defaults()


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


Writer = Callable[..., Path]


@pytest.fixture
def write_events(tmp_path: Path) -> Writer:
    """``write_events(name, events, gz=False)``: a JSON-lines file (gzip when asked)."""

    def write(name: str, events: list[Any], *, gz: bool = False) -> Path:
        path = tmp_path / name
        data = jsonl(events)
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    return write


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def replay(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, rules_file: Path) -> Run:
    """``replay(*args, stdin=None, rules=...)`` through ``monitor.cli.main``: (exit, out, err)."""

    def run(*args: str, stdin: bytes | None = None, rules: Path | None = None) -> tuple[int, str, str]:
        # stdout_emitter's default stream is bound when monitor.replay is imported; point
        # it at this test's captured stdout (see test_in_process_replays_write_to_the_current_stdout)
        monkeypatch.setattr(monitor.replay.stdout_emitter, "__defaults__", (sys.stdout,))
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        argv = ["replay", "--rules", str(rules or rules_file), *args]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


def alerts_of(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def summary_of(err: str) -> dict[str, str]:
    """The summary's "name: value" lines (the last lines on standard error)."""
    lines = err.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("events read: "))
    out = {}
    for line in lines[start:]:
        key, _, value = line.strip().partition(": ")
        out[key] = value
    return out


BURST = [ev(0), ev(1, action="export"), ev(2), ev(3, actor="b"), ev(4, rows=1)]


# -- formats ----------------------------------------------------------------------------------


def test_json_alerts_and_summary(replay: Run, write_events: Writer) -> None:
    path = write_events("e.jsonl", [*BURST, b"{broken", b"[]", {"action": "select"}, ev(5, rows=1)])
    code, out, err = replay(str(path))
    assert code == 0
    alerts = alerts_of(out)
    assert [(a["rule"], a["group"], a["value"], a["fired_at"]) for a in alerts] == [
        ("every-export", {"actor": "a"}, 1, "2026-11-27T10:01:00.000Z"),
        ("bulk-read", {"actor": "a"}, 120, "2026-11-27T10:02:00.000Z"),
    ]
    assert set(alerts[1]) >= ALERT_KEYS
    assert alerts[1]["summary"] == "a read 120 rows in 10m"
    assert alerts[1]["sample_event_ids"] == ["a-0", "a-2"]
    summary = summary_of(err)
    assert summary["events read"].startswith("9 in ")
    assert summary["events used"] == "6"
    assert summary["invalid"] == "3 (invalid_json: 1, missing_time: 1, not_an_object: 1)"
    assert summary["late (dropped from windowed rules)"] == "0"
    assert summary["alerts"] == "2"
    assert (summary["bulk-read"], summary["every-export"]) == ("1", "1")


def test_table_format(replay: Run, write_events: Writer) -> None:
    code, out, err = replay("--format", "table", str(write_events("e.jsonl", BURST)))
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["FIRED", "AT", "SEVERITY", "RULE"]
    assert len(rows) == 2
    assert rows[0].split()[:4] == ["2026-11-27T10:01:00.000Z", "low", "every-export", "a"]
    assert rows[1].split()[:5] == ["2026-11-27T10:02:00.000Z", "high", "bulk-read", "a", "120"]
    assert rows[1].endswith("a read 120 rows in 10m")
    assert summary_of(err)["alerts"] == "2"


def test_resolutions_are_printed_with_the_flag(replay: Run, write_events: Writer) -> None:
    code, out, err = replay("--resolutions", str(write_events("e.jsonl", BURST)))
    assert code == 0
    records = alerts_of(out)
    assert [(r["type"], r["rule"], r["fired_at"], r.get("resolved_at")) for r in records] == [
        ("alert", "every-export", "2026-11-27T10:01:00.000Z", None),
        ("alert", "bulk-read", "2026-11-27T10:02:00.000Z", None),
        # at the end of the input every open episode resolves at last hold + resolve_after
        # (15m by default): every-export's at 1m; bulk-read's held (suppressed) at 4m too
        ("resolved", "every-export", "2026-11-27T10:01:00.000Z", "2026-11-27T10:16:00.000Z"),
        ("resolved", "bulk-read", "2026-11-27T10:02:00.000Z", "2026-11-27T10:19:00.000Z"),
    ]
    alert, resolved = records[1], records[3]
    assert {k: v for k, v in resolved.items() if k not in ("type", "resolved_at")} == {
        k: v for k, v in alert.items() if k != "type"
    }
    assert all(r["schema_version"] == 1 and "detected_at" not in r for r in records)
    assert summary_of(err)["resolutions"] == "2"


def test_without_the_flag_replay_prints_alerts_only(replay: Run, write_events: Writer) -> None:
    code, out, err = replay(str(write_events("e.jsonl", BURST)))
    assert code == 0
    assert [r["type"] for r in alerts_of(out)] == ["alert", "alert"]
    assert all(r["episode_start"] == r["fired_at"] for r in alerts_of(out))
    assert "resolutions" not in summary_of(err)


def test_a_re_alert_names_its_episode_and_a_later_burst_a_new_one(replay: Run, write_events: Writer) -> None:
    # bulk-read a: 120 rows at 2m (alert), 120 again at 12m (suppress 10m is over: a
    # re-alert, within 15m of the last hold: same episode), then 120 at 50m (a new one)
    events = [ev(0), ev(2), ev(10.5), ev(12), ev(48), ev(50)]
    code, out, _ = replay("--resolutions", str(write_events("e.jsonl", events)))
    assert code == 0
    got = [(r["type"], r["fired_at"][11:16], r["episode_start"][11:16], r.get("resolved_at", "")[11:16])
           for r in alerts_of(out)]  # fmt: skip
    assert got == [
        ("alert", "10:02", "10:02", ""),
        ("alert", "10:12", "10:02", ""),
        ("resolved", "10:02", "10:02", "10:27"),
        ("alert", "10:50", "10:50", ""),
        ("resolved", "10:50", "10:50", "11:05"),
    ]


def test_resolutions_in_the_table(replay: Run, write_events: Writer) -> None:
    code, out, _ = replay("--resolutions", "--format", "table", str(write_events("e.jsonl", BURST)))
    assert code == 0
    header, *rows = out.splitlines()
    assert header.startswith("FIRED AT") and len(rows) == 4
    assert rows[2].split()[:5] == ["2026-11-27T10:16:00.000Z", "low", "every-export", "a", "-"]
    assert rows[2].endswith("resolved: the episode since 2026-11-27T10:01:00.000Z is over")


def test_no_alerts_is_still_success(replay: Run, write_events: Writer) -> None:
    code, out, err = replay("--format", "table", str(write_events("quiet.jsonl", [ev(0, rows=1)])))
    assert (code, out) == (0, "")
    assert summary_of(err)["alerts"] == "0"


def test_empty_input(replay: Run, write_events: Writer) -> None:
    code, out, err = replay(str(write_events("empty.jsonl", [])))
    assert (code, out) == (0, "")
    assert summary_of(err)["events read"].startswith("0 in ")


# -- inputs ------------------------------------------------------------------------------------


def test_standard_input(replay: Run) -> None:
    code, out, err = replay("-", stdin=jsonl(BURST))
    assert code == 0
    assert [a["rule"] for a in alerts_of(out)] == ["every-export", "bulk-read"]
    assert summary_of(err)["events read"].startswith("5 in ")


def test_gzip_input(replay: Run, write_events: Writer) -> None:
    code, out, _ = replay(str(write_events("e.jsonl.gz", BURST, gz=True)))
    assert code == 0
    assert [a["rule"] for a in alerts_of(out)] == ["every-export", "bulk-read"]


def test_gzip_is_recognised_by_content_not_name(replay: Run, write_events: Writer) -> None:
    code, out, _ = replay(str(write_events("events.log", BURST, gz=True)))
    assert code == 0
    assert len(alerts_of(out)) == 2


def test_several_files_are_one_stream(replay: Run, write_events: Writer) -> None:
    first = write_events("1.jsonl", [ev(0), ev(1)])
    second = write_events("2.jsonl.gz", [ev(2, rows=1)], gz=True)
    third = write_events("3.jsonl", [ev(3)])
    code, out, err = replay(str(first), str(second), str(third))
    assert code == 0
    # 60 + 60 in the first file already make 120: the window runs on across files
    assert [(a["rule"], a["value"], a["fired_at"]) for a in alerts_of(out)] == [
        ("bulk-read", 120, "2026-11-27T10:01:00.000Z")
    ]
    assert summary_of(err)["events read"].startswith("4 in ")


@pytest.mark.parametrize(("order", "late"), [(("early", "later"), 0), (("later", "early"), 2)])
def test_files_are_read_in_the_order_given(
    replay: Run, write_events: Writer, order: tuple[str, str], late: int
) -> None:
    files = {
        "early": write_events("early.jsonl", [ev(0, rows=50), ev(1, rows=50)]),
        "later": write_events("later.jsonl", [ev(20, rows=10)]),
    }
    code, out, err = replay(*(str(files[name]) for name in order))
    assert code == 0
    summary = summary_of(err)
    if late:
        assert summary["late (dropped from windowed rules)"] == f"{late} (bulk-read: {late})"
        assert out == ""
    else:
        assert summary["late (dropped from windowed rules)"] == "0"
        assert [a["value"] for a in alerts_of(out)] == [100]


def test_allowed_lateness_option(replay: Run, write_events: Writer) -> None:
    path = write_events("e.jsonl", [ev(5, rows=50), ev(0, rows=50)])
    code, out, err = replay(str(path))
    assert summary_of(err)["late (dropped from windowed rules)"] == "1 (bulk-read: 1)"
    code, out, err = replay("--allowed-lateness", "10m", str(path))
    assert code == 0
    assert [a["value"] for a in alerts_of(out)] == [100]
    assert summary_of(err)["late (dropped from windowed rules)"] == "0"


def test_time_field_option(replay: Run, write_events: Writer) -> None:
    events = [{"meta": {"at": "2026-11-27T10:00:00Z"}, "actor": "a", "action": "export"}]
    code, out, err = replay("--time-field", "meta.at", str(write_events("e.jsonl", events)))
    assert code == 0
    assert [a["fired_at"] for a in alerts_of(out)] == ["2026-11-27T10:00:00.000Z"]
    code, out, err = replay(str(write_events("e.jsonl", events)))
    assert summary_of(err)["invalid"] == "1 (missing_time: 1)"


def test_future_events_are_counted_and_do_not_blind_the_replay(replay: Run, write_events: Writer) -> None:
    far = ev(60 * 24 * 365, action="export")
    path = write_events("e.jsonl", [ev(0, action="export"), far, ev(1, action="export", actor="b")])
    code, out, err = replay(str(path))
    assert code == 0
    assert [a["group"] for a in alerts_of(out)] == [{"actor": "a"}, {"actor": "b"}]
    summary = summary_of(err)
    assert summary["invalid"] == "1 (future_time: 1)"
    assert summary["events read"].startswith("3 in ")


def test_a_last_far_future_event_is_counted_as_read(replay: Run, write_events: Writer) -> None:
    far = ev(60 * 24 * 365, action="export")
    code, _, err = replay(str(write_events("e.jsonl", [ev(0), far])))
    assert code == 0
    summary = summary_of(err)
    assert summary["invalid"] == "1 (future_time: 1)"
    assert summary["events used"] == "1"
    assert summary["events read"].startswith("2 in "), "every line read is counted once"


def test_a_quiet_gap_is_not_the_future(replay: Run, write_events: Writer) -> None:
    path = write_events("e.jsonl", [ev(0, action="export"), ev(45, action="export"), ev(46, action="export")])
    code, out, err = replay(str(path))
    assert code == 0
    assert len(alerts_of(out)) == 3
    assert summary_of(err)["invalid"] == "0"


# -- exit codes and errors --------------------------------------------------------------------


def test_unreadable_rules_exit_1(replay: Run, write_events: Writer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: r\n    severity: urgent\n")
    code, out, err = replay(str(write_events("e.jsonl", BURST)), rules=bad)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{bad}:3:15: rule r: severity must be one of info, low, medium, high, critical, got 'urgent'",
        "1 problem(s); no rules loaded",
    ]


def test_missing_rules_exit_1(replay: Run, write_events: Writer, tmp_path: Path) -> None:
    code, out, err = replay(str(write_events("e.jsonl", BURST)), rules=tmp_path / "none")
    assert (code, out) == (1, "")
    assert "no such file or folder" in err


def test_a_missing_input_file_exits_1_before_any_output(
    replay: Run, write_events: Writer, tmp_path: Path
) -> None:
    good = write_events("e.jsonl", BURST)
    code, out, err = replay(str(good), str(tmp_path / "missing.jsonl"))
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"cannot read {tmp_path / 'missing.jsonl'}: No such file or directory"]


def test_a_folder_as_input_exits_1(replay: Run, tmp_path: Path) -> None:
    code, out, err = replay(str(tmp_path))
    assert (code, out) == (1, "")
    assert err.startswith(f"cannot read {tmp_path}: ")


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_gzip_exits_1(replay: Run, tmp_path: Path, damage: str) -> None:
    data = gzip.compress(jsonl([ev(k / 100, rows=k) for k in range(3000)]))
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        raw = bytearray(data)
        for k in range(100, 160):
            raw[k] ^= 0xFF
        data = bytes(raw)
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(data)
    code, _, err = replay(str(path))
    assert code == 1
    assert err.splitlines()[-1].startswith("cannot read input: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: FILE"),
        (("--format", "xml", "e.jsonl"), "argument --format: invalid choice: 'xml'"),
        (("--allowed-lateness", "10", "e.jsonl"), "argument --allowed-lateness: expected a duration like 30s"),
        (("--allowed-lateness", "1h30m", "e.jsonl"), "argument --allowed-lateness: expected a duration"),
        (("--max-future-skew=-5m", "e.jsonl"), "argument --max-future-skew: expected a duration"),
        (("--max-groups", "0", "e.jsonl"), "argument --max-groups: expected a whole number above zero"),
        (("--no-such-option", "e.jsonl"), "unrecognized arguments: --no-such-option"),
    ],
)
def test_usage_errors_exit_2(replay: Run, args: tuple[str, ...], message: str) -> None:
    code, out, err = replay(*args)
    assert (code, out) == (2, "")
    assert err.startswith("usage: exfil-monitor")
    assert message in err


def test_without_rules_the_bundled_pack_is_used(
    write_events: Writer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXFIL_MONITOR_RULES", raising=False)
    assert bundled_rules() == REPO / "rules"
    path = write_events("e.jsonl", [ev(m, rows=5000) for m in range(5)])
    assert main(["replay", "--rules", str(REPO / "rules"), str(path)]) == 0
    explicit = capsys.readouterr()
    assert main(["replay", str(path)]) == 0
    default = capsys.readouterr()
    assert default.out == explicit.out
    summary = [line for line in default.err.splitlines() if not line.startswith("events read")]
    assert summary == [line for line in explicit.err.splitlines() if not line.startswith("events read")]
    assert "events used: 5" in default.err


def test_in_process_replays_write_to_the_current_stdout(
    rules_file: Path, write_events: Writer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_events("e.jsonl", BURST)
    current = io.StringIO()
    monkeypatch.setattr(sys, "stdout", current)  # replaced after monitor.replay was imported
    assert main(["replay", "--rules", str(rules_file), str(path)]) == 0
    assert len(alerts_of(current.getvalue())) == 2


# -- as a process ------------------------------------------------------------------------------


def run_process(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=stdin, capture_output=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip


def test_replay_as_a_process(rules_file: Path, write_events: Writer) -> None:
    plain = write_events("1.jsonl", BURST[:2])
    done = run_process(
        "replay", "--rules", str(rules_file), str(plain), "-", stdin=gzip.compress(jsonl(BURST[2:]))
    )
    assert done.returncode == 0, done.stderr.decode()
    out, err = done.stdout.decode(), done.stderr.decode()
    assert [a["rule"] for a in alerts_of(out)] == ["every-export", "bulk-read"]
    summary = summary_of(err)
    assert summary["events read"].startswith("5 in ")
    assert summary["alerts"] == "2"
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--format", "yaml", "x.jsonl"), 2),
        (("/nonexistent/x.jsonl",), 1),
    ],
)
def test_replay_process_errors(rules_file: Path, args: tuple[str, ...], code: int) -> None:
    done = run_process("replay", "--rules", str(rules_file), *args)
    assert done.returncode == code
    assert done.stdout == b""
    assert b"Traceback" not in done.stderr
