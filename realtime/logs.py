"""``--log-level`` for the command lines (app.py, ``python -m realtime``, the doctor, the
benchmarks): one argument, applied once with `logging.basicConfig` (to stderr).

Library modules only get a logger (``logging.getLogger(__name__)``); a command line decides
what is shown. Results a command prints (JSON lines, summaries) do not go through logging.
"""

from __future__ import annotations

import argparse
import logging

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LOG_LEVEL = "WARNING"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """Adds ``--log-level {DEBUG,INFO,WARNING,ERROR}`` (default WARNING) to ``parser``."""
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=DEFAULT_LOG_LEVEL,
                        type=str.upper, help=f"what to log to stderr (default {DEFAULT_LOG_LEVEL})")


def configure_logging(level: str) -> None:
    """Logs records of ``level`` and above to stderr (a no-op once logging is configured)."""
    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT)
