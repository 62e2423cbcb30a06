"""Command line: run the four fake providers in the foreground and print their base URLs as one JSON line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .runner import SERVICE_KEYS, FakeProviders

PORT_FLAGS = {"gemini": "gemini", "stability": "stability", "d-id": "did", "youtube": "youtube"}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.fake_providers", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    for key in SERVICE_KEYS:
        parser.add_argument(
            f"--{PORT_FLAGS[key]}-port",
            type=int,
            default=0,
            help=f"port of the {key} fake (default 0: pick a free one)",
        )
    parser.add_argument(
        "--tls-dir",
        default=None,
        help="directory for the YouTube port's certificate and ca-bundle.pem (default: a temp dir)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    ports = {key: getattr(args, f"{PORT_FLAGS[key]}_port") for key in SERVICE_KEYS}
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeProviders(ports=ports, host=args.host, tls_dir=args.tls_dir) as fakes:
        print(json.dumps(fakes.base_urls), flush=True)
        print(
            f"youtube also answers https; trust {fakes.ca_bundle} (e.g. HTTPLIB2_CA_CERTS)", file=sys.stderr, flush=True
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
