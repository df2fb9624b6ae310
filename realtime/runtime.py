"""What a process of the product opens to run live sessions, in one place and in order.

`apply_process_settings` is the one call an entry point (`python -m realtime`, app.py, a
benchmark, a model server's replica) makes, once, before it loads anything: the offline
variables (`models.env.apply_offline_env`), torch's and the BLAS libraries' threads
(`models.env.limit_threads`) and glibc's mmap threshold (`realtime.heap.fix_mmap_threshold`).
Nothing else in the product changes them: not loading a model, not importing a module.

`Runtime.open` opens, in this order: the engine (`realtime.engine.Engine`: the per-tick models,
the sessions' streaming stages and the face weight W, decided once from the flag or the
checkpoint), the serving backend (``local``: this process; ``ray``: the Ray Serve deployment,
`realtime.serving.backend.open_models`), the shared batching executor for local sessions
(`realtime.serving.executor.SharedModels`, when asked) and the session registry
(`realtime.serving.sessions.SessionManager`, whose pipelines call ``models``). `Runtime.close`
closes them in the reverse order. Both command lines and the benchmarks open it the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from realtime.engine import Engine
from realtime.serving.backend import CONNECT_TIMEOUT_S

if TYPE_CHECKING:
    from realtime.serving.executor import BatchConfig, SharedModels
    from realtime.serving.ray_serve import RayServe
    from realtime.serving.sessions import SessionManager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessSettings:
    """The process-wide switches `apply_process_settings` sets.

    torch_threads: torch's intra-op threads on the CPU (None: torch's default; not set when
    ``device`` is a GPU). The per-tick models are small; on a 2-core machine shared with
    Whisper and mediapipe, one thread costs ~6x less CPU than two (no OpenMP spinning).
    blas_threads: every BLAS library's threads (None: their default). OpenBLAS's worker
    spins for a while after every matrix product (a Whisper pass's mel filterbank, the
    acoustic features): with one thread per core the whole process took 0.64 CPU-seconds per
    media second at real speed on the demo, with numpy's limited to one 0.45
    (`benchmarks.pipeline`, ``pause``, 2 minutes each).
    fix_malloc: fix glibc's mmap threshold (`realtime.heap`): without it a live session's RSS
    crept about 8 MiB a minute; a process that runs no session (a model server) leaves it.
    offline: force the offline variables (`models.env.OFFLINE_ENV`).
    device: the device the process runs its models on ("auto", "cpu", "cuda..."), for
    torch_threads."""

    torch_threads: int | None = 1
    blas_threads: int | None = 1
    fix_malloc: bool = True
    offline: bool = True
    device: str = "auto"


def apply_process_settings(settings: ProcessSettings | None = None) -> None:
    """Applies ``settings`` (default `ProcessSettings()`) to this process; call it once, from
    an entry point, before loading models."""
    import torch

    from models.env import apply_offline_env, limit_threads
    from realtime import heap

    settings = settings or ProcessSettings()
    if settings.offline:
        apply_offline_env()
    if settings.fix_malloc:
        heap.fix_mmap_threshold()
    on_gpu = settings.device.startswith("cuda") or (
        settings.device == "auto" and torch.cuda.is_available())
    limit_threads(None if on_gpu else settings.torch_threads, settings.blas_threads)


@dataclass(frozen=True)
class RuntimeConfig:
    """What `Runtime.open` opens.

    checkpoint_dir (None: the bundled model), asr_model, asr_policy, device: the engine's
    (`Engine.load`); face_weight: W, None for the checkpoint's (else 0). serve ("local" or
    "ray"), ray_address and ray_connect_timeout_s (how long an unreachable address may take
    to fail): the serving backend (`realtime.serving.backend`). shared_models:
    local sessions run the sentiment model and the word encoder batched across sessions
    (`SharedModels`; ignored with ``ray``, whose deployment batches). max_sessions,
    idle_timeout_s, hop_s, trim_on_stop (hand the freed heap back when a session stops): the
    registry's; reap_every_s: its reaper's period (None: no reaper thread). stages/words:
    see `Engine.load`. batch: the batching of `SharedModels` and the Ray client (None: their
    defaults)."""

    checkpoint_dir: Path | None = None
    asr_model: str = "tiny.en"
    asr_policy: str = "pause"
    device: str = "auto"
    face_weight: float | None = None
    serve: str = "local"
    ray_address: str | None = None
    ray_connect_timeout_s: float = CONNECT_TIMEOUT_S
    shared_models: bool = False
    max_sessions: int = 16
    idle_timeout_s: float = 300.0
    hop_s: float = 0.2
    reap_every_s: float | None = None
    trim_on_stop: bool = True
    stages: bool = True
    words: bool = True
    batch: BatchConfig | None = None


class Runtime:
    """The opened engine, serving backend, shared executor and session registry (see the
    module doc). ``models``: what the pipelines call for the sentiment model and the word
    encoder (the Ray deployment's client, else the shared executor, else None: the engine).
    Use ``with Runtime.open(config) as rt:`` or call `close`."""

    def __init__(self, engine: Engine, sessions: SessionManager,
                 served: RayServe | None = None, shared: SharedModels | None = None) -> None:
        self.engine, self.sessions, self.served, self.shared = engine, sessions, served, shared

    @property
    def models(self) -> Any:
        return self.served.models if self.served is not None else self.shared

    @classmethod
    def open(cls, config: RuntimeConfig | None = None) -> Runtime:
        """Opens what ``config`` asks, in order. Raises `realtime.engine.EngineError` (the
        engine cannot load) or `realtime.serving.backend.ServingError` (the backend cannot
        start), with the message to show; what was opened by then is closed again."""
        from realtime.serving.backend import open_models
        from realtime.serving.executor import SharedModels
        from realtime.serving.sessions import SessionManager

        config = config or RuntimeConfig()
        engine = Engine.load(config.checkpoint_dir, asr_model=config.asr_model,
                             device=config.device, stages=config.stages, words=config.words,
                             face_weight=config.face_weight, asr_policy=config.asr_policy)
        served = open_models(config.serve, config.ray_address, config.checkpoint_dir,
                             config.batch, connect_timeout_s=config.ray_connect_timeout_s)
        shared = None
        try:
            if served is None and config.shared_models:
                shared = SharedModels(engine, config.batch).start()
            sessions = SessionManager(
                engine, max_sessions=config.max_sessions,
                idle_timeout_s=config.idle_timeout_s, hop_s=config.hop_s,
                trim_on_stop=config.trim_on_stop,
                shared=served.models if served is not None else shared)
            if config.reap_every_s is not None:
                sessions.start_reaper(config.reap_every_s)
        except BaseException:
            if shared is not None:
                shared.stop()
            if served is not None:
                served.close()
            raise
        log.info("runtime open: model %s, serving %s, shared models %s",
                 engine.model_name, config.serve, shared is not None)
        return cls(engine, sessions, served, shared)

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stops every session and the reaper, then the shared executor, then the serving
        backend; True when every session's threads joined in time."""
        try:
            joined = self.sessions.stop_all(timeout_s)
        finally:
            try:
                if self.shared is not None:
                    self.shared.stop()
            finally:
                if self.served is not None:
                    self.served.close()
        return joined

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
