"""``otel-monitor silence add|list|expire``: the silences of a running monitor, over its HTTP API (like amtool)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import re
import sys

import httpx

from otel_monitor.monitor.alerting.silences.matchers import parse_matcher
from otel_monitor.monitor.alerting.silences.model import SilenceState

__all__ = ["add_silence_commands", "parse_duration", "API_TOKEN_ENV"]

# The monitor API's token, sent as ``Authorization: Bearer``; never on the command line (it would show in ps).
API_TOKEN_ENV = "OTEL_MONITOR_API_TOKEN"
SILENCES_PATH = "/api/v1/silences"
EXIT_FAILED = 1
EXIT_USAGE = 2
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TIMEOUT_SECONDS = 10.0


def parse_duration(text: str) -> dt.timedelta:
    """``2h``, ``90m``, ``1d12h``, ``30s``: an argparse type (a ValueError names what is wrong)."""
    found = _DURATION.match(text.strip())
    if not text.strip() or found is None or not any(found.groups()):
        raise ValueError(f"not a duration {text!r} (e.g. 2h, 90m, 1d12h)")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _matcher(text: str) -> str:
    try:
        parse_matcher(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _duration(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time {text!r} (e.g. 2026-12-01T02:00:00+01:00)") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _base_url(args: argparse.Namespace) -> str:
    """``--url``, else the server of ``--config``, else the default server (127.0.0.1:8080)."""
    if args.url:
        return args.url.rstrip("/")
    from otel_monitor.monitor.config import MonitorConfig, ServerConfig
    from otel_monitor.monitor.config_file import load_config_file

    server = load_config_file(args.config, MonitorConfig).server if args.config else ServerConfig()
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    return f"http://{host}:{server.port}"


def _call(args: argparse.Namespace, method: str, path: str, **request: object) -> dict | None:
    """The monitor's JSON answer; None (the reason printed) when it is unreachable or refuses."""
    url = _base_url(args) + path
    headers = {"Accept": "application/json"}
    token = os.environ.get(API_TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(method, url, headers=headers, timeout=_TIMEOUT_SECONDS, **request)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        print(f"otel-monitor: cannot reach the monitor at {url}: {error}", file=sys.stderr)
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_error:
        detail = body.get("detail") if isinstance(body, dict) else response.text[:500]
        if isinstance(detail, list):  # FastAPI's validation errors: each names its field
            detail = "; ".join(f"{'.'.join(map(str, error['loc'][1:]))}: {error['msg']}" for error in detail)
        print(f"otel-monitor: the monitor answered {response.status_code}: {detail}", file=sys.stderr)
        return None
    return body if isinstance(body, dict) else {}


def _line(silence: dict) -> str:
    matchers = ",".join(f"{m['name']}{m['operator']}{m['value']}" for m in silence["matchers"])
    window = f"{silence['starts_at'] or '-'} .. {silence['ends_at'] or '-'}"
    return f"{silence['id']}  {silence['state']:<8} {matchers}  {window}  {silence['author']}: {silence['comment']}"


def _add(args: argparse.Namespace) -> int:
    starts_at = args.start or dt.datetime.now(dt.UTC)
    ends_at = args.end if args.end is not None else starts_at + args.duration
    body = {
        "matchers": [parse_matcher(text).model_dump() for text in args.matcher],
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "comment": args.comment,
        "author": args.author,
    }
    silence = _call(args, "POST", SILENCES_PATH, json=body)
    if silence is None:
        return EXIT_FAILED
    print(silence["id"])
    return 0


def _list(args: argparse.Namespace) -> int:
    params = {"state": args.state} if args.state else {}
    answer = _call(args, "GET", SILENCES_PATH, params=params)
    if answer is None:
        return EXIT_FAILED
    for silence in answer["silences"]:
        print(_line(silence))
    return 0


def _expire(args: argparse.Namespace) -> int:
    silence = _call(args, "DELETE", f"{SILENCES_PATH}/{args.id}")
    if silence is None:
        return EXIT_FAILED
    print(f"{silence['id']} expired at {silence['ends_at']}")
    return 0


def add_silence_commands(commands: argparse._SubParsersAction) -> None:
    """``silence add|list|expire`` among the ``otel-monitor`` commands."""
    silence = commands.add_parser("silence", help="add, list or expire silences of a running monitor")
    actions = silence.add_subparsers(dest="silence_command", required=True)
    for name, run, text in (
        ("add", _add, "hold the notifications of matching alerts for a while"),
        ("list", _list, "list the silences (and open maintenance windows)"),
        ("expire", _expire, "end a silence now: what it held goes out if it still fires"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--url", help="the monitor's API (default: the server of --config, else 127.0.0.1:8080)")
        action.add_argument("--config", help="the monitor's YAML config file, for its server's host and port")
        action.set_defaults(run=run)
        if name == "add":
            action.add_argument(
                "--matcher", action="append", required=True, type=_matcher, help="NAME=VALUE, !=, =~REGEX, !~REGEX"
            )
            until = action.add_mutually_exclusive_group(required=True)
            until.add_argument("--duration", type=_duration, help="how long from the start (2h, 90m, 1d)")
            until.add_argument("--end", type=_moment, help="when it ends (ISO 8601; UTC without an offset)")
            action.add_argument("--start", type=_moment, help="when it starts (ISO 8601; default: now)")
            action.add_argument("--comment", required=True, help="why")
            action.add_argument("--author", default=getpass.getuser(), help="who (default: the current user)")
        elif name == "list":
            action.add_argument("--state", choices=[state.value for state in SilenceState])
        else:
            action.add_argument("id", help="the silence's id")
