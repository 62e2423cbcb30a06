"""Log files shared by many processes: one file per UTC day, rotated at midnight under a cross-process lock."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from concurrent_log_handler import ConcurrentTimedRotatingFileHandler

__all__ = ["DailyRotatingFileHandler", "read_log_records"]


class DailyRotatingFileHandler(ConcurrentTimedRotatingFileHandler):
    """Writes to `filename`; at the first record on or after midnight UTC renames it to `filename.YYYY-MM-DD`.

    The date is the UTC day the renamed file covers, and only the newest `backup_days` of those files are kept.

    Every process that writes the file must use this handler with the same settings. Each record is written
    while holding an exclusive `flock` on the hidden lock file next to the log (`.__app.lock` for `app.log`).
    That lock file also holds the next rollover time, so the first process whose clock passes it does the
    rename and the pruning, and every other process sees the new time and does not rotate again. Before each
    write a process compares the inode of `filename` with that of the stream it holds. If another process has
    renamed the file, it reopens `filename`, so it never writes into a renamed file.
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        *,
        backup_days: int = 30,
        clock: Callable[[], float] = time.time,
        encoding: str = "utf-8",
    ) -> None:
        if backup_days < 1:
            raise ValueError(f"backup_days must be at least 1, got {backup_days}")
        # Set before the base __init__: it reads the clock to find or perform a rollover that is already due.
        self._clock = clock
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        super().__init__(
            os.fspath(filename),
            when="midnight",
            interval=1,
            utc=True,
            backupCount=backup_days,
            encoding=encoding,
            maxBytes=0,
        )

    @property
    def backup_days(self) -> int:
        return self.backupCount

    def _get_current_time(self) -> int:
        # The library's only clock hook: rollover checks, naming and the next rollover time all go through it.
        return int(self._clock())


def read_log_records(log_dir: str | os.PathLike[str], filename: str = "app.log") -> list[dict]:
    """Every JSON line of ``filename`` and its rotated files (``filename.YYYY-MM-DD``), oldest file first."""
    import json
    from pathlib import Path

    records = []
    for path in sorted(Path(log_dir).glob(f"{filename}.*")) + [Path(log_dir) / filename]:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records
