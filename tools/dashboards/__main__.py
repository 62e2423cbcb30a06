"""`python -m tools.dashboards`: writes dashboards/*.json from tools/dashboards and config/thresholds.yaml."""

from __future__ import annotations

from tools.dashboards import write

if __name__ == "__main__":
    for name in write():
        print(f"dashboards/{name} updated")
