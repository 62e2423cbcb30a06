"""`python -m tools.dashboards`: writes the dashboards' threshold steps from config/thresholds.yaml."""

from __future__ import annotations

from tools.dashboards import write

if __name__ == "__main__":
    for name in write():
        print(f"dashboards/{name} updated")
