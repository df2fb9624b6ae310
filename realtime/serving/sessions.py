"""The one session registry of a process: each session is its own `Pipeline` (its source,
streaming stages, window and store) on the shared, once-loaded `Engine`, optionally with the
sentiment model and the word encoder run for all of them in batches
(`realtime.serving.executor.SharedModels`). The command line's sources
(`python -m realtime`) and the dashboard's visitors (`realtime.dashboard.people`, which adds
owner -> session and consent on top) are sessions of it.

`SessionManager` creates, lists and stops sessions by id:
* past ``max_sessions`` a new session is refused with `SessionRefused` (the message says
  how many run and how to raise the limit); one that `open` starts in place of another
  (``replaces``) does not count that one;
* a session that received no input for ``idle_timeout_s`` (its own session seconds, from its
  own clock) is stopped and forgotten by `reap_idle`, which a reaper thread calls every
  ``reap_every_s`` once `start_reaper` ran (`stop_all` stops it); an exception while reaping
  is logged and the reaper goes on;
* a session's failure (a bad file, a camera gone, an exception in one of its threads) ends
  that session only: its pipeline records the error, `health` shows it, and the other
  sessions go on; a session that cannot start is refused at `create`/`open` and never listed.

A session is anything with the `Session` surface: `create` makes a `PipelineSession` (a bare
pipeline); the dashboard registers its own (a `Dashboard` with its log and recorder).

When a session stops, the heap pages its threads and buffers freed are handed back to the
system (`realtime.heap.trim_heap`, glibc's ``malloc_trim``; ``trim_on_stop``): without it
they stay in the process as scattered free space and a server's RSS climbs with every
session that comes and goes (benchmarks/results/soak_notes.md, `benchmarks.sessions_churn`).

`health` gives what an operator may see, and nothing more: id, source kind, running time,
updates per second, latency p95, drops and the error with every path and file name taken
out (`scrub_error`: a file is often named after the person in it); never a sentiment, a word
or a signal.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from realtime import heap
from realtime.engine import Engine
from realtime.pipeline import ModelCalls, Pipeline
from realtime.sources.base import Source
from realtime.types import Prediction

log = logging.getLogger(__name__)


class SessionRefused(RuntimeError):
    """A session cannot be created (the limit is reached) or is not known."""


@dataclass(frozen=True)
class SessionHealth:
    """One session as the operator page shows it. Times in seconds, latency in ms; error:
    scrubbed of paths and file names (`scrub_error`); degraded: what the session cut to keep
    up under load, in words (`realtime.pipeline.PipelineStatus.degraded`; None: nothing)."""

    id: str
    source_kind: str
    running_s: float
    updates_per_s: float
    latency_p95_ms: float | None
    drops: int
    error: str | None
    running: bool
    degraded: str | None = None


class Session(Protocol):
    """What the registry needs of a session: its pipeline (for idleness and health), the
    error to show, whether it runs, and a stop that returns True when its threads joined."""

    @property
    def pipeline(self) -> Pipeline: ...

    def error(self) -> str | None: ...

    def running(self) -> bool: ...

    def stop(self, timeout_s: float = 2.0) -> bool: ...


@dataclass(frozen=True)
class PipelineSession:
    """A bare pipeline as a session (the command line's sources, `SessionManager.create`)."""

    pipeline: Pipeline

    def error(self) -> str | None:
        return self.pipeline.status().error

    def running(self) -> bool:
        return self.pipeline.status().running

    def stop(self, timeout_s: float = 2.0) -> bool:
        return self.pipeline.stop(timeout_s)


@dataclass
class _Entry:
    id: str
    session: Session
    kind: str


class SessionManager:
    """Sessions on one engine (see the module doc). Thread-safe. ``engine``, ``shared`` (who
    runs the sentiment model and word encoder: `SharedModels`, the Ray client; None: the
    engine) and ``hop_s`` are what `create` builds its pipelines with (``engine`` None:
    only `open` is used); ``noun`` names the sessions in the refusal message."""

    def __init__(self, engine: Engine | None = None, *, max_sessions: int = 16,
                 idle_timeout_s: float = 300.0, shared: ModelCalls | None = None,
                 hop_s: float = 0.2, trim_on_stop: bool = True, noun: str = "sessions") -> None:
        if max_sessions < 1 or idle_timeout_s <= 0:
            raise ValueError("max_sessions must be >= 1 and idle_timeout_s > 0")
        self.engine, self.shared, self.hop_s = engine, shared, hop_s
        self.trim_on_stop, self.noun = trim_on_stop, noun
        self.max_sessions, self.idle_timeout_s = max_sessions, idle_timeout_s
        self._sessions: dict[str, _Entry] = {}
        self._starting = 0  # slots held by sessions being started (outside the lock)
        self._lock = threading.Lock()
        self._stop_reaper = threading.Event()
        self._reaper: threading.Thread | None = None
        self.reaped = 0  # sessions closed for idleness so far

    def open(self, start: Callable[[], Session], kind: str, *,
             replaces: str | None = None) -> str:
        """Calls ``start`` (which builds and starts a session) and registers what it returns
        under a new random id, which it returns. ``replaces``: the id of a session this one
        takes over from (not counted against the limit, stopped once the new one runs).
        Raises `SessionRefused` past ``max_sessions`` and whatever ``start`` raises; either
        way nothing new is left registered."""
        with self._lock:
            running = len(self._sessions) + self._starting - (replaces in self._sessions)
            if running >= self.max_sessions:
                raise SessionRefused(
                    f"{running} {self.noun} are running, the most this server takes "
                    f"(--max-sessions {self.max_sessions}); try again when one has ended")
            self._starting += 1
        try:
            session = start()
        finally:
            with self._lock:
                self._starting -= 1
        session_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._sessions[session_id] = _Entry(session_id, session, kind)
        if replaces is not None:
            with contextlib.suppress(SessionRefused):  # stopped meanwhile
                self.stop(replaces)
        log.info("session %s started (%s)", session_id, kind)
        return session_id

    def create(self, source: Source, *, source_kind: str = "file",
               on_prediction: Callable[[Prediction], None] | None = None,
               start: bool = True) -> str:
        """Starts a pipeline session on ``source`` (on ``engine``, with ``shared``) and
        returns its id. Raises `SessionRefused` past ``max_sessions``, and the source's own
        error (`SourceError`) when it cannot start; either way nothing is left running.
        start=False: the pipeline is registered unstarted, for the caller to run (a
        deterministic replay, `Pipeline.run_to_end`)."""
        if self.engine is None:
            raise ValueError("this registry has no engine to build pipelines with")

        def build() -> Session:
            pipeline = Pipeline(source, self.engine, hop_s=self.hop_s,
                                on_prediction=on_prediction, models=self.shared)
            try:
                if start:
                    pipeline.start()
            except Exception:
                pipeline.stop()
                raise
            return PipelineSession(pipeline)

        return self.open(build, source_kind)

    def session(self, session_id: str) -> Session:
        with self._lock:
            entry = self._sessions.get(session_id)
        if entry is None:
            raise SessionRefused(f"no session {session_id!r}")
        return entry.session

    def pipeline(self, session_id: str) -> Pipeline:
        return self.session(session_id).pipeline

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        with self._lock:
            return session_id in self._sessions

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def stop(self, session_id: str, timeout_s: float = 2.0) -> bool:
        """Stops and forgets the session, then hands the freed heap back
        (``trim_on_stop``); True when its threads joined in time. Unknown ids raise
        `SessionRefused`."""
        with self._lock:
            entry = self._sessions.pop(session_id, None)
        if entry is None:
            raise SessionRefused(f"no session {session_id!r}")
        joined = entry.session.stop(timeout_s)
        if not joined:
            log.warning("session %s: some threads did not stop in time", session_id)
        if self.trim_on_stop:
            heap.trim_heap()
        log.info("session %s stopped", session_id)
        return joined

    def health(self) -> list[SessionHealth]:
        with self._lock:
            entries = list(self._sessions.values())
        return [session_health(e.id, e.kind, e.session) for e in entries]

    def reap_idle(self) -> list[str]:
        """Stops every session whose newest input is older than ``idle_timeout_s`` (or that
        has had none for that long since it started); returns their ids."""
        with self._lock:
            entries = list(self._sessions.values())
        idle = [e.id for e in entries if idle_s(e.session.pipeline) > self.idle_timeout_s]
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
        """A thread that calls `reap_idle` every ``reap_every_s`` until `stop_all`; an
        exception while reaping is logged and the next round goes on."""
        def run() -> None:
            while not self._stop_reaper.wait(reap_every_s):
                try:
                    self.reap_idle()
                except Exception:  # noqa: BLE001 - the reaper must keep reaping
                    log.exception("reaping idle sessions failed")

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
                joined = self.stop(session_id, timeout_s) and joined
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


def session_health(session_id: str, source_kind: str, session: Session) -> SessionHealth:
    """What an operator may see of the session ``session_id``."""
    pipeline = session.pipeline
    status = pipeline.status()
    p95 = pipeline.stats.percentiles("latency_ms.total")
    return SessionHealth(
        id=session_id, source_kind=source_kind,
        running_s=round(pipeline.clock.now_s() - pipeline.source.started_at_s, 1),
        updates_per_s=round(status.updates_per_s, 2),
        latency_p95_ms=None if p95 is None else round(p95.p95, 1),
        drops=sum(status.drops.values()),
        error=scrub_error(session.error(), known=_source_names(pipeline.source)),
        running=session.running(), degraded=status.degraded)


def _source_names(source: object) -> tuple[str, ...]:
    """The file names a source's errors may quote: its path's, and its name's after the
    kind (``file:NAME``)."""
    names = [str(getattr(source, "name", "")).partition(":")[2]]
    path = getattr(source, "path", None)
    if path is not None:
        names += [str(path), Path(path).name]
    return tuple(n for n in names if n)


# a path: anything with a / or \ in it, up to a colon, a quote or the end of the line (a
# file name may hold spaces); then a bare file name with an extension
_PATH = re.compile(r"""(?:[A-Za-z]:)?[^\s:'"\\/]*(?:[\\/][^\\/:'"\n]+)+[\\/]?""")
_FILE = re.compile(r"""[^\s:'"\\/]+\.[A-Za-z][A-Za-z0-9]{1,4}\b""")


def scrub_error(message: str | None, known: tuple[str, ...] = ()) -> str | None:
    """``message`` with every path and file name replaced by ``<file>``: the operator sees
    what went wrong, never whose recording it was. ``known``: names to take out as well,
    whatever they look like (a session's own file name, which may hold spaces)."""
    if message is None:
        return None
    for name in sorted(known, key=len, reverse=True):
        message = message.replace(name, "<file>")
    return _FILE.sub("<file>", _PATH.sub("<file>", message))
