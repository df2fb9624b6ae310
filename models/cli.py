"""What every command line shares (models', realtime's, app.py, the benchmarks): ``--log-level``.

Library modules log through ``logging.getLogger(__name__)`` and never print; a command's
``main`` prints its results on stdout and sets the log level (default WARNING, on stderr).
"""

from __future__ import annotations

import argparse
import logging

LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LOG_LEVEL = "WARNING"


def add_log_level(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--log-level", default=DEFAULT_LOG_LEVEL, choices=LOG_LEVELS,
                        type=str.upper,
                        help="log messages of this level and above on stderr "
                             "(default %(default)s)")
    return parser


def configure_logging(level: str) -> None:
    """logging.basicConfig at ``level`` (one of LOG_LEVELS) for a command's process; the
    root level is set even when logging was configured before (basicConfig then adds no
    handler)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
