"""Where the tests find the repository and their data, wherever a test file sits under tests/."""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT", "TESTDATA"]

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTDATA = REPO_ROOT / "tests" / "testdata"
