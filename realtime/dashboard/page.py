"""The dashboard page's handlers, as plain methods: `PageController` (no Gradio here).

`realtime.dashboard.layout` builds the page and binds each event to one method; the
methods take plain values (the components' values) and a `PageRequest` (whose login or tab
says which person's session the page shows), and return plain values: strings (a message,
panel HTML), paths, or the small dataclasses below, which the layout turns into component
updates. A field that is None means "leave that component as it is".

Who is shown what: a visitor streaming their own browser (or, with logins, this machine's
camera) gets a session of their own in `PersonalSessions`; everything else runs in the
shared presenter view (`Dashboard`). Capture of a person starts only with consent
(`realtime.personal.consent`). The presenter's session belongs to the page that started it
(its owner key: the tab, or the login with ``--auth``): only that page stops it, withdraws
or deletes its data, or replaces a capture of a person running there; another page is told
so and nothing changes (a session the server started belongs to no page). Handlers run on
Gradio's worker threads (``on_tick`` on its event loop); the controller keeps no per-page
state itself (that is `PageState`, one per browser tab) besides the presenter's owner.

Personal calibration (`calibrator`) acts on the page's own session: a page with a session
of its own records its own windows and loads its own personal models (`OwnerCalibrators`:
its model, its folder); a page without one uses the presenter view's calibration, which,
while it captures a person, only the page that started it may use.

Nothing of a person is left on disk after they withdraw or close their tab: their exports
are deleted (they are written inside Gradio's cache folder, so Gradio serves them where they
are and keeps no copy: `realtime.dashboard.gradio6_internals.cache_folder`), and microphone
chunks Gradio uploaded but never handed over are swept (`ChunkStore.sweep`, twice
``sweep_wait_s`` apart, sparing another page's chunk in flight; and every `PRUNE_EVERY_S`
while any page is open).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from realtime.calibration.controller import CalibrationError, Calibrator, OwnerCalibrators
from realtime.clock import perf_s, wall_time_iso
from realtime.dashboard.controller import SOURCE_KINDS, SOURCE_LABELS, Dashboard, SourceChoice
from realtime.dashboard.html import health_table
from realtime.dashboard.mic_chunks import ChunkStore
from realtime.dashboard.panels import (
    FAST_PANELS,
    SLOW_PANELS,
    RefreshMeter,
    SharedPanels,
    ViewSettings,
    export_log,
    fast_panels,
    slow_panels,
)
from realtime.dashboard.people import PageRequest, PageViews, PersonalSessions, session_health
from realtime.personal.consent import (
    ConsentTerms,
    consent_record,
    consent_text,
    needs_consent,
)
from realtime.personal.retention import DEFAULT_RETENTION_DAYS

log = logging.getLogger(__name__)

FAST_TICK_S = 0.18  # 5.6 Hz asked, so jitter and a busy CPU still leave >= 5 Hz
SLOW_TICK_S = 0.5
OPERATOR_TICK_S = 1.0
PRUNE_EVERY_S = 10.0  # how often a live page's tick frees the sessions of closed pages
MIC_SWEEP_WAIT_S = 1.0  # after a recording stops: two sweeps this far apart


class PageState:
    """Per browser tab: its refresh meter, when the slow panels are due, and the HTML it
    shows."""

    def __init__(self) -> None:
        self.meter = RefreshMeter()
        self._slow_due_s = 0.0
        self.shown: dict[str, str] = {}

    def slow_due(self, now_s: float) -> bool:
        """Whether the slow panels are due at ``now_s``; when they are, the next time is
        set `SLOW_TICK_S` later."""
        if now_s < self._slow_due_s:
            return False
        self._slow_due_s = now_s + SLOW_TICK_S
        return True

    def outputs(self, panels: dict[str, str], order: Sequence[str]) -> list[str]:
        """The HTML of the panels named in ``order``: as computed this time, else what the
        page already shows (an unchanged value changes nothing on the page). Never a
        ``gr.skip()``: Gradio builds a new component for each skipped output (0.6 ms of
        CPU, holding the GIL), where the same string again costs it nothing."""
        for name in order:
            html = panels.get(name)
            if html is not None:
                self.shown[name] = html
        return [self.shown.get(name, "") for name in order]


def view_settings(threshold, hold_s, span_min, valence_thr=-0.3,
                  arousal_thr=1.0) -> ViewSettings:
    """The page's sliders (the timeline's span in minutes) as `ViewSettings`."""
    return ViewSettings(threshold=float(threshold), hold_s=float(hold_s),
                        span_s=float(span_min) * 60.0, valence_threshold=float(valence_thr),
                        arousal_threshold=float(arousal_thr))


def one_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message (a tool's whole output, e.g. FFmpeg's
    build banner, stays in the server log), or its type's name when it says nothing."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


@dataclass(frozen=True)
class PageSetup:
    """What the page shows when it is built: the source ``kind`` selected, the ``kinds``
    offered (label, kind), the presenter's replayed file (``player_path``), the device
    fields, looping, and the consent ``notice``."""

    kind: str
    kinds: tuple[tuple[str, str], ...]
    player_path: Path | None
    camera: int
    mic: str
    loop: bool
    notice: str


@dataclass(frozen=True)
class SourceFields:
    """Which source fields are visible for a source kind."""

    upload: bool
    devices: bool
    loop: bool
    consent: bool


@dataclass(frozen=True)
class PlayerView:
    """The recording player: the file it plays (None: empty and hidden)."""

    path: Path | None

    @property
    def visible(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class StartResult:
    """The answer to "Start session": a ``message``; the player and whether the browser
    capture box shows (None: unchanged)."""

    message: str
    player: PlayerView | None = None
    browser_box: bool | None = None


class PageController:
    """The page's handlers over the presenter's ``dashboard`` and the visitors' own
    sessions (``people``). ``export_dir``: the presenter's exports (deleted on withdrawal
    or deletion; never a folder that holds the visitors' exports: ValueError);
    ``terms``: the consent terms shown and recorded; ``chunks``: the microphone chunks
    Gradio uploads; ``recording``: the bundled recording (None: absent, the "recording"
    source is not offered); ``sweep_wait_s``: how far apart the two chunk sweeps after a
    withdrawal or a closed tab are (blocking that handler); ``presenter_calibrator``: the
    presenter view's calibration, ``calibrators``: each visitor's (the owners of
    ``people``'s sessions; None: no calibration)."""

    def __init__(self, dashboard: Dashboard, people: PersonalSessions, export_dir: Path,
                 chunks: ChunkStore, terms: ConsentTerms | None = None,
                 recording: Path | None = None,
                 sweep_wait_s: float = MIC_SWEEP_WAIT_S,
                 presenter_calibrator: Calibrator | None = None,
                 calibrators: OwnerCalibrators | None = None) -> None:
        if Path(people.export_root).resolve().is_relative_to(Path(export_dir).resolve()):
            raise ValueError(f"the presenter's exports ({export_dir}) must not hold the "
                             f"visitors' ({people.export_root}): deleting them would delete "
                             "everyone's")
        self.terms = terms or ConsentTerms(DEFAULT_RETENTION_DAYS, None)
        self.notice = consent_text(self.terms)
        self.views = PageViews(dashboard, export_dir, people, per_user=self.terms.per_user)
        self.chunks = chunks
        self.recording = recording
        self.sweep_wait_s = sweep_wait_s
        self.shared = SharedPanels()  # pages showing the same session share its panels
        self._prune_due_s = 0.0
        self._presenter_owner: str | None = None  # who started the presenter's session
        self.presenter_calibrator, self.calibrators = presenter_calibrator, calibrators

    @property
    def presenter(self) -> Dashboard:
        return self.views.presenter

    @property
    def people(self) -> PersonalSessions:
        return self.views.people

    def setup(self) -> PageSetup:
        choice = self.presenter.choice
        kinds = tuple((SOURCE_LABELS[k], k) for k in SOURCE_KINDS
                      if k != "recording" or self.recording is not None)
        return PageSetup(
            kind=choice.kind if choice is not None else "recording", kinds=kinds,
            player_path=choice.path if choice is not None and choice.replays_file else None,
            camera=choice.camera if choice is not None and choice.camera is not None else 0,
            mic=(choice.mic or "") if choice is not None else "",
            loop=bool(choice.loop) if choice is not None else True, notice=self.notice)

    # -- the panels ---------------------------------------------------------------------
    def on_tick(self, state: PageState, settings: ViewSettings, request: PageRequest | None,
                free_closed_pages: Callable[[], object] | None = None) -> list[str]:
        """The fast panels, and every `SLOW_TICK_S` the timeline and masks (`FAST_PANELS`
        then `SLOW_PANELS`), of this page's own session, else the presenter's. Every
        `PRUNE_EVERY_S` it calls ``free_closed_pages`` and sweeps the microphone chunks
        never handed over. A few ms; never waits for a switch."""
        now_s = perf_s()
        if now_s >= self._prune_due_s:
            self._prune_due_s = now_s + PRUNE_EVERY_S
            if free_closed_pages is not None:
                free_closed_pages()
            self.chunks.sweep(keep=self._replayed())  # chunks never handed over
        state.meter.tick(now_s)
        shown, _ = self.views.view(request)
        panels = fast_panels(shown, settings, state.meter, self.shared)
        if state.slow_due(now_s):
            panels.update(slow_panels(shown, settings, self.shared))
        return state.outputs(panels, [*FAST_PANELS, *SLOW_PANELS])

    def operator_html(self) -> str:
        """The operator page's table: every session's health, never its content."""
        shown = self.presenter.choice.kind if self.presenter.choice is not None else "none"
        return health_table([session_health("presenter", shown, self.presenter),
                             *self.people.health()])

    # -- personal calibration ------------------------------------------------------------
    def calibrator(self, request: PageRequest | None) -> Calibrator:
        """The calibration this page acts on: its own session's (recording that session's
        windows, loading into that session's model, listing that owner's files), else the
        presenter view's. CalibrationError (the message to show) when there is none, or the
        presenter view captures a person and this page did not start it."""
        who = self.views.owner(request)
        if self.views.personal(request) is not None and self.calibrators is not None:
            return self.calibrators.get(who)
        if self.presenter_calibrator is None:
            raise CalibrationError("Calibration is not available here.")
        if self.presenter.consent is not None:
            refusal = self._not_the_presenters_owner(who, "calibrate on it")
            if refusal is not None:
                raise CalibrationError(refusal.replace("**", "") + " Start a session of your "
                                       "own (Browser webcam) to calibrate on yourself.")
        return self.presenter_calibrator

    def calibration_live(self, request: PageRequest | None) -> bool:
        """Whether the session this page shows is running (its calibration hears it)."""
        shown, _ = self.views.view(request)
        return shown.session_active

    def _forget_calibration(self, who: str | None) -> None:
        """``who``'s calibrator (if any) stops and forgets its unsaved windows."""
        if who is not None and self.calibrators is not None:
            self.calibrators.drop(who)

    # -- the source and the session ------------------------------------------------------
    @staticmethod
    def on_source(kind: str) -> SourceFields:
        return SourceFields(upload=kind == "file", devices=kind == "devices",
                            loop=kind in ("recording", "file"), consent=needs_consent(kind))

    def on_start(self, kind: str, file_path: str | None, camera, mic_text: str | None,
                 loop_on: bool, agreed: bool, request: PageRequest | None) -> StartResult:
        """Capture of a person only with consent; the browser's own capture (and, with
        logins, this machine's devices) as this page's personal session; anything else
        in the shared presenter view. A failure is the message (one line)."""
        consent = None
        if needs_consent(kind):
            if not agreed:
                return StartResult("**Consent first:** read the notice above and tick "
                                   "*I agree*; nothing is captured until you do.")
            consent = consent_record(self.notice, wall_time_iso())
        who = self.views.owner(request)
        mic = (mic_text or "").strip() or None
        personal = kind == "browser" or (kind == "devices" and self.terms.per_user)
        if not personal and self.presenter.session_active \
                and self.presenter.consent is not None:
            refusal = self._not_the_presenters_owner(who, "replace the capture running there")
            if refusal is not None:
                return StartResult(refusal)
        try:
            if personal:
                if who is None:
                    raise RuntimeError("this page cannot hold a session of its own")
                mine = self.people.open(who, SourceChoice(kind, camera=int(camera or 0),
                                                          mic=mic), consent)
                what = ("your browser's webcam and microphone. Allow the camera and press "
                        "record below" if kind == "browser" else
                        "this machine's camera and microphone")
                return StartResult(f"Session started (session {mine.id}; only you see "
                                   f"it): {what}.", PlayerView(None), kind == "browser")
            path = (self.recording if kind == "recording" else
                    Path(file_path) if kind == "file" and file_path else None)
            new = SourceChoice(kind=kind, path=path, camera=int(camera or 0), mic=mic,
                               loop=bool(loop_on) and kind in ("recording", "file"))
            message = self.presenter.start_session(new, consent)
            self._presenter_owner = who
        except Exception as exc:  # noqa: BLE001 - shown to the user, nothing is lost
            log.warning("could not start a %s session: %s: %s", kind, type(exc).__name__, exc)
            return StartResult(f"**Could not start:** {type(exc).__name__}: {one_line(exc)}")
        if who is not None:
            self.people.close(who)  # this page now follows the presenter view
        has_video = getattr(self.presenter.pipeline.source, "has_video", False)
        player = PlayerView(path if path is not None and has_video else None)
        return StartResult(message, player, False)

    def _not_the_presenters_owner(self, who: str | None, action: str) -> str | None:
        """None when the page ``who`` started the presenter's session, else the message
        that says it cannot ``action``."""
        if who is not None and who == self._presenter_owner:
            return None
        return (f"**Not your session:** the presenter view was started "
                f"{'by the server' if self._presenter_owner is None else 'from another page'}"
                f"; only the page that starts a session there can {action}. Nothing changed.")

    def on_stop(self, request: PageRequest | None) -> str:
        """Stops this page's own session, else the presenter's if this page started it."""
        mine = self.views.personal(request)
        if mine is not None:
            return mine.dashboard.stop_session()
        refusal = self._not_the_presenters_owner(self.views.owner(request), "stop it")
        return refusal or self.presenter.stop_session()

    def on_withdraw(self, request: PageRequest | None) -> str:
        """Stops this page's capture of a person and deletes what it kept: its log, file
        and exports, and the microphone chunks left unhandled."""
        try:
            if self.views.personal(request) is not None:
                self._forget_calibration(self.views.owner(request))
                return self.people.withdraw(self.views.owner(request))
            if self.presenter.consent is None:
                return "No capture of a person is running here; nothing personal is kept"
            refusal = self._not_the_presenters_owner(self.views.owner(request),
                                                     "withdraw its consent")
            if refusal is not None:
                return refusal
            message = self.presenter.withdraw()
            if self.presenter_calibrator is not None:
                self.presenter_calibrator.discard()
            shutil.rmtree(self.views.presenter_exports, ignore_errors=True)
            return message
        finally:
            self._sweep_chunks(self.sweep_wait_s)

    def on_delete(self, request: PageRequest | None) -> str:
        """Deletes the data of this page's session (its own, else the presenter's if this
        page started it) now."""
        if self.views.personal(request) is not None:
            return self.people.delete_data(self.views.owner(request))
        refusal = self._not_the_presenters_owner(self.views.owner(request),
                                                 "delete its data")
        if refusal is not None:
            return refusal
        message = self.presenter.delete_data()
        shutil.rmtree(self.views.presenter_exports, ignore_errors=True)
        return message

    def on_export(self, fmt: str, request: PageRequest | None) -> Path:
        """The log of the session this page shows, as ``fmt`` ("csv" or "jsonl")."""
        shown, folder = self.views.view(request)
        return export_log(shown, fmt, folder)

    def on_unload(self, request: PageRequest | None) -> None:
        """A closed tab (without logins) ends its session and deletes what it kept: its
        log, its file and its exports, as *Withdraw consent* does. Without a login the tab
        was the session's only credential, so nobody could reach that data again. A
        presenter capture of a person that this tab started is withdrawn the same way (no
        other page could). The tab's calibrator forgets its unsaved windows (saved
        calibration files stay until retention). With logins the user's session stays until
        it is idle. Microphone chunks left unhandled are swept."""
        who = self.views.owner(request)
        if not self.terms.per_user and who is not None:
            if self.people.get(who) is not None:
                self.people.withdraw(who)
            self._forget_calibration(who)
            if who == self._presenter_owner:
                self._presenter_owner = None
                if self.presenter.consent is not None:
                    self.presenter.withdraw()
                    if self.presenter_calibrator is not None:
                        self.presenter_calibrator.discard()
                    shutil.rmtree(self.views.presenter_exports, ignore_errors=True)
        self._sweep_chunks(self.sweep_wait_s)

    # -- the browser's capture -------------------------------------------------------------
    def on_frame(self, image, request: PageRequest | None) -> None:
        """A webcam frame: only this page's own session takes it."""
        mine = self.views.personal(request)
        if mine is not None:
            mine.dashboard.push_frame(image)

    def _replayed(self) -> Path | None:
        choice = self.presenter.choice
        return choice.path if choice is not None and choice.kind == "file" else None

    def on_audio(self, path: str | None, request: PageRequest | None) -> None:
        """A microphone chunk (an uploaded file), read and deleted at once; it reaches
        only this page's own session. A chunk that is not audio, or is out of bounds
        (`realtime.sources.audio`), is refused: deleted, counted in the page's
        ``browser_audio_lost`` drops and never raised (`ChunkStore.take`)."""
        if not path:
            return
        audio = self.chunks.take(path, keep=self._replayed())
        mine = self.views.personal(request)
        if mine is not None:
            if audio is not None:
                mine.dashboard.push_audio(audio)
            mine.dashboard.set_page_drops("browser_audio_lost", self.chunks.dropped)

    def on_mic_stop(self, request: PageRequest | None,
                    wait_s: float = MIC_SWEEP_WAIT_S) -> None:
        """Chunks of this recording left unhandled go within 2 ``wait_s``."""
        self._sweep_chunks(wait_s)
        mine = self.views.personal(request)
        if mine is not None:
            mine.dashboard.set_page_drops("browser_audio_lost", self.chunks.dropped)

    def _sweep_chunks(self, wait_s: float) -> None:
        """Deletes microphone chunks left unhandled, within 2 ``wait_s`` (two sweeps: only
        files present at both, so another page's chunk in flight is spared)."""
        for _ in range(2):
            threading.Event().wait(wait_s)
            self.chunks.sweep(keep=self._replayed())
