"""The dashboard's controller: which pipeline runs, the session log it feeds, browser input.

`Dashboard` owns the current `Pipeline` (one per source; switching the source builds a new
pipeline on the same loaded `Engine`, so no model is loaded twice) and the `SessionLog`. A
session starts with `start_session` and ends with `stop_session`; while it runs, a recorder
thread copies every newly published prediction from the pipeline's store into the log (so
nothing is lost when no page is open) and, for a recording with ``loop`` on, starts it again
when it ends. The web handlers only read: the latest prediction from the store, the log and
the status. No model work happens here.

A session that captures a person starts with their consent (`start_session(choice,
consent)`); with a ``log_dir`` its log is also written there as it grows (one file per
session). `withdraw` stops the session and erases its log and file; `delete_data` erases them
and, when a session runs, starts an empty log under the same consent.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from realtime.clock import wall_time_iso
from realtime.dashboard.session_log import SessionLog
from realtime.personal.consent import ConsentRecord, needs_consent
from realtime.store import PredictionStore
from realtime.types import Prediction

if TYPE_CHECKING:
    from realtime.engine import Engine
    from realtime.pipeline import ModelCalls, PipelineStatus
    from realtime.sources import Source, SourceSpec

log = logging.getLogger(__name__)

SOURCE_KINDS = ("recording", "file", "devices", "browser")
SOURCE_LABELS = {
    "recording": "Bundled recording",
    "file": "Uploaded file",
    "devices": "This machine's camera + microphone",
    "browser": "Browser webcam + microphone",
}


@dataclass(frozen=True)
class SourceChoice:
    """What to listen to: a recording or file (``path``), local devices (``camera`` index,
    ``mic`` name; None = the default device) or the page's own webcam and microphone."""

    kind: str
    path: Path | None = None
    camera: int | None = None
    mic: str | None = None
    loop: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {self.kind!r}; one of {SOURCE_KINDS}")
        if self.kind in ("recording", "file") and self.path is None:
            what = "the bundled recording is missing" if self.kind == "recording" else (
                "upload a video or audio file first")
            raise ValueError(f"no file to play: {what}")

    @property
    def replays_file(self) -> bool:
        return self.kind in ("recording", "file")


class LivePipeline(Protocol):
    """What the dashboard uses of a `realtime.pipeline.Pipeline` (tests pass a fake): the
    store it publishes to, its source (a browser source takes the page's input) and its
    lifecycle."""

    store: PredictionStore
    source: Source

    def start(self) -> None: ...

    def stop(self, timeout_s: float = 2.0) -> bool: ...

    def status(self) -> PipelineStatus: ...


@dataclass(frozen=True)
class DashboardStatus:
    """The pipeline's own status, the error to show (the pipeline's or the session
    recorder's), and what the page has pushed in."""

    pipeline: PipelineStatus
    error: str | None
    session_active: bool
    browser_frames: int
    browser_audio_chunks: int


PipelineFactory = Callable[[SourceChoice], LivePipeline]


def source_spec(choice: SourceChoice) -> SourceSpec:
    """The `realtime.sources.make_source` request for ``choice`` (a device left as None is
    the default one)."""
    from realtime.sources import SourceSpec

    if choice.replays_file:
        return SourceSpec.file(choice.path, paced=True)
    if choice.kind == "browser":
        return SourceSpec.browser()
    return SourceSpec.devices(camera=0 if choice.camera is None else choice.camera,
                              mic="default" if choice.mic is None else choice.mic)


def engine_pipeline_factory(engine: Engine, models: ModelCalls | None = None) -> PipelineFactory:
    """Builds `realtime.pipeline.Pipeline(make_source(source_spec(choice)), engine)`, with
    ``models`` (who runs the sentiment model and word encoder: None, the engine; or e.g. the
    Ray deployment). The face weight W is the engine's (`Engine.face_weight`)."""
    from realtime.pipeline import Pipeline
    from realtime.sources import make_source

    def build(choice: SourceChoice) -> LivePipeline:
        return Pipeline(make_source(source_spec(choice)), engine, models=models)

    return build


class Dashboard:
    def __init__(
        self,
        pipeline: LivePipeline,
        choice: SourceChoice | None = None,
        pipeline_factory: PipelineFactory | None = None,
        sync_interval_s: float = 0.2,
        restart_gap_s: float = 0.5,
        log_dir: Path | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._choice = choice
        self._factory = pipeline_factory
        self._fresh = True  # the given pipeline has not been started by us
        self.sync_interval_s = sync_interval_s
        self.restart_gap_s = restart_gap_s
        self.log = SessionLog()
        self.log_dir = log_dir  # where consented sessions' logs are written (None: nowhere)
        self._consent: ConsentRecord | None = None
        self._lock = threading.RLock()  # the pipeline, the log and the counters
        self._control = threading.Lock()  # start/stop, one at a time
        self._offset_s = 0.0
        self._seen_version = 0
        self._session = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._browser_frames = 0
        self._browser_audio = 0
        self._page_drops: dict[str, int] = {}  # input the page sent that never got here
        self.last_error: str | None = None

    # -- what the panels read ---------------------------------------------------------
    @property
    def pipeline(self) -> LivePipeline:
        return self._pipeline

    @property
    def ui_drops(self) -> Mapping[str, int]:
        """Per kind, how much input the page sent that never reached the pipeline."""
        return MappingProxyType(dict(self._page_drops))

    @property
    def choice(self) -> SourceChoice | None:
        return self._choice

    @property
    def session_active(self) -> bool:
        return self._session

    def latest(self) -> Prediction | None:
        return self._pipeline.store.latest()

    def status(self) -> DashboardStatus:
        st = self._pipeline.status()
        return DashboardStatus(
            pipeline=st, error=st.error or self.last_error, session_active=self._session,
            browser_frames=self._browser_frames, browser_audio_chunks=self._browser_audio,
        )

    def media_time_s(self, latest: Prediction | None) -> float | None:
        """Position in the file being replayed of the latest prediction, for the player."""
        if latest is None or self._choice is None or not self._choice.replays_file:
            return None
        source = getattr(self._pipeline, "source", None)
        return max(0.0, latest.t_end_s - float(getattr(source, "started_at_s", 0.0)))

    # -- session ------------------------------------------------------------------------
    @property
    def consent(self) -> ConsentRecord | None:
        """The consent the running (or last) session started with."""
        return self._consent

    def start_session(self, choice: SourceChoice | None = None,
                      consent: ConsentRecord | None = None) -> str:
        """Starts listening to ``choice`` (None: the current source) and a fresh log.

        A source that captures a person (this machine's devices, the browser) needs
        ``consent``: without it a `PermissionError` is raised and nothing changes.

        The new source is opened and started before the current one is stopped: a file that
        cannot be read, or a device that does not open, raises (with the reason) and leaves
        the running session as it was. When the running session itself may hold the device
        (devices to devices), it is stopped and the switch tried once more; if that fails
        too, the previous source is started again, and if even that fails the status shows
        the error with ``running`` False. Nothing ever reports running while nothing runs.
        """
        if choice is None and consent is None:
            consent = self._consent  # restarting the same source: the same agreement
        target = choice or self._choice
        if target is not None and needs_consent(target.kind) and consent is None:
            raise PermissionError("this source captures a person: agree to the consent "
                                  "notice first")
        with self._control:
            new = None
            if choice is not None or not self._fresh:
                choice = choice or self._choice
                new = self._build(choice)
            if new is not None:
                self._switch_to(new, choice)
            self._stop_recorder()
            with self._lock:
                if new is not None:
                    self._browser_frames = self._browser_audio = 0
                self._fresh = False
                self._session = False
                self.last_error = None
                if not self._pipeline.status().running:
                    self._pipeline.start()
                self._consent = consent
                self._reset_log()
                self._offset_s = 0.0
                self._seen_version = self._pipeline.store.version
                self._session = True
            self._stop.clear()
            self._thread = threading.Thread(target=self._record, name="session-recorder",
                                            daemon=True)
            self._thread.start()
            log.info("session started: %s", self._source_name())
            return f"Session started: {self._source_name()}"

    def _reset_log(self) -> None:
        """A fresh log for the session (under its consent); written to a new file in
        ``log_dir`` when the session has consent and a folder is set."""
        path = None
        if self._consent is not None and self.log_dir is not None:
            stamp = wall_time_iso().replace(":", "-")
            path = self.log_dir / f"session-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
        self.log.reset(started_wall=wall_time_iso(), source=self._source_name(),
                       consent=self._consent, path=path)

    def withdraw(self) -> str:
        """Consent withdrawn: stops the session and erases its log and its file."""
        self.stop_session()
        with self._lock:
            gone = self.log.erase()
            self._consent = None
        log.info("consent withdrawn: session stopped and its log deleted")
        return ("Consent withdrawn: capture stopped and this session's data deleted"
                + (f" ({gone.name})" if gone is not None else ""))

    def delete_data(self) -> str:
        """Erases the session's log and its file now; a running session goes on with an
        empty log (under the same consent)."""
        with self._lock:
            self.sync()
            self.log.erase()
            if self._session:
                self._reset_log()
                self._offset_s = 0.0
                self._seen_version = self._pipeline.store.version
        log.info("session data deleted on request")
        return "This session's data was deleted"

    def _switch_to(self, new: LivePipeline, choice: SourceChoice) -> None:
        """Starts ``new`` and only then stops the running pipeline (see `start_session`)."""
        old, old_choice = self._pipeline, self._choice
        old_running = True
        try:
            new.start()
        except Exception as first:
            if not (old_choice is not None and old_choice.kind == "devices"
                    and choice.kind == "devices" and old.status().running):
                raise  # the running session carries on untouched
            log.info("switch to %s failed (%s); freeing the devices and trying again",
                     choice.kind, first)
            self._stop_recorder()
            with self._lock:
                self.sync()
                self._stop_pipeline(old)
            old_running = False
            try:
                new = self._build(choice)
                new.start()
            except Exception as second:
                self._restart_previous(old_choice, second)
                raise
        with self._lock:
            self.sync()
            if old_running:
                self._stop_pipeline(old)
            self._pipeline, self._choice = new, choice

    def _restart_previous(self, old_choice: SourceChoice, error: Exception) -> None:
        """After a failed switch that had to stop the running session: start the previous
        source again, or leave a stopped pipeline whose status shows why."""
        try:
            again = self._build(old_choice)
            again.start()
        except Exception as exc:  # noqa: BLE001 - shown as the session's error
            log.error("could not restart %s after a failed switch: %s", old_choice.kind, exc)
            with self._lock:
                self._session = False
                self.last_error = f"source switch failed: {error}; previous source: {exc}"
            return
        with self._lock:
            self._pipeline = again
            self._offset_s = self.log.last_t_s + self.restart_gap_s
            self._seen_version = again.store.version
        self._stop.clear()
        self._thread = threading.Thread(target=self._record, name="session-recorder",
                                        daemon=True)
        self._thread.start()

    def _stop_pipeline(self, pipeline: LivePipeline) -> None:
        if not pipeline.stop():
            log.warning("%s did not stop in time; its devices are released when its threads "
                        "end", pipeline.status().source_name)

    def stop_session(self) -> str:
        """Stops the pipeline and the recorder; the log stays for export."""
        with self._control:
            self._stop_recorder()
            with self._lock:
                self._stop_pipeline(self._pipeline)
                self.sync()
                self.log.close()
                was = self._session
                self._session = False
            return (f"Session stopped: {len(self.log)} predictions logged" if was
                    else "No session was running")

    def close(self) -> None:
        self.stop_session()

    def _build(self, choice: SourceChoice | None) -> LivePipeline:
        if choice is None:
            raise ValueError("choose a source first")
        if self._factory is None:
            raise RuntimeError("this dashboard was built without a pipeline factory")
        return self._factory(choice)

    def _source_name(self) -> str:
        try:
            return self._pipeline.status().source_name
        except Exception:  # noqa: BLE001 - a name for the log is not worth failing for
            return ""

    def _stop_recorder(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _record(self) -> None:
        while not self._stop.wait(self.sync_interval_s):
            try:
                self.sync()
                self._maybe_loop()
            except Exception as exc:  # noqa: BLE001 - shown in the status panel, never lost
                log.exception("session recorder failed")
                self.last_error = f"session recorder: {type(exc).__name__}: {exc}"

    def sync(self, blocking: bool = True) -> int:
        """Copies predictions published since the last call into the log; returns how many
        (predictions that left the store's history unseen are counted as dropped rows).
        ``blocking=False``: returns 0 at once while a source switch holds the lock."""
        if not self._lock.acquire(blocking=blocking):
            return 0
        try:
            store = self._pipeline.store
            version = store.version
            new = version - self._seen_version
            if new <= 0 or not self._session:
                self._seen_version = version
                return 0
            history = store.history()
            fresh = history[-new:] if new <= len(history) else history
            self.log.dropped_rows += max(0, new - len(history))
            self._seen_version = version
            return self.log.extend(fresh, self._offset_s, self._source_name())
        finally:
            self._lock.release()

    def _maybe_loop(self) -> None:
        with self._lock:
            choice = self._choice
            if not (self._session and choice is not None and choice.replays_file
                    and choice.loop):
                return
            st = self._pipeline.status()
            if st.running or st.error:
                return
            self.sync()
            new = self._build(choice)
            self._stop_pipeline(self._pipeline)
            self._pipeline = new
            new.start()
            self._offset_s = self.log.last_t_s + self.restart_gap_s
            self._seen_version = new.store.version

    # -- browser input ------------------------------------------------------------------
    def set_page_drops(self, kind: str, count: int) -> None:
        """How much input of ``kind`` the page has lost so far (a running total)."""
        self._page_drops[kind] = int(count)

    def _browser_source(self):
        source = getattr(self._pipeline, "source", None)
        return source if hasattr(source, "push_frame") else None

    def push_frame(self, image) -> bool:
        """A webcam frame from the page; False when the browser is not the source."""
        source = self._browser_source()
        if image is None or source is None:
            return False
        source.push_frame(image)
        self._browser_frames += 1
        return True

    def push_audio(self, audio) -> bool:
        """A ``(rate_hz, samples)`` microphone chunk from the page."""
        source = self._browser_source()
        if audio is None or source is None:
            return False
        rate_hz, samples = audio
        if samples is None or len(samples) == 0:
            return False
        source.push_audio(int(rate_hz), samples)
        self._browser_audio += 1
        return True
