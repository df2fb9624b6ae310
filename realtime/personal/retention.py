"""Retention: personal data older than N days is deleted, at start and then daily.

What is covered (`personal_data_rules`): session logs (``*.jsonl`` in the session-log folder)
and saved calibration sessions (``session-*.npz`` in the calibration folder). A file is old
when its modification time (the last row written) is more than ``days`` days before now.
Personal models are not covered: they hold weights, not a person's data. Only files directly
inside the named folders and matching the patterns are ever deleted.

``days`` = 0 means that no session log is written: any left by an earlier run are deleted,
but files a person saved on purpose (`RetentionRule.saved_by_person`: calibration sessions)
are kept until they are deleted by hand; with ``days`` > 0 they follow ``days`` like the
logs.

`RetentionJob` runs `purge` once at `start` and then every ``every_s`` seconds (a day by
default) on a thread that `stop` ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from realtime.clock import wall_time_s
from realtime.personal.storage import (
    CALIBRATION_DIR,
    OWNER_PREFIX,
    SESSION_LOG_DIR,
    SESSION_PREFIX,
)

log = logging.getLogger(__name__)

DAY_S = 86_400.0
DEFAULT_RETENTION_DAYS = 7


@dataclass(frozen=True)
class RetentionRule:
    """Files in ``folder`` matching ``pattern`` (a glob, not recursive); ``saved_by_person``:
    files a person saved on purpose, which ``days`` = 0 keeps (see the module doc)."""

    folder: Path
    pattern: str
    saved_by_person: bool = False


def purge(rules: Sequence[RetentionRule], days: float, now_s: float) -> list[Path]:
    """Deletes the files the rules name whose modification time is more than ``days`` days
    before ``now_s`` (seconds since the epoch), except, when ``days`` is 0, those of rules
    ``saved_by_person``; returns them. A file that cannot be deleted is logged and skipped; a
    missing folder is fine."""
    if days < 0:
        raise ValueError(f"retention days must be >= 0, got {days}")
    cutoff_s = now_s - days * DAY_S
    deleted: list[Path] = []
    for rule in rules:
        if (days == 0 and rule.saved_by_person) or not rule.folder.is_dir():
            continue
        for path in sorted(rule.folder.glob(rule.pattern)):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff_s:
                    path.unlink()
                    deleted.append(path)
            except OSError as exc:
                log.warning("retention: could not delete %s: %s", path, exc)
    if deleted:
        log.info("retention: deleted %d file(s) older than %g days", len(deleted), days)
    return deleted


class RetentionJob:
    """`purge` at `start` and every ``every_s`` seconds until `stop`."""

    def __init__(self, rules: Sequence[RetentionRule], days: float, every_s: float = DAY_S,
                 now_s: Callable[[], float] = wall_time_s) -> None:
        if days < 0 or every_s <= 0:
            raise ValueError("retention needs days >= 0 and every_s > 0")
        self.rules, self.days, self.every_s, self._now_s = tuple(rules), days, every_s, now_s
        self.deleted = 0  # files deleted so far
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[Path]:
        gone = purge(self.rules, self.days, self._now_s())
        self.deleted += len(gone)
        return gone

    def start(self) -> RetentionJob:
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - retention must go on tomorrow
                log.exception("retention run failed")

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Ends the thread; True when it joined."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def personal_data_rules(data_dir: Path) -> tuple[RetentionRule, ...]:
    """The session logs and calibration sessions under ``data_dir`` (the user data folder;
    the presenter view's and each visitor's own folder)."""
    return (RetentionRule(data_dir / SESSION_LOG_DIR, "*.jsonl"),
            RetentionRule(data_dir / CALIBRATION_DIR, f"{SESSION_PREFIX}*.npz",
                          saved_by_person=True),
            RetentionRule(data_dir / CALIBRATION_DIR, f"{OWNER_PREFIX}*/{SESSION_PREFIX}*.npz",
                          saved_by_person=True))
