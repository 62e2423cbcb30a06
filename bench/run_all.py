"""`make bench`: every benchmark of bench/, one after the other, with their default settings."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    "bench.call_overhead",
    "bench.throughput",
    "bench.health_load",
    "bench.alert_latency",
    "bench.alert_evaluation",
    "bench.failover",
    "bench.gateway_throughput",
    "bench.rule_scaling",
    "bench.race",
]


def main() -> None:
    for module in BENCHES:
        print(f"\n== {module}", flush=True)
        subprocess.run([sys.executable, "-m", module], check=True)


if __name__ == "__main__":
    main()
