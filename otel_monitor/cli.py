"""The `otel-monitor` command: `serve --config FILE` runs the monitor service, `check-config FILE` validates."""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError

from otel_monitor.config_file import ConfigError, load_config_file

__all__ = ["main"]

EXIT_CONFIG_ERROR = 2


def _load(path: str):
    """The monitor config and, when it names one, its rules file: every problem of both reported at once."""
    from pathlib import Path

    from otel_monitor.alerting.rules import load_rules
    from otel_monitor.monitor_config import MonitorConfig

    config = load_config_file(path, MonitorConfig)
    rules = []
    if config.alerting.rules_file:
        rules_path = Path(os.path.normpath(Path(path).parent / config.alerting.rules_file))
        rules = load_rules(rules_path)  # a ConfigError names the rules file
    return config, rules


def _check_config(args: argparse.Namespace) -> int:
    _config, rules = _load(args.file)
    print(f"{args.file}: OK" + (f" ({len(rules)} alert rules)" if rules else ""))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from otel_monitor.monitor_app import create_app
    from otel_monitor.settings import TelemetrySettings
    from otel_monitor.telemetry import setup_telemetry

    config, rules = _load(args.config)
    try:
        settings = TelemetrySettings(
            service_name=config.telemetry.service_name,
            environment=config.environment,
            otlp_endpoint=config.telemetry.otlp_endpoint,
            metric_export_interval_seconds=config.telemetry.metric_export_interval_seconds,
            log_dir=config.telemetry.log_dir,
            log_level=config.telemetry.log_level,
        )
    except ValidationError as error:  # an OTEL_MONITOR_* variable of the environment
        print(f"otel-monitor: invalid OTEL_MONITOR_* environment variable\n{error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    # The monitor's own balance polls are not the backend's provider calls: httpx stays uninstrumented here.
    telemetry = setup_telemetry(settings, instrument_httpx=False)
    app = create_app(config, meter_provider=telemetry.meter_provider, telemetry=telemetry, rules=rules)
    uvicorn.run(app, host=args.host or config.server.host, port=args.port or config.server.port,
                log_config=None, access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-monitor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the monitor service (health, quota, alerts)")
    serve.add_argument("--config", required=True, help="the monitor's YAML config file")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check-config", help="validate a config file; exit 2 naming file, line and key")
    check.add_argument("file")
    check.set_defaults(run=_check_config)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as error:
        print(f"otel-monitor: invalid configuration\n{error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR


if __name__ == "__main__":
    sys.exit(main())
