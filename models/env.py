"""How every command of the product runs on a machine, in one place: offline, with one user
cache folder, logging at the level asked for. It lives in models/ because every layer above
(realtime, the dashboard, the benchmarks) may import models but not the reverse.

* Offline: every model is bundled (see `realtime.assets`), so nothing may reach the Hugging
  Face hub, and Gradio must not send analytics. Entry points call `apply_offline_env()` before
  they import transformers or gradio; a subprocess gets ``{**os.environ, **OFFLINE_ENV}``.
  The values are forced, not defaults: offline is a guarantee of the product, not a setting.
* The user cache (`cache_dir`): derived features (MiniLM word embeddings), spoken MOSI,
  training runs, the personal calibrated model, joined Whisper parts. Never inside the
  repository; not created here. $SENTIMENT_MONITOR_CACHE, else
  $XDG_CACHE_HOME/live-sentiment-monitor, else ~/.cache/live-sentiment-monitor.
* The repository's folders, found from this file once for every layer: `REPO_ROOT`, its
  `ASSETS_DIR` and the default sentiment model's folder `DEFAULT_MODEL_DIR` (realtime
  locates its bundled assets from here too, `realtime.assets.repo_assets_dir`). Read-only
  to the product: nothing personal or derived is written there.
* Threads (`limit_threads`): torch's intra-op threads and every BLAS library's, for the
  whole process. Entry points set them once, through `realtime.runtime.apply_process_settings`
  (which also applies the offline variables and fixes malloc's mmap threshold); loading a
  model never does.
* ``--log-level`` (`add_log_level`, `configure_logging`): library modules log through
  ``logging.getLogger(__name__)`` and never print; a command's ``main`` prints its results
  on stdout and sets the log level (default WARNING, on stderr).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import MappingProxyType

OFFLINE_ENV: Mapping[str, str] = MappingProxyType({
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
})


def apply_offline_env(environ: MutableMapping[str, str] | None = None) -> None:
    """Sets `OFFLINE_ENV` in ``environ`` (default: this process's environment)."""
    target = os.environ if environ is None else environ
    target.update(OFFLINE_ENV)


REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = REPO_ROOT / "assets"
DEFAULT_MODEL_DIR = ASSETS_DIR / "model"  # model.safetensors + config.json

CACHE_ENV = "SENTIMENT_MONITOR_CACHE"
APP_DIR_NAME = "live-sentiment-monitor"


def cache_dir() -> Path:
    """$SENTIMENT_MONITOR_CACHE, else $XDG_CACHE_HOME (or ~/.cache) / live-sentiment-monitor."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / APP_DIR_NAME


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


def limit_threads(torch_threads: int | None = None, blas_threads: int | None = None) -> None:
    """Process-wide. torch_threads: torch's intra-op threads on the CPU (None: left as they
    are). blas_threads: every BLAS library's threads: numpy's and scipy's OpenBLAS (scipy's
    is loaded here first, so that the limit reaches it; threadpoolctl reaches only the
    libraries already loaded) and, through ``OPENBLAS_NUM_THREADS``, one loaded later
    (OpenCV's, when a session's first face or expression stage imports it). None: left as
    they are. Measured reasons for one thread each: `realtime.runtime.ProcessSettings`."""
    if torch_threads is not None:
        import torch

        torch.set_num_threads(int(torch_threads))
    if blas_threads is not None:
        import scipy.linalg  # noqa: F401 - loads scipy's OpenBLAS before the limit
        from threadpoolctl import threadpool_limits

        os.environ["OPENBLAS_NUM_THREADS"] = str(int(blas_threads))
        threadpool_limits(limits=int(blas_threads), user_api="blas")
