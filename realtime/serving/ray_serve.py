"""Beyond one machine: the batched sentiment model and MiniLM word encoder as a Ray Serve
deployment, and the client that lets a `Pipeline` use it. The only module that imports ray.

`RayServe.connect(RayServeConfig(...))` starts or joins Ray, deploys `SentimentModels` (the
replica: the two per-tick models, ``@serve.batch``, no session state) and returns a `RayServe`
whose ``models`` (`RayModels`, the client: `realtime.tick.ModelCalls`, batching first) a
pipeline calls (``Pipeline(..., models=serve.models)``). Each class's docstring holds its
contract (errors, bounds, threads).

* Batching (`BatchConfig`: ``max_batch`` 64, ``max_wait_ms`` 10 by default): ``max_wait_ms``
  bounds a window's whole wait, split by `split_wait` between the client and the replica
  (``replica_wait_share``, default 0: the client waits, the replica takes every batch queued
  when it is free). A replica joins several clients' batches, counting windows.
* Back-pressure: past ``max_queue`` waiting items (client side) or queued requests (the
  deployment's ``max_queued_requests``) a call is refused at once, counted in
  ``stats().drops`` and raised as `realtime.serving.executor.ExecutorBusy`, as locally.
* GPUs: with ``num_gpus=None`` a replica takes `GPU_SHARE` (0.25) of a GPU when the cluster
  has one, else runs on CPU. Every node that runs a replica needs this project importable;
  a local instance gets the driver's folder on its workers' ``PYTHONPATH``.

Measurements behind these choices: docs/notes/ray_serve.md; the dated benchmark:
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import ray
from ray import serve
from ray.serve.exceptions import BackPressureError

from models.env import REPO_ROOT
from realtime.engine import Engine, EngineOutput, pick_device
from realtime.serving.executor import (
    BatchConfig,
    BatchingExecutor,
    ExecutorBusy,
    ExecutorStats,
    WindowArrays,
)
from realtime.types import Word

log = logging.getLogger(__name__)

GPU_SHARE = 0.25  # a replica's share of a GPU when the cluster has one (num_gpus=None)


class RayServeError(RuntimeError):
    """Ray could not start, join the cluster or deploy the models (the message says which)."""


@dataclass(frozen=True)
class RayServeConfig:
    """address: an existing cluster to join (None: start a local instance on this machine);
    checkpoint_dir: the sentiment model folder the replicas load (None: the bundled one);
    num_gpus: each replica's share of a GPU (None: `GPU_SHARE` when the cluster has a GPU,
    else 0); num_cpus: each replica's CPUs; replicas: how many; app_name: the Serve
    application's name (one per configuration on a shared cluster); model, words: the
    batching options of the two methods; replica_wait_share: the share of their
    ``max_wait_ms`` the replica waits for more clients' batches (the client's batch waits
    the rest; see the module doc); connect_timeout_s: how long joining ``address`` may take
    to reach it (`check_reachable`). ValueError for ``replicas < 1``, a negative CPU or GPU
    share or a ``replica_wait_share`` outside [0, 1]."""

    address: str | None = None
    checkpoint_dir: Path | None = None
    num_gpus: float | None = None
    num_cpus: float = 1.0
    replicas: int = 1
    app_name: str = "sentiment-models"
    model: BatchConfig = field(default_factory=BatchConfig)
    words: BatchConfig = field(default_factory=BatchConfig)
    replica_wait_share: float = 0.0
    connect_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.num_cpus < 0 or (self.num_gpus or 0) < 0 \
                or not 0.0 <= self.replica_wait_share <= 1.0 or not self.connect_timeout_s > 0:
            raise ValueError(f"RayServeConfig needs replicas >= 1, no negative CPU or GPU "
                             f"share, a replica_wait_share in [0, 1] and a positive "
                             f"connect_timeout_s (got {self})")


def check_reachable(address: str, timeout_s: float) -> None:
    """Raises `RayServeError` unless a TCP connection to the host:port of ``address``
    ("host:port" of the GCS, or "ray://host:port" of a Ray client server) opens within
    ``timeout_s``; an address without a port ("auto") is not checked. The connection is
    closed at once. Name resolution is the system's (not bounded here)."""
    target = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise RayServeError(f"cannot reach the Ray cluster at {address} within "
                            f"{timeout_s:g} s ({reason}); is its head node running, and is "
                            "the address host:port right?") from None


@dataclass
class _Counts:
    windows: int = 0
    batches: int = 0
    largest: int = 0

    def add(self, size: int) -> None:
        self.windows += size
        self.batches += 1
        self.largest = max(self.largest, size)

    def stats(self, drops: int = 0) -> ExecutorStats:
        return ExecutorStats(self.windows, self.batches, drops, 0,
                             self.windows / self.batches if self.batches else 0.0, self.largest)


def split_wait(config: BatchConfig, replica_share: float) -> tuple[BatchConfig, BatchConfig]:
    """(the client's, the replica's) batching options: ``config`` with ``1 - replica_share``
    and ``replica_share`` of its ``max_wait_ms`` (see the module doc)."""
    replica_ms = config.max_wait_ms * replica_share
    return (replace(config, max_wait_ms=config.max_wait_ms - replica_ms),
            replace(config, max_wait_ms=replica_ms))


def _items_in(requests: list[list]) -> int:
    """`@serve.batch`'s size of a batch of requests: their windows (or word lists)."""
    return sum(len(r) for r in requests)


def _split(outputs: Sequence, requests: list[list]) -> list[list]:
    """The flat answers of a joined batch, cut back into one list per request."""
    out, at = [], 0
    for r in requests:
        out.append(list(outputs[at : at + len(r)]))
        at += len(r)
    return out


@serve.deployment
class SentimentModels:
    """The replica: the two per-tick models, batched (see the module doc). No session state.
    model, words: the replica's batching options (`split_wait`'s second: its share of the
    wait)."""

    def __init__(self, checkpoint_dir: str | None, device: str, model: BatchConfig,
                 words: BatchConfig) -> None:
        from models.env import apply_offline_env, limit_threads

        # the replica's process settings (`realtime.runtime.ProcessSettings`, less malloc's:
        # it runs no session)
        apply_offline_env()
        limit_threads(1 if pick_device(device) == "cpu" else None, 1)
        self.engine = Engine.load(checkpoint_dir, device=device, stages=False)
        for method, config in ((self.predict, model), (self.encode_words, words)):
            method.set_max_batch_size(config.max_batch)
            method.set_batch_wait_timeout_s(config.max_wait_ms / 1000.0)
        self._counts = {"predict": _Counts(), "encode_words": _Counts()}
        log.info("replica ready: %s on %s", self.engine.model_name, self.engine.device)

    @serve.batch(max_batch_size=BatchConfig().max_batch,
                 batch_wait_timeout_s=BatchConfig().max_wait_ms / 1000.0,
                 batch_size_fn=_items_in)
    async def predict(self, requests: list[list[WindowArrays]]) -> list[list[EngineOutput]]:
        windows = [w for r in requests for w in r]
        self._counts["predict"].add(len(windows))
        # in a thread, so the next batch gathers while this one runs
        return _split(await asyncio.to_thread(self.engine.predict_batch, windows), requests)

    @serve.batch(max_batch_size=BatchConfig().max_batch,
                 batch_wait_timeout_s=BatchConfig().max_wait_ms / 1000.0,
                 batch_size_fn=_items_in)
    async def encode_words(self, requests: list[list[tuple[Word, ...]]]
                           ) -> list[list[np.ndarray]]:
        lists = [words for r in requests for words in r]
        self._counts["encode_words"].add(len(lists))
        return _split(await asyncio.to_thread(self.engine.encode_words_batch, lists), requests)

    def stats(self, method: str) -> ExecutorStats:
        """This replica's batches of ``method`` ("predict" or "encode_words") so far."""
        return self._counts[method].stats()

    def describe(self) -> tuple[str, str]:
        """(model name, device) of this replica."""
        return self.engine.model_name, self.engine.device


class RayModels:
    """`realtime.pipeline.ModelCalls` through the deployment's handle, for any number of
    pipelines in this process (thread-safe). Windows and word lists are batched here first
    (a `BatchingExecutor` per method, ``model`` and ``words`` configs) and each batch goes to
    the deployment as one call. ``submit`` is the asynchronous form of ``predict`` (a
    `Future`, as `BatchingExecutor.submit` gives); past ``max_queue`` waiting windows a
    submission is refused and counted, as the local executor's full queue is."""

    def __init__(self, handle, model: BatchConfig | None = None,
                 words: BatchConfig | None = None) -> None:
        self._handle = handle
        self._lock = threading.Lock()
        self._refused = {"predict": 0, "encode_words": 0}  # by the deployment, in items
        self._local = {
            "predict": BatchingExecutor(lambda ws: self._call("predict", ws), model,
                                        name="ray-client:predict").start(),
            "encode_words": BatchingExecutor(lambda ls: self._call("encode_words", ls),
                                             words, name="ray-client:words").start(),
        }

    def predict(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> EngineOutput:
        return self._local["predict"].call((text, audio, video))

    def encode_words(self, words: Sequence[Word]) -> np.ndarray:
        return self._local["encode_words"].call(tuple(words))

    def submit(self, window: WindowArrays) -> Future:
        return self._local["predict"].submit(window)

    def _call(self, method: str, items: Sequence) -> list:
        try:
            return getattr(self._handle, method).remote(list(items)).result()
        except BackPressureError as exc:
            with self._lock:
                self._refused[method] += len(items)
            raise ExecutorBusy(f"the Ray deployment refused a call ({method}): {exc}") from None

    def stats(self, method: str = "predict") -> ExecutorStats:
        """The deployment's batches of ``method`` (one replica's, the one that answers) with
        this client's refused items (its own full queue and the deployment's) as ``drops``."""
        counts = self._handle.stats.remote(method).result()
        with self._lock:
            drops = self._refused[method] + self._local[method].stats().drops
        return ExecutorStats(counts.windows, counts.batches, drops, counts.failures,
                             counts.mean_batch, counts.max_batch)

    def describe(self) -> tuple[str, str]:
        return self._handle.describe.remote().result()

    def close(self) -> bool:
        """Stops the client's batching threads (waiting windows fail with
        `ExecutorStopped`); whether both ended within 2 s."""
        return all([executor.stop() for executor in self._local.values()])


def deployment_options(config: RayServeConfig, num_gpus: float) -> dict:
    """Ray's options for `SentimentModels` (Ray's API takes them as keywords)."""
    largest = max(config.model.max_batch, config.words.max_batch)
    return {
        "name": "SentimentModels",
        "num_replicas": config.replicas,
        "max_ongoing_requests": 2 * largest,
        "max_queued_requests": max(config.model.max_queue, config.words.max_queue),
        "ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": num_gpus},
    }


class RayServe:
    """A connection to the deployment: ``models`` for the pipelines, ``close`` at the end.

    `connect` starts a local Ray instance (``address=None``) or joins a cluster
    (``"head:6379"``, ``"ray://head:10001"``), deploys ``app_name`` (an older deployment of
    that name is replaced) with handles only (no HTTP proxy) and waits until it answers.
    Joining is bounded: before ``ray.init`` (whose own GCS retries run for minutes)
    `check_reachable` opens a TCP connection to the address's host:port within
    ``connect_timeout_s``; an address without a port ("auto") is left to Ray. Any failure to
    start, join or deploy raises `RayServeError` (a local instance it started is shut down
    first). `close` (or leaving its ``with`` block) stops the client's two executor threads
    within 2 s; a local instance it started is shut down (Serve, then Ray); a joined cluster
    is only disconnected and keeps serving others; a Ray already running in this process is
    left as it was."""

    def __init__(self, config: RayServeConfig, models: RayModels, owns_ray: bool) -> None:
        self.config, self.models, self.owns_ray = config, models, owns_ray

    @classmethod
    def connect(cls, config: RayServeConfig | None = None) -> RayServe:
        """Starts or joins Ray, deploys the models (replacing an older deployment of the same
        ``app_name``) and waits until they answer. Raises `RayServeError`."""
        config = config or RayServeConfig()
        owns_ray = not ray.is_initialized()  # else the caller's Ray, left as it is
        started_local = owns_ray and config.address is None
        if owns_ray and config.address is not None:
            check_reachable(config.address, config.connect_timeout_s)
        try:
            if owns_ray:
                if config.address is None:
                    ray.init(include_dashboard=False, log_to_driver=False,
                             runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}})
                else:
                    ray.init(address=config.address, log_to_driver=False)
            serve.start(proxy_location="Disabled")
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0
            num_gpus = (GPU_SHARE if has_gpu else 0.0) if config.num_gpus is None \
                else config.num_gpus
            (client_model, replica_model), (client_words, replica_words) = (
                split_wait(c, config.replica_wait_share) for c in (config.model, config.words))
            app = SentimentModels.options(**deployment_options(config, num_gpus)).bind(
                None if config.checkpoint_dir is None else str(config.checkpoint_dir),
                "cuda" if num_gpus > 0 else "cpu", replica_model, replica_words)
            handle = serve.run(app, name=config.app_name, route_prefix=None)
        except Exception as exc:  # Ray's own errors are many; the caller gets one kind
            log.debug("ray serve failed", exc_info=True)
            if started_local:
                _shutdown_local()
            elif owns_ray:
                ray.shutdown()
            raise RayServeError(f"cannot serve the models on Ray: {type(exc).__name__}: "
                                f"{exc}") from exc
        models = RayModels(handle, client_model, client_words)
        log.info("Ray Serve: %s on %s (%s)", *models.describe(),
                 "local instance" if started_local else config.address)
        return cls(config, models, owns_ray)

    def close(self) -> None:
        """Stops the client; a local instance it started is shut down (Serve, then Ray), a
        joined cluster keeps the deployment and is only disconnected; a Ray that was already
        running in this process is left as it was."""
        if not self.models.close():
            log.warning("the Ray client's batching threads did not stop within 2 s")
        if self.owns_ray and self.config.address is None:
            _shutdown_local()
        elif self.owns_ray:
            ray.shutdown()

    def __enter__(self) -> RayServe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shutdown_local() -> None:
    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def _pythonpath() -> str:
    """This project first, then whatever the driver had."""
    return os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
