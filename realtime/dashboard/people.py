"""Per-person sessions of the dashboard: each visitor who streams their own capture gets a
session of their own, which only they see and export.

`PersonalSessions` maps an *owner* (the logged-in user with ``--auth``, else the browser
tab's Gradio session) to a `PersonalSession`: a `Dashboard` of its own (its pipeline on the
shared engine and, when given, the shared batching executor; its log; its recorder) and an
export folder of its own. Owners are never shown anywhere; the operator page sees sessions
through `health` only (a random id, source kind, running time, updates/s, latency p95,
drops, error).

* A session starts only with the person's consent (`open` takes a `ConsentRecord`).
* Past ``max_sessions`` a new session is refused with
  `realtime.serving.sessions.SessionRefused`; an owner opening again replaces their own.
* A session with no input for ``idle_timeout_s`` (a tab closed, a camera that stopped) is
  stopped and forgotten by `reap_idle` (every ``reap_every_s`` on the thread `start_reaper`
  starts and `close_all` stops). Its log file stays until retention deletes it.
* `withdraw` stops the session and deletes its log, its file and its exports; `delete_data`
  deletes them while the session goes on with an empty log.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from realtime.dashboard.controller import Dashboard, PipelineFactory, SourceChoice
from realtime.personal.consent import ConsentRecord
from realtime.serving.sessions import SessionHealth, SessionRefused, idle_s, pipeline_health

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonalSession:
    """One person's session: ``id`` (random, what the operator sees), its ``dashboard``
    and the folder its exports go to."""

    id: str
    kind: str
    dashboard: Dashboard
    export_dir: Path


class PersonalSessions:
    """See the module doc. Thread-safe."""

    def __init__(self, factory: PipelineFactory, *, export_root: Path,
                 log_dir: Path | None = None, max_sessions: int = 8,
                 idle_timeout_s: float = 120.0) -> None:
        if max_sessions < 1 or idle_timeout_s <= 0:
            raise ValueError("max_sessions must be >= 1 and idle_timeout_s > 0")
        self.factory, self.export_root, self.log_dir = factory, export_root, log_dir
        self.max_sessions, self.idle_timeout_s = max_sessions, idle_timeout_s
        self._by_owner: dict[str, PersonalSession] = {}
        self._lock = threading.Lock()
        self._stop_reaper = threading.Event()
        self._reaper: threading.Thread | None = None
        self.reaped = 0

    def open(self, owner: str, choice: SourceChoice, consent: ConsentRecord) -> PersonalSession:
        """Starts ``owner``'s session on ``choice`` (replacing their previous one). Raises
        `SessionRefused` past ``max_sessions``, and the source's error when it cannot
        start; either way nothing is left running for this owner but what ran before."""
        with self._lock:
            others = len(self._by_owner) - (owner in self._by_owner)
            if others >= self.max_sessions:
                raise SessionRefused(
                    f"{others} personal sessions are running, the most this server takes "
                    f"(--max-sessions {self.max_sessions}); try again when one has ended")
        dashboard = Dashboard(self.factory(choice), choice, self.factory, log_dir=self.log_dir)
        dashboard.start_session(consent=consent)
        session_id = uuid.uuid4().hex[:12]
        session = PersonalSession(session_id, choice.kind, dashboard,
                                  self.export_root / session_id)
        with self._lock:
            previous = self._by_owner.get(owner)
            self._by_owner[owner] = session
        if previous is not None:
            self._end(previous)
        log.info("personal session %s started (%s)", session_id, choice.kind)
        return session

    def get(self, owner: str) -> PersonalSession | None:
        with self._lock:
            return self._by_owner.get(owner)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_owner)

    def close(self, owner: str) -> str:
        """Stops and forgets ``owner``'s session (its log file stays until retention)."""
        session = self._pop(owner)
        if session is None:
            return "No session was running"
        message = session.dashboard.stop_session()
        self._end(session)
        return message

    def withdraw(self, owner: str) -> str:
        """Consent withdrawn: stops ``owner``'s session and deletes its log, file and
        exports."""
        session = self._pop(owner)
        if session is None:
            return "No session of yours was running; nothing is kept"
        message = session.dashboard.withdraw()
        shutil.rmtree(session.export_dir, ignore_errors=True)
        self._end(session)
        return message

    def delete_data(self, owner: str) -> str:
        """Deletes ``owner``'s log, file and exports now; the session goes on."""
        session = self.get(owner)
        if session is None:
            return "No session of yours is kept here"
        shutil.rmtree(session.export_dir, ignore_errors=True)
        return session.dashboard.delete_data()

    def health(self) -> list[SessionHealth]:
        with self._lock:
            sessions = list(self._by_owner.values())
        return [session_health(s.id, s.kind, s.dashboard) for s in sessions]

    def reap_idle(self) -> list[str]:
        """Stops every session with no input for ``idle_timeout_s``; returns their ids."""
        with self._lock:
            idle = [(owner, s) for owner, s in self._by_owner.items()
                    if idle_s(s.dashboard.pipeline) > self.idle_timeout_s]
        for owner, session in idle:
            log.info("personal session %s idle for over %.0f s: closing it", session.id,
                     self.idle_timeout_s)
            with self._lock:
                if self._by_owner.get(owner) is not session:
                    continue  # replaced or closed meanwhile
                del self._by_owner[owner]
            session.dashboard.stop_session()
            self._end(session)
            self.reaped += 1
        return [s.id for _, s in idle]

    def start_reaper(self, reap_every_s: float = 5.0) -> None:
        def run() -> None:
            while not self._stop_reaper.wait(reap_every_s):
                try:
                    self.reap_idle()
                except Exception:  # noqa: BLE001 - the reaper must keep reaping
                    log.exception("reaping idle sessions failed")

        self._reaper = threading.Thread(target=run, name="personal-reaper", daemon=True)
        self._reaper.start()

    def close_all(self, timeout_s: float = 2.0) -> None:
        """Stops the reaper and every session (their log files stay)."""
        self._stop_reaper.set()
        if self._reaper is not None:
            self._reaper.join(timeout_s)
        with self._lock:
            sessions, self._by_owner = list(self._by_owner.values()), {}
        for session in sessions:
            session.dashboard.stop_session()
            self._end(session)

    def _pop(self, owner: str) -> PersonalSession | None:
        with self._lock:
            return self._by_owner.pop(owner, None)

    @staticmethod
    def _end(session: PersonalSession) -> None:
        session.dashboard.close()
        session.dashboard.log.close()


def session_health(session_id: str, kind: str, dashboard: Dashboard) -> SessionHealth:
    """The operator's view of a dashboard's session; the error is the dashboard's (which
    includes its recorder's)."""
    health = pipeline_health(session_id, kind, dashboard.pipeline)
    return replace(health, error=dashboard.status().error,
                   running=health.running and dashboard.session_active)


class PageRequest(Protocol):
    """What `PageViews` reads of a page's request (a ``gradio.Request``)."""

    username: str | None
    session_hash: str | None


@dataclass(frozen=True)
class PageViews:
    """Which session a page shows, exports and feeds: its own (in ``people``), else the
    shared presenter view. ``per_user`` (--auth): a page's own session is its login's, so
    the same user's tabs share it and no other user reaches it; else it is the tab's."""

    presenter: Dashboard
    presenter_exports: Path
    people: PersonalSessions
    per_user: bool = False

    def owner(self, request: PageRequest | None) -> str | None:
        """The page's owner key (never shown): ``user:<name>`` or ``tab:<session>``;
        None when the request says neither (then it has no session of its own)."""
        if request is None:
            return None
        if self.per_user:
            return f"user:{request.username}" if request.username else None
        return f"tab:{request.session_hash}" if request.session_hash else None

    def personal(self, request: PageRequest | None) -> PersonalSession | None:
        who = self.owner(request)
        return None if who is None else self.people.get(who)

    def view(self, request: PageRequest | None) -> tuple[Dashboard, Path]:
        """The dashboard the page shows and the folder its exports go to."""
        mine = self.personal(request)
        if mine is not None:
            return mine.dashboard, mine.export_dir
        return self.presenter, self.presenter_exports
