"""Where a person's data is stored, named once for the realtime layer, and how its files are
made private to the user running the server.

* The user data folder (`user_data_dir`): ``$SENTIMENT_DATA_DIR`` if set, else the
  platform's per-user data folder / `models.env.APP_DIR_NAME`. Inside it:
  `SESSION_LOG_DIR` (consented session logs, ``*.jsonl``) and `CALIBRATION_DIR` (saved
  calibration sessions ``SESSION_PREFIX*.npz`` and the personal models calibrated on them,
  folders ``MODEL_PREFIX*``: the presenter view's directly inside, each visitor's in a
  folder ``OWNER_PREFIX<hash>`` of their own).
* The user cache (`models.env.cache_dir`, in models/ because models may not import
  realtime): derived features, joined Whisper parts, and the personal model that
  ``python -m models.calibrate`` writes when no --out is given.

Nothing here creates a folder except `private_folder` and `open_private`: a folder made (or
tightened to) 0700, files created 0600.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from models.env import APP_DIR_NAME

DATA_ENV = "SENTIMENT_DATA_DIR"
SESSION_LOG_DIR = "session-logs"
CALIBRATION_DIR = "calibration"
SESSION_PREFIX, MODEL_PREFIX = "session-", "personal-"
OWNER_PREFIX = "owner-"  # a visitor's calibration folder: OWNER_PREFIX + their key's hash


def user_data_dir() -> Path:
    """Where session logs, calibration sessions and personal models live:
    ``$SENTIMENT_DATA_DIR`` if set, else the platform's per-user data folder
    (``$XDG_DATA_HOME`` or ``~/.local/share`` on Linux, ``~/Library/Application Support`` on
    macOS, ``%LOCALAPPDATA%`` on Windows) / live-sentiment-monitor. Never inside the
    repository; not created here."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / APP_DIR_NAME


def private_folder(folder: Path) -> Path:
    """``folder`` (and its missing parents) created if absent, its mode set to 0700 (this
    user only) even when it was there; returns it. OSError when it cannot be."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def open_private(path: Path) -> TextIO:
    """``path`` opened for appending (UTF-8 text), created 0600 in a `private_folder`."""
    private_folder(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")
