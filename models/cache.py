"""The product's one per-user cache folder: derived features (MiniLM word embeddings), spoken
MOSI, training runs, the personal calibrated model, joined Whisper parts. Never inside the
repository; not created here.

$SENTIMENT_MONITOR_CACHE, else $XDG_CACHE_HOME/live-sentiment-monitor, else
~/.cache/live-sentiment-monitor. It lives in models/ because realtime/ may import models/ but
not the reverse (realtime.assets uses it too).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SENTIMENT_MONITOR_CACHE"
APP_DIR_NAME = "live-sentiment-monitor"


def cache_dir() -> Path:
    """$SENTIMENT_MONITOR_CACHE, else $XDG_CACHE_HOME (or ~/.cache) / live-sentiment-monitor."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / APP_DIR_NAME
