"""Per-person sessions of the dashboard: each visitor who streams their own capture gets a
session of their own, which only they see and export.

`PersonalSessions` maps an *owner* (the logged-in user with ``--auth``, else the browser
tab's Gradio session) to a `PersonalSession`: a `Dashboard` of its own (its pipeline on the
shared engine and, when given, the shared batching executor; its log; its recorder) and an
export folder of its own. The sessions themselves live in the process's one registry
(`realtime.serving.sessions.SessionManager`): the limit, idle reaping, the reaper thread,
memory handed back on stop and health are its; what this layer adds is the owner and
consent. Owners are never shown anywhere; the operator page sees sessions through `health`
only (a random id, source kind, running time, updates/s, latency p95, drops, a scrubbed
error).

* A session starts only with the person's consent (`open` takes a `ConsentRecord`).
* Past the registry's ``max_sessions`` a new session is refused with
  `realtime.serving.sessions.SessionRefused`; an owner opening again replaces their own.
* A session with no input for the registry's ``idle_timeout_s`` (a tab closed, a camera that
  stopped) is stopped and forgotten by its reaper. Its log file stays until retention
  deletes it.
* `withdraw` stops the session and deletes its log, its file and its exports; `delete_data`
  deletes them while the session goes on with an empty log.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from realtime.dashboard.controller import Dashboard, LivePipeline, PipelineFactory, SourceChoice
from realtime.personal.consent import ConsentRecord
from realtime.serving.sessions import SessionHealth, SessionManager, SessionRefused
from realtime.serving.sessions import session_health as registry_health

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DashboardSession:
    """A dashboard's session as the registry sees it (`realtime.serving.sessions.Session`):
    its error is the dashboard's (which includes its recorder's); it runs while its pipeline
    runs and the dashboard's session is active; stopping it stops the session, closes its
    log (the file stays) and deletes ``export_dir`` (the session's exports: once it has
    stopped, however it stopped, idle reaping included, no page can reach them again)."""

    dashboard: Dashboard
    export_dir: Path | None = None

    @property
    def pipeline(self) -> LivePipeline:
        return self.dashboard.pipeline

    def error(self) -> str | None:
        return self.dashboard.status().error

    def running(self) -> bool:
        return self.pipeline.status().running and self.dashboard.session_active

    def stop(self, timeout_s: float = 2.0) -> bool:
        self.dashboard.stop_session()
        self.dashboard.close()
        self.dashboard.log.close()
        if self.export_dir is not None:
            shutil.rmtree(self.export_dir, ignore_errors=True)
        return True


@dataclass(frozen=True)
class PersonalSession:
    """One person's session: ``id`` (random, the registry's, what the operator sees), its
    ``dashboard`` and the folder its exports go to."""

    id: str
    kind: str
    dashboard: Dashboard
    export_dir: Path


class PersonalSessions:
    """See the module doc. Thread-safe. ``registry``: the process's session registry (its
    limit and idle timeout apply); None: one of its own with ``max_sessions`` and
    ``idle_timeout_s`` (else those two are the registry's). ``factory_for``: the factory of
    one owner's pipelines (their own model and calibration,
    `realtime.dashboard.calibration_panel.owner_factories`); None: ``factory`` for all."""

    def __init__(self, factory: PipelineFactory, *, export_root: Path,
                 log_dir: Path | None = None, registry: SessionManager | None = None,
                 max_sessions: int = 8, idle_timeout_s: float = 120.0,
                 factory_for: Callable[[str], PipelineFactory] | None = None) -> None:
        if registry is None:
            registry = SessionManager(max_sessions=max_sessions, idle_timeout_s=idle_timeout_s,
                                      noun="personal sessions")
        self.factory, self.registry, self.factory_for = factory, registry, factory_for
        self.export_root, self.log_dir = export_root, log_dir
        self._by_owner: dict[str, PersonalSession] = {}
        self._lock = threading.Lock()

    def open(self, owner: str, choice: SourceChoice, consent: ConsentRecord) -> PersonalSession:
        """Starts ``owner``'s session on ``choice`` (replacing their previous one). Raises
        `SessionRefused` past the registry's limit, and the source's error when it cannot
        start; either way nothing is left running for this owner but what ran before."""
        previous = self.get(owner)
        factory = self.factory if self.factory_for is None else self.factory_for(owner)
        started: list[Dashboard] = []
        exports = self.export_root / uuid.uuid4().hex[:12]  # a name of its own, never shown

        def start() -> DashboardSession:
            dashboard = Dashboard(factory(choice), choice, factory, log_dir=self.log_dir)
            dashboard.start_session(consent=consent)
            started.append(dashboard)
            return DashboardSession(dashboard, exports)

        session_id = self.registry.open(start, choice.kind,
                                        replaces=None if previous is None else previous.id)
        session = PersonalSession(session_id, choice.kind, started[0], exports)
        with self._lock:
            self._by_owner[owner] = session
        log.info("personal session %s started (%s)", session_id, choice.kind)
        return session

    def get(self, owner: str) -> PersonalSession | None:
        """``owner``'s running session (None: none, or the registry ended it)."""
        with self._lock:
            session = self._by_owner.get(owner)
            if session is not None and session.id not in self.registry:
                del self._by_owner[owner]  # reaped or stopped by the registry
                return None
            return session

    def __len__(self) -> int:
        with self._lock:
            return sum(s.id in self.registry for s in self._by_owner.values())

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
        self._end(session)  # stopping it in the registry deletes its exports
        return message

    def delete_data(self, owner: str) -> str:
        """Deletes ``owner``'s log, file and exports now; the session goes on."""
        session = self.get(owner)
        if session is None:
            return "No session of yours is kept here"
        shutil.rmtree(session.export_dir, ignore_errors=True)
        return session.dashboard.delete_data()

    def health(self) -> list[SessionHealth]:
        """The registry's health of the personal sessions."""
        with self._lock:
            ids = {s.id for s in self._by_owner.values()}
        return [h for h in self.registry.health() if h.id in ids]

    def reap_idle(self) -> list[str]:
        """The registry's `reap_idle` (every session with no input for its idle timeout)."""
        return self.registry.reap_idle()

    def start_reaper(self, reap_every_s: float = 5.0) -> None:
        self.registry.start_reaper(reap_every_s)

    @property
    def reaped(self) -> int:
        return self.registry.reaped

    def close_all(self, timeout_s: float = 2.0) -> None:
        """Stops the registry's reaper and every personal session (their log files stay)."""
        self.registry.stop_all(timeout_s)
        with self._lock:
            self._by_owner = {}

    def _pop(self, owner: str) -> PersonalSession | None:
        session = self.get(owner)
        with self._lock:
            if session is not None and self._by_owner.get(owner) is session:
                del self._by_owner[owner]
        return session

    def _end(self, session: PersonalSession) -> None:
        try:
            self.registry.stop(session.id)
        except SessionRefused:  # reaped meanwhile
            pass


def session_health(session_id: str, kind: str, dashboard: Dashboard) -> SessionHealth:
    """The operator's view of a dashboard's session (the presenter's, which is no
    registry's): as the registry shows its own."""
    return registry_health(session_id, kind, DashboardSession(dashboard))


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
