"""Which models the pipelines of a command line get: this process's own (``--serve local``,
the default: `Pipeline` calls its `Engine`) or the Ray Serve deployment (``--serve ray``,
`realtime.serving.ray_serve`; ``--ray-address`` joins a cluster, else a local instance starts).

`open_models` is the one switch; `realtime.runtime.Runtime.open` calls it for both command
lines (`python -m realtime`, `app.py`). It keeps Ray an optional import, so a machine without
``ray[serve]`` runs everything else.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from realtime.serving.executor import BatchConfig

if TYPE_CHECKING:
    from realtime.serving.ray_serve import RayServe

log = logging.getLogger(__name__)

SERVE_CHOICES = ("local", "ray")
CONNECT_TIMEOUT_S = 30.0  # how long joining a --ray-address may take to reach it


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``--serve local|ray`` and ``--ray-address ADDR``, for both command lines."""
    parser.add_argument("--serve", choices=SERVE_CHOICES, default="local",
                        help="where the sentiment model and word encoder run: local (this "
                             "process) or ray (a Ray Serve deployment, batched across clients)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="with --serve ray: join this Ray cluster (default: a local "
                             "instance)")
    parser.add_argument("--ray-connect-timeout-s", type=float, default=CONNECT_TIMEOUT_S,
                        metavar="S",
                        help="with --ray-address: give up when the cluster cannot be reached "
                             f"within S seconds (default {CONNECT_TIMEOUT_S:g})")


def check_serve_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits through ``parser.error`` (status 2) for --ray-address without --serve ray, or a
    --ray-connect-timeout-s that is not a positive number."""
    if args.ray_address is not None and args.serve != "ray":
        parser.error("--ray-address only applies to --serve ray")
    if not 0 < args.ray_connect_timeout_s < float("inf"):
        parser.error(f"--ray-connect-timeout-s must be a positive number of seconds, got "
                     f"{args.ray_connect_timeout_s}")


class ServingError(RuntimeError):
    """The chosen model service cannot start (the message says why and what to do)."""


def open_models(serve: str, ray_address: str | None = None, checkpoint_dir: Path | None = None,
                batch: BatchConfig | None = None,
                connect_timeout_s: float = CONNECT_TIMEOUT_S) -> RayServe | None:
    """None for ``serve="local"``; for ``"ray"`` a connected `RayServe` (its ``models`` go to
    the pipelines, ``close()`` at the end); an unreachable ``ray_address`` fails within
    ``connect_timeout_s``. Raises `ServingError`."""
    if serve not in SERVE_CHOICES:
        raise ServingError(f"--serve must be one of {', '.join(SERVE_CHOICES)}, got {serve!r}")
    if serve == "local":
        if ray_address is not None:
            raise ServingError("--ray-address only applies to --serve ray")
        return None
    try:
        from realtime.serving.ray_serve import RayServe, RayServeConfig, RayServeError
    except ImportError as exc:
        raise ServingError(f"--serve ray needs ray[serve] ({exc}); install it with "
                           "`make setup` (requirements.txt pins it)") from None
    batch = batch or BatchConfig()
    try:
        return RayServe.connect(RayServeConfig(address=ray_address, checkpoint_dir=checkpoint_dir,
                                               model=batch, words=batch,
                                               connect_timeout_s=connect_timeout_s))
    except RayServeError as exc:
        raise ServingError(str(exc)) from None
