"""The ``exfil-monitor`` command: a thin layer of argument parsing over the library.

Exit codes: 0 done (whatever fired), 1 unreadable rules or input, or failing rule tests,
2 usage errors (argparse's own). No command shows a traceback for a user's mistake.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import __version__, defaults
from monitor.decode import Decoder
from monitor.engine import Engine, EngineOptions
from monitor.rules.errors import RuleLoadError
from monitor.rules.loader import RuleSet, load_rules
from monitor.runtime import tune_gc
from monitor.telemetry import Metrics, RateLimiter, Telemetry, configure_logging
from monitor.timeparse import parse_duration

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.inputs import Format
    from monitor.sources.files import FileSource


def bundled_rules() -> Path:
    """The rule pack shipped with the monitor: $EXFIL_MONITOR_RULES, or the package data.

    ``rules/`` of the repository is installed as the package ``monitor.bundled_rules``
    (setup.py), so a wheel installed anywhere and an editable checkout resolve it alike.
    """
    env = os.environ.get("EXFIL_MONITOR_RULES")
    if env:
        return Path(env)
    try:
        pack = importlib.resources.files("monitor.bundled_rules")
    except ModuleNotFoundError:  # an editable install made before setup.py mapped rules/
        return Path(__file__).resolve().parent.parent / "rules"
    if not isinstance(pack, Path):  # installed zipped: the loader reads folders on disk
        raise RuntimeError(f"the bundled rule pack is not a folder on disk: {pack}")
    return pack


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number above zero, got {text!r}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = 0.0
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above zero, got {text!r}")
    return x


def _start_time(text: str) -> str:
    from monitor.simulate import parse_start

    try:
        parse_start(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time like 2026-11-27T00:00:00Z, got {text!r}"
        ) from None
    return text


class UsageError(Exception):
    """A mistake in the arguments found only when acting on them (an unwritable -o):
    reported like argparse's own, with the command's usage and exit 2."""


def _load(path: str | Path) -> RuleSet | None:
    try:
        return load_rules(path)
    except RuleLoadError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); no rules loaded", file=sys.stderr)
        return None


def _input_format(name: str, ruleset: RuleSet) -> Format | None:
    """The built-in or rule-set format ``name``; None (said on stderr) when there is none."""
    from monitor.inputs import UnknownFormat, get_format

    try:
        return get_format(name, ruleset.inputs)
    except UnknownFormat as exc:
        print(f"--input-format: {exc}", file=sys.stderr)
        return None


def _engine_args(p: argparse.ArgumentParser) -> None:
    d = defaults
    p.add_argument("--time-field", default=d.TIME_FIELD, help=f"dotted path of the event time (default: {d.TIME_FIELD})")
    p.add_argument("--allowed-lateness", type=_duration, default=d.ALLOWED_LATENESS_MS, metavar="D",
                   help=f"how much older than its group's newest event an event may be (default: {d.duration_text(d.ALLOWED_LATENESS_MS)})")  # fmt: skip
    p.add_argument("--max-future-skew", type=_duration, default=d.MAX_FUTURE_SKEW_MS, metavar="D",
                   help=f"an event further ahead of the newest event time is skipped unless the next event confirms the jump; 0s turns the check off (default: {d.duration_text(d.MAX_FUTURE_SKEW_MS)})")  # fmt: skip
    p.add_argument("--max-groups", type=_positive_int, default=d.MAX_GROUPS_PER_RULE, metavar="N",
                   help=f"window groups kept per rule before the least recently active is evicted (default: {d.MAX_GROUPS_PER_RULE})")  # fmt: skip
    p.add_argument("--distinct-exact-limit", type=_positive_int, default=d.DISTINCT_EXACT_LIMIT, metavar="N",
                   help=f"values a group keeps exactly for distinct before switching to HyperLogLog (default: {d.DISTINCT_EXACT_LIMIT})")  # fmt: skip


def _engine_options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        allowed_lateness_ms=args.allowed_lateness,
        max_groups_per_rule=args.max_groups,
        distinct_exact_limit=args.distinct_exact_limit,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exfil-monitor",
        description="Catches customer-data exfiltration in an online shop while it happens.",
    )
    parser.add_argument("--version", action="version", version=f"exfil-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate a rule file or folder (or a config) and report every problem")
    p.add_argument("path", nargs="?", help="a rule file or a folder of *.yaml rule files")
    p.add_argument("--config", metavar="FILE", help="also (or only) validate the daemon's YAML config")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text lines (default) or one JSON document with codes and a summary")  # fmt: skip
    p.add_argument("--codes", action="store_true", help="text lines show each problem's code (see docs/problems.md)")
    p.add_argument("--strict", action="store_true", help="warnings fail the check too (exit 1)")
    p.add_argument("--explain", action="store_true",
                   help="also print the Python loop generated for the rules, as the engine runs it")  # fmt: skip
    p.set_defaults(usage_error=p.error)

    p = sub.add_parser("replay", help="run recorded events (JSON lines) through the rules")
    p.add_argument("--rules", default=None, help="rule file or folder (default: the bundled pack)")
    p.add_argument("--format", choices=("json", "table"), default="json", help="alert format (default: json)")
    p.add_argument("--resolutions", action="store_true",
                   help="also print the end of each episode ({\"type\": \"resolved\", ...}) once final; "
                   "at the end of the input every open episode resolves at its resolved_at, "
                   "even past the last event, as an idle daemon would resolve it")  # fmt: skip
    p.add_argument("--input-format", default="jsonl", metavar="F",
                   help="how records become events: jsonl (default), pgaudit, mariadb-audit, mysql-audit, "
                   "cloudtrail, ocsf, or an input the rule files define (see docs/inputs.md)")  # fmt: skip
    p.add_argument("--warmup", action="append", default=[], metavar="FILE",
                   help="read FILE first to train the rules' state (windows, suppressions) without printing "
                   "the alerts it raises; repeat for several files, in time order")  # fmt: skip
    _engine_args(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines files, .gz too; - for standard input")

    p = sub.add_parser("explain", help="the events that were in one alert's window, with the running aggregate")
    p.add_argument("alert_id", metavar="ALERT_ID", help="the alert's id, as replay or the daemon printed it")
    p.add_argument("--rules", default=None, help="rule file or folder (default: the bundled pack)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="a table for people (default) or JSON")
    p.add_argument("--input-format", default="jsonl", metavar="F", help="as for replay (default: jsonl)")
    _engine_args(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="the input the alert came from (read twice: no -)")
    p.set_defaults(parser=p)

    p = sub.add_parser("test", help="run the rule tests (*.test.yaml) of a rule pack")
    p.add_argument("path", help="a rule folder (its tests are found inside) or one *.test.yaml file")

    p = sub.add_parser("simulate", help="generate a shop's data-access traffic as JSON lines")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", type=_start_time, default="2026-11-27T00:00:00Z", help="RFC 3339 start time")
    p.add_argument("--hours", type=_positive_float, default=24.0, help="span to simulate (default: 24)")
    p.add_argument("--events", type=_positive_int, default=None, help="background events (default: a shop's day)")
    p.add_argument("--no-incidents", action="store_true", help="background traffic only")
    p.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    p.add_argument("--to-kafka", metavar="BOOTSTRAP", help="produce to Kafka instead (host:port), keyed by actor.id")
    p.add_argument("--topic", default="data-access-events", help="topic for --to-kafka (default: data-access-events)")
    p.add_argument("--rate", type=_positive_float, default=None, metavar="N",
                   help="with --to-kafka: events per second, steadily (default: as fast as the broker takes them)")  # fmt: skip
    p.set_defaults(parser=p)

    p = sub.add_parser("warmup", help="learn the daemon's first checkpoints from a shop's recent logs")
    p.add_argument("--config", required=True, help="the daemon's configuration file")
    p.add_argument("--partitioner", choices=defaults.PARTITIONERS, default="murmur2",
                   help="how the producers place keys: murmur2 (Java client, aiokafka; default) or crc32 "
                   "(librdkafka)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace checkpoints the consumer group has already")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines events, in time order, .gz too")

    p = sub.add_parser("run", help="run the daemon: consume events from Kafka and alert")
    p.add_argument("--config", required=True, metavar="FILE", help="the daemon's YAML config (see docs/configuration.md)")

    p = sub.add_parser("demo", help="simulate a day with a Target-style breach and show what fires")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rules", default=None, help="rule folder (default: the bundled pack)")
    return parser


def cmd_check(args: argparse.Namespace) -> int:
    """Errors exit 1; warnings print but exit 0 unless ``--strict``."""
    import json

    from monitor.config import ConfigError, config_warnings, load_config
    from monitor.problems import Problem, errors, warnings

    if args.path is None and args.config is None:
        args.usage_error("give a rule file or folder, --config FILE, or both")
    if args.explain and args.path is None:
        args.usage_error("--explain needs a rule file or folder")
    explained: str | None = None
    checked: list[tuple[str, list[Problem], str]] = []  # (what, problems, summary when it loads)
    summary: dict[str, object] = {}
    if args.config is not None:
        try:
            config = load_config(args.config)
            checked.append((args.config, config_warnings(config, args.config), f"ok: config {args.config}"))
        except ConfigError as exc:
            checked.append((args.config, exc.problems, ""))
    if args.path is not None:
        try:
            rs = load_rules(args.path)
        except RuleLoadError as exc:
            checked.append((args.path, exc.problems, ""))
        else:
            counts = {"rules": len(rs.rules), "enabled": len(rs.enabled), "files": len(rs.files),
                      "lists": len(rs.lists), "schedules": len(rs.schedules)}  # fmt: skip
            summary.update(counts)
            line = (
                f"ok: {counts['rules']} rules ({counts['enabled']} enabled) in {counts['files']} file(s), "
                f"{counts['lists']} list(s), {counts['schedules']} schedule(s)"
            )
            checked.append((args.path, list(rs.warnings), line))
            if args.explain:
                from monitor.engine import Engine
                from monitor.engine.dispatch import filename

                explained = f"# {filename(rs.digest)}\n{Engine(rs).source}"
    found = [p for _, ps, _ in checked for p in ps]
    n_errors, n_warnings = len(errors(found)), len(warnings(found))
    failed = n_errors > 0 or (args.strict and n_warnings > 0)
    if args.format == "json":
        summary.update(errors=n_errors, warnings=n_warnings, ok=not failed)
        doc: dict[str, object] = {"problems": [p.as_json() for p in found], "summary": summary}
        if explained is not None:
            doc["explain"] = explained
        print(json.dumps(doc, indent=2))
        return 1 if failed else 0
    for what, ps, ok_line in checked:
        for p in ps:
            print(p.format(codes=args.codes))
        if errors(ps):
            print(f"{len(ps)} problem(s) in {what}")
        elif args.strict and ps:
            print(f"{len(ps)} warning(s) in {what}; --strict fails on warnings")
        else:
            print(ok_line + (f"; {len(ps)} warning(s)" if ps else ""))
    if explained is not None:
        print(explained, end="")
    return 1 if failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.replay import Printer, Progress, run_replay
    from monitor.sources.files import FileSource

    ruleset = _load(args.rules or bundled_rules())
    if ruleset is None:
        return 1
    from monitor.inputs.reader import MappedFileSource

    fmt = _input_format(args.input_format, ruleset)
    if fmt is None:
        return 2
    files, warm_files = FileSource(args.files), FileSource(args.warmup)
    if _unreadable(warm_files, files):
        return 1
    source: FileSource | MappedFileSource = files
    warmup: FileSource | MappedFileSource | None = warm_files if args.warmup else None
    if args.input_format != "jsonl":
        source = MappedFileSource(args.files, fmt)
        warmup = MappedFileSource(args.warmup, fmt) if args.warmup else None
    log = configure_logging("console", "warning", sys.stderr)
    telemetry = Telemetry(Metrics(), log, limiter=RateLimiter(per_minute=1, clock=lambda: 0.0))
    decoder = Decoder(time_field=args.time_field, max_future_skew_ms=args.max_future_skew)
    engine = Engine(ruleset, _engine_options(args))
    tune_gc()
    progress = Progress(sys.stderr, enabled=sys.stderr.isatty(), source=files if source is files else None)
    try:
        printer = Printer(args.format)
        resolved = printer.resolution if args.resolutions else None
        stats = run_replay(source, decoder, engine, printer.alert, telemetry, progress, resolved, warmup)
    except OSError as exc:
        progress.done()
        print(f"cannot read input: {exc}", file=sys.stderr)
        return 1
    except EOFError as exc:  # a truncated .gz
        progress.done()
        print(f"cannot read input: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    for line in stats.summary_lines():
        print(line, file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Exit 0 with the explanation, 1 when the alert does not fire from this input."""
    import json

    from monitor.explain import explain, find, write_table
    from monitor.inputs.reader import MappedFileSource
    from monitor.sources.files import Batch, FileSource

    if "-" in args.files:
        raise UsageError("explain reads its input twice: give files, not - (standard input)")
    ruleset = _load(args.rules or bundled_rules())
    if ruleset is None:
        return 1
    fmt = _input_format(args.input_format, ruleset)
    if fmt is None:
        return 2
    if _unreadable(FileSource(args.files)):
        return 1

    def source() -> Iterator[Batch]:
        if args.input_format == "jsonl":
            return FileSource(args.files).batches()
        return MappedFileSource(args.files, fmt).batches()

    def decoder() -> Decoder:
        return Decoder(time_field=args.time_field, max_future_skew_ms=args.max_future_skew)

    options = _engine_options(args)
    try:
        alert = find(args.alert_id, ruleset, options, decoder, source)
        if alert is None:
            print(f"alert {args.alert_id} does not fire from this input with these rules", file=sys.stderr)
            return 1
        x = explain(alert, ruleset, options, decoder, source)
    except (OSError, EOFError) as exc:
        print(f"cannot read input: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # the input changed between the two passes
        print(str(exc), file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(x.to_dict(), indent=2, default=str))
    else:
        write_table(x, sys.stdout)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from monitor.ruletest import run_tests, test_files

    path = Path(args.path)
    rules_path = path.parent if path.is_file() else path
    ruleset = _load(rules_path)
    if ruleset is None:
        return 1
    if not test_files(path):
        print(f"{path}: no rule tests (*.test.yaml) found", file=sys.stderr)
        return 1
    results = run_tests(path, ruleset)
    for r in results:
        for line in r.report():
            print(line)
    passed = sum(r.passed for r in results)
    print(f"rule tests: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.simulate import generate, write_jsonl

    events = generate(
        seed=args.seed, start=args.start, hours=args.hours, events=args.events,
        incidents=not args.no_incidents,
    )  # fmt: skip
    if args.to_kafka:
        import asyncio

        from monitor.produce import produce

        try:
            n = asyncio.run(produce(events, bootstrap=args.to_kafka, topic=args.topic, rate=args.rate))
        except Exception as exc:  # aiokafka's errors share no useful base class
            print(f"cannot produce to {args.to_kafka}: {exc}", file=sys.stderr)
            return 1
        print(f"produced {n} events to {args.topic} at {args.to_kafka}", file=sys.stderr)
    elif args.output == "-":
        write_jsonl(events, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        try:
            f = open(args.output, "wb")  # noqa: SIM115 - closed below; opened before any work
        except OSError as exc:
            raise UsageError(f"argument -o/--output: cannot write {args.output}: {exc.strerror or exc}") from None
        try:
            with f:
                n = write_jsonl(events, f)
        except OSError as exc:  # disk full, quota: not a usage error
            print(f"cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {n} events to {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    rules = Path(args.rules) if args.rules else bundled_rules()
    ruleset = _load(rules)
    if ruleset is None:
        return 1
    tune_gc()
    return run_demo(ruleset, seed=args.seed, out=sys.stdout)


def _unreadable(*sources: FileSource) -> bool:
    """Files that cannot be opened, said before any event is read: True if there were any."""
    problems = [p for source in sources for p in source.check_readable()]
    for p in problems:
        print(f"cannot read {p}", file=sys.stderr)
    return bool(problems)


def _load_config(path: str) -> Config | None:
    """The daemon's configuration, or None with every problem printed (FILE:LINE:COL)."""
    from monitor.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {path}", file=sys.stderr)
        return None


def cmd_warmup(args: argparse.Namespace) -> int:
    from monitor.warmup import WarmupError, run

    config = _load_config(args.config)
    if config is None:
        return 1
    ruleset = _load(config.rules.path)
    if ruleset is None:
        return 1
    from monitor.sources.files import FileSource

    if _unreadable(FileSource(args.files)):
        return 1
    try:
        result = run(config, ruleset, args.files, args.partitioner, args.force)
    except WarmupError as exc:
        print(f"warmup: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the broker or the store: said in one line, no traceback
        print(f"warmup failed: {exc!r}", file=sys.stderr)
        return 1
    c = result.counts
    print(f"warm events: {c.events} read, {c.valid} used, {sum(c.invalid.values())} invalid, "
          f"{result.unkeyed} without a key ({config.kafka.key_field if config.kafka else ''}), "
          f"{sum(c.alerts.values())} alerts held back", file=sys.stderr)  # fmt: skip
    for part in sorted(result.offsets):
        print(f"  partition {part}: {result.groups[part]} groups, the daemon reads on from offset "
              f"{result.offsets[part]}", file=sys.stderr)  # fmt: skip
    for part in sorted(result.internal_groups):
        print(f"  internal partition {part} (repartitioned rules): {result.internal_groups[part]} groups",
              file=sys.stderr)  # fmt: skip
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from monitor.app import Daemon

    config = _load_config(args.config)
    if config is None:
        return 1
    tune_gc()
    return asyncio.run(Daemon(config).run())


COMMANDS = {
    "check": cmd_check,
    "replay": cmd_replay,
    "explain": cmd_explain,
    "test": cmd_test,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "warmup": cmd_warmup,
    "run": cmd_run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        getattr(args, "parser", parser).error(str(exc))  # exits 2
        raise  # unreachable: error() exits
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `exfil-monitor replay ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
