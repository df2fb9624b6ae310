"""Many sessions, one engine: each session is its own `Pipeline` (its source, streaming stages,
window and store) on the shared, once-loaded `Engine`, optionally with the sentiment model and
the word encoder run for all of them in batches (`realtime.serving.executor.SharedModels`).

`SessionManager` creates, lists and stops sessions by id:
* past ``max_sessions`` a new session is refused with `SessionRefused` (the message says
  how many run and how to raise the limit);
* a session that received no input for ``idle_timeout_s`` (its own session seconds, from its
  own clock) is stopped and forgotten by `reap_idle`, which a reaper thread calls every
  ``reap_every_s`` once `start_reaper` ran (`stop_all` stops it);
* a session's failure (a bad file, a camera gone, an exception in one of its threads) ends
  that session only: its pipeline records the error, `health` shows it, and the other
  sessions go on; a source that cannot start is refused at `create` and never listed.

When a session stops, the heap pages its threads and buffers freed are handed back to the
system (`realtime.heap.trim_heap`, glibc's ``malloc_trim``; ``trim_on_stop``): without it
they stay in the process as scattered free space and a server's RSS climbs with every
session that comes and goes (benchmarks/results/soak_notes.md, `benchmarks.sessions_churn`).

`health` gives what an operator may see, and nothing more: id, source kind, running time,
updates per second, latency p95, drops and the error; never a sentiment, a word or a signal.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from realtime import heap
from realtime.engine import Engine
from realtime.pipeline import Pipeline
from realtime.serving.executor import SharedModels
from realtime.sources.base import Source
from realtime.types import Prediction

log = logging.getLogger(__name__)


class SessionRefused(RuntimeError):
    """A session cannot be created (the limit is reached) or is not known."""


@dataclass(frozen=True)
class SessionHealth:
    """One session as the operator page shows it. Times in seconds, latency in ms."""

    id: str
    source_kind: str
    running_s: float
    updates_per_s: float
    latency_p95_ms: float | None
    drops: int
    error: str | None
    running: bool


@dataclass
class _Session:
    id: str
    pipeline: Pipeline
    source_kind: str


class SessionManager:
    """Sessions on one engine (see the module doc). Thread-safe."""

    def __init__(self, engine: Engine, *, max_sessions: int = 16, idle_timeout_s: float = 300.0,
                 shared: SharedModels | None = None, hop_s: float = 0.2,
                 trim_on_stop: bool = True) -> None:
        if max_sessions < 1 or idle_timeout_s <= 0:
            raise ValueError("max_sessions must be >= 1 and idle_timeout_s > 0")
        self.engine, self.shared, self.hop_s = engine, shared, hop_s
        self.trim_on_stop = trim_on_stop
        self.max_sessions, self.idle_timeout_s = max_sessions, idle_timeout_s
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._stop_reaper = threading.Event()
        self._reaper: threading.Thread | None = None
        self.reaped = 0  # sessions closed for idleness so far

    def create(self, source: Source, *, source_kind: str = "file",
               on_prediction: Callable[[Prediction], None] | None = None) -> str:
        """Starts a session on ``source`` and returns its id. Raises `SessionRefused` past
        ``max_sessions``, and the source's own error (`SourceError`) when it cannot start;
        either way nothing is left running."""
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise SessionRefused(
                    f"{len(self._sessions)} sessions are running, the most this server takes "
                    f"(--max-sessions {self.max_sessions}); try again when one has ended")
            session_id = uuid.uuid4().hex[:12]
            pipeline = Pipeline(source, self.engine, hop_s=self.hop_s,
                                on_prediction=on_prediction,
                                models=self.shared)
            self._sessions[session_id] = _Session(session_id, pipeline, source_kind)
        try:
            pipeline.start()
        except Exception:
            with self._lock:
                self._sessions.pop(session_id, None)
            pipeline.stop()
            raise
        log.info("session %s started on %s", session_id, source.name)
        return session_id

    def pipeline(self, session_id: str) -> Pipeline:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise SessionRefused(f"no session {session_id!r}")
        return session.pipeline

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def stop(self, session_id: str) -> bool:
        """Stops and forgets the session; True when its threads joined in time. Unknown ids
        raise `SessionRefused`."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            raise SessionRefused(f"no session {session_id!r}")
        joined = session.pipeline.stop()
        if not joined:
            log.warning("session %s: some threads did not stop in time", session_id)
        if self.trim_on_stop:
            heap.trim_heap()
        log.info("session %s stopped", session_id)
        return joined

    def health(self) -> list[SessionHealth]:
        with self._lock:
            sessions = list(self._sessions.values())
        return [pipeline_health(s.id, s.source_kind, s.pipeline) for s in sessions]

    def reap_idle(self) -> list[str]:
        """Stops every session whose newest input is older than ``idle_timeout_s`` (or that
        has had none for that long since it started); returns their ids."""
        with self._lock:
            sessions = list(self._sessions.values())
        idle = [s.id for s in sessions if idle_s(s.pipeline) > self.idle_timeout_s]
        for session_id in idle:
            log.info("session %s idle for over %.0f s: closing it", session_id,
                     self.idle_timeout_s)
            try:
                self.stop(session_id)
                self.reaped += 1
            except SessionRefused:  # stopped meanwhile
                pass
        return idle

    def start_reaper(self, reap_every_s: float = 1.0) -> None:
        """A thread that calls `reap_idle` every ``reap_every_s`` until `stop_all`."""
        def run() -> None:
            while not self._stop_reaper.wait(reap_every_s):
                self.reap_idle()

        self._reaper = threading.Thread(target=run, name="session-reaper", daemon=True)
        self._reaper.start()

    def stop_all(self, timeout_s: float = 2.0) -> bool:
        """Stops the reaper and every session; True when every thread joined in time."""
        self._stop_reaper.set()
        joined = True
        if self._reaper is not None:
            self._reaper.join(timeout_s)
            joined = not self._reaper.is_alive()
        for session_id in self.ids():
            try:
                joined = self.stop(session_id) and joined
            except SessionRefused:
                pass
        return joined



def idle_s(pipeline: Pipeline) -> float:
    """Seconds (the pipeline's own session time) since its newest input, or since its
    source started when none came yet."""
    now_s = pipeline.clock.now_s()
    last_s = pipeline.last_input_s
    origin_s = pipeline.source.started_at_s
    return now_s - (last_s if not math.isnan(last_s) else origin_s)


def pipeline_health(session_id: str, source_kind: str, pipeline: Pipeline) -> SessionHealth:
    """What an operator may see of the session ``session_id`` running ``pipeline``."""
    status = pipeline.status()
    p95 = pipeline.stats.percentiles("latency_ms.total")
    return SessionHealth(
        id=session_id, source_kind=source_kind,
        running_s=round(pipeline.clock.now_s() - pipeline.source.started_at_s, 1),
        updates_per_s=round(status.updates_per_s, 2),
        latency_p95_ms=None if p95 is None else round(p95.p95, 1),
        drops=sum(status.drops.values()), error=status.error, running=status.running)
