"""The `otel-monitor` command: `serve --config FILE` runs the monitor service, `check-config FILE` validates,
`notify-test --config FILE` runs a fire drill of the alert channels, `silence add|list|expire` acts on the silences
of a running monitor, `hash-token` prints an API token's hash, `export-rules` writes the rules for Prometheus and
Alertmanager, `test-rules FILE...` runs promtool unit tests against them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from otel_monitor import __version__
from otel_monitor.monitor.alerting.model import Rule
from otel_monitor.monitor.alerting.silences.cli import add_silence_commands
from otel_monitor.monitor.auth.config import hash_token, unauthenticated_exposure
from otel_monitor.monitor.config import MonitorConfig, unreachable_alerts, untracked_signals
from otel_monitor.monitor.config_file import ConfigError, ConfigProblem, load_config_file, problem_at
from otel_monitor.monitor.leadership import replicas_need_postgres

if TYPE_CHECKING:
    from otel_monitor.monitor.alerting.delivery.drill import ChannelDrill
    from otel_monitor.monitor.alerting.export import ExportSettings

__all__ = ["main"]

EXIT_CONFIG_ERROR = 2


def _load(path: str) -> tuple[MonitorConfig, list[Rule], list[ConfigProblem], str | None]:
    """The monitor config, its rules, the warnings and what checked the PromQL (None: nothing could).

    Every problem of both files is reported at once, and so are alerts that would reach nobody (alerting on with
    no rules or no P0 channel). Warnings name what the monitor would silently never see: it still starts."""
    from otel_monitor.monitor.alerting.rules import load_rules, promql_checker

    config = load_config_file(path, MonitorConfig)
    rules: list[Rule] | None = []
    problems: list[ConfigProblem] = []
    if config.alerting.rules_file:
        rules_path = Path(os.path.normpath(Path(path).parent / config.alerting.rules_file))
        try:
            rules = load_rules(rules_path)
        except ConfigError as error:  # each problem names the rules file
            problems += error.problems
            rules = None
    problems += [problem_at(path, loc, message) for loc, message in unreachable_alerts(config.alerting, rules)]
    problems += [
        problem_at(path, loc, message) for loc, message in unauthenticated_exposure(config.auth, config.server.host)
    ]
    problems += [
        problem_at(path, loc, message) for loc, message in replicas_need_postgres(config.ha, config.alerting.store_url)
    ]
    if problems:
        raise ConfigError(problems)
    rules = rules or []
    warnings = [problem_at(path, loc, message) for loc, message in untracked_signals(config, rules)]
    has_promql = any(rule.source == "promql" for rule in rules)
    checker = promql_checker() if has_promql else None
    if has_promql and checker is None:
        warnings.append(
            problem_at(
                path,
                ("alerting", "rules_file"),
                "PromQL of the rules was not validated: install Prometheus' promtool or the promql-parser package",
            )
        )
    return config, rules, warnings, checker


def _check_config(args: argparse.Namespace) -> int:
    _config, rules, warnings, checker = _load(args.file)
    for warning in warnings:
        print(f"otel-monitor: warning: {warning}", file=sys.stderr)
    checked = f", PromQL checked by {Path(checker).name}" if checker else ""
    print(f"{args.file}: OK" + (f" ({len(rules)} alert rules{checked})" if rules else ""))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from otel_monitor.instrument.telemetry import setup_telemetry
    from otel_monitor.logs.logger import StructuredLogger
    from otel_monitor.monitor.app import create_app

    config, rules, warnings, _checker = _load(args.config)
    for _loc, message in unauthenticated_exposure(config.auth, args.host or config.server.host):
        print(f"otel-monitor: refusing to serve: {message}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        settings = config.telemetry_settings()
    except ValidationError as error:  # an OTEL_MONITOR_* variable of the environment
        print(f"otel-monitor: invalid OTEL_MONITOR_* environment variable\n{error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    # The monitor's own balance polls are not the backend's provider calls: httpx stays uninstrumented here.
    telemetry = setup_telemetry(settings, instrument_httpx=False)
    log = StructuredLogger("otel_monitor.cli")
    for warning in warnings:  # what would otherwise go unseen: a WARNING line naming the setting to change
        log.warning(
            f"{warning.key}: {warning.message}",
            extra={"setting": warning.key, "config_file": f"{warning.path}:{warning.line or ''}"},
        )
    app = create_app(config, meter_provider=telemetry.meter_provider, telemetry=telemetry, rules=rules)
    uvicorn.run(
        app,
        host=args.host or config.server.host,
        port=args.port or config.server.port,
        log_config=None,
        access_log=False,
    )
    return 0


def _notify_test(args: argparse.Namespace) -> int:
    """The fire drill in this process, on the config's channels and alerting store: it needs no running monitor
    (a drill before deploying, or while the monitor is down, is when it matters), and its rows land in the store the
    monitor's ledger reads. Exit 0: every channel delivered; 1: one failed or is retrying; 2: config or channel."""
    import asyncio

    from otel_monitor.monitor.alerting.delivery.drill import DrillOutcome, UnknownChannelError, drill_channels

    config, _rules, _warnings, _checker = _load(args.config)
    try:
        channels = drill_channels(config.alerting.delivery, args.channel)
    except UnknownChannelError as error:
        print(f"otel-monitor: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if not channels:
        print("otel-monitor: no channel is routed (alerting.delivery.routing)", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    results = asyncio.run(_drill(config, channels, args.settle_seconds))
    for result in results:
        print(f"{result.channel}: {result.outcome}: {result.reason}")
    return 0 if all(result.outcome == DrillOutcome.DELIVERED for result in results) else 1


async def _drill(config: MonitorConfig, channels: tuple[str, ...], settle_seconds: float) -> list[ChannelDrill]:
    import httpx

    from otel_monitor.monitor.alerting.delivery.dispatcher import Dispatcher
    from otel_monitor.monitor.alerting.delivery.drill import run_fire_drill
    from otel_monitor.monitor.alerting.delivery.outbox import Outbox
    from otel_monitor.monitor.alerting.notifiers import WebSocketHub, build_notifiers

    delivery = config.alerting.delivery
    assert config.alerting.store_url is not None  # MonitorConfig fills it in
    outbox = Outbox(config.alerting.store_url)
    async with httpx.AsyncClient() as client:
        notifiers = build_notifiers(delivery, client=client, websocket_hub=WebSocketHub())
        dispatcher = Dispatcher.from_config(outbox, delivery, notifiers)
        try:
            return await run_fire_drill(outbox, dispatcher, channels, settle_seconds=settle_seconds)
        finally:
            await outbox.executor.shutdown_after(outbox.close)


def _hash_token(_args: argparse.Namespace) -> int:
    """Prints the SHA-256 of the token read on stdin (one line; surrounding whitespace dropped), for auth.tokens."""
    token = sys.stdin.readline().strip()
    if not token:
        print(
            "otel-monitor: no token on stdin (e.g. `openssl rand -hex 32 | otel-monitor hash-token`)", file=sys.stderr
        )
        return EXIT_CONFIG_ERROR
    print(hash_token(token))
    return 0


def _export_inputs(args: argparse.Namespace) -> tuple[list[Rule], ExportSettings, float]:
    """The rules (``--rules``, else the config's rules file), the thresholds and address of ``--config``, and its
    P1 digest period; raises ConfigError naming what is missing."""
    from otel_monitor.monitor.alerting.export import ExportSettings
    from otel_monitor.monitor.alerting.rules import load_rules

    settings, digest_seconds, rules_path = ExportSettings(), 1800.0, args.rules
    if args.config:
        config = load_config_file(args.config, MonitorConfig)
        settings = ExportSettings(
            quota_thresholds=config.quota.thresholds, public_base_url=config.server.public_base_url
        )
        digest_seconds = config.alerting.digest_period.total_seconds()
        if rules_path is None and config.alerting.rules_file:
            rules_path = os.path.normpath(Path(args.config).parent / config.alerting.rules_file)
    if rules_path is None:  # a config without a rules file (with neither option, argparse has refused already)
        raise ConfigError([problem_at(args.config, ("alerting", "rules_file"), "no rules file named; or use --rules")])
    return load_rules(rules_path), settings, digest_seconds


def _export_rules(args: argparse.Namespace) -> int:
    from otel_monitor.monitor.alerting.export import export_files

    rules, settings, digest_seconds = _export_inputs(args)
    files = export_files(rules, args.out, settings, digest_period_seconds=digest_seconds)
    print(f"{files.rules}: {len(rules)} alert rules")
    print(f"{files.alertmanager}: routes per priority, inhibit rules; fill in its receivers")
    return 0


def _test_rules(args: argparse.Namespace) -> int:
    import yaml

    from otel_monitor.monitor.alerting.export import PromtoolMissing, run_rule_tests

    rules, settings, _digest = _export_inputs(args)
    try:
        result = run_rule_tests(args.files, rules, settings)
    except PromtoolMissing as error:
        print(f"otel-monitor: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (OSError, yaml.YAMLError) as error:
        print(f"otel-monitor: cannot read the test file: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def _add_rule_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-rules", help="write the rules as Prometheus rule groups and an Alertmanager config"
    )
    test = commands.add_parser(
        "test-rules", help="run promtool unit test files against the exported rules; exit with promtool's status"
    )
    for command in (export, test):
        sources = command.add_argument_group("rules (one at least)")
        sources.add_argument("--config", help="the monitor's YAML config file: its rules file and thresholds")
        sources.add_argument("--rules", help="the rules file (default: the config's alerting.rules_file)")
    export.add_argument("--out", default=".", help="the directory to write into (default: the current one)")
    export.set_defaults(run=_export_rules)
    test.add_argument("files", nargs="+", help="promtool unit test files; their rule_files are replaced")
    test.set_defaults(run=_test_rules)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-monitor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the monitor service (health, quota, alerts)")
    serve.add_argument("--config", required=True, help="the monitor's YAML config file")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check-config", help="validate a config file; exit 2 naming file, line and key")
    check.add_argument("file")
    check.set_defaults(run=_check_config)
    drill = commands.add_parser(
        "notify-test", help="send a test alert through each routed channel (or one); exit 1 if any is not delivered"
    )
    drill.add_argument("--config", required=True, help="the monitor's YAML config file")
    drill.add_argument("--channel", help="only this channel (default: every channel a priority is routed to)")
    drill.add_argument(
        "--settle-seconds",
        type=float,
        default=0.0,
        help="also wait for retries due within this long (default 0: report each channel's first outcome)",
    )
    drill.set_defaults(run=_notify_test)
    add_silence_commands(commands)
    _add_rule_commands(commands)
    hashing = commands.add_parser(
        "hash-token", help="read an API token on stdin, print its sha256 for auth.tokens (the token is not kept)"
    )
    hashing.set_defaults(run=_hash_token)
    args = parser.parse_args(argv)
    if args.command in ("export-rules", "test-rules") and not (args.config or args.rules):
        parser.error(f"{args.command}: name --rules FILE or --config FILE")
    try:
        return args.run(args)
    except ConfigError as error:
        print(f"otel-monitor: invalid configuration\n{error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR


if __name__ == "__main__":
    sys.exit(main())
