"""The dashboard's personal calibration: record a labelled session, save it, calibrate, load.

A `Calibrator` belongs to one owner: the presenter view, or one visitor (`OwnerCalibrators`,
keyed by the page's owner key, like `realtime.dashboard.people.PersonalSessions`). It hears
only its owner's pipelines and changes only its owner's model:

* `Calibrator.on_window` is a window subscriber of the owner's pipelines
  (`realtime.pipeline.Pipeline.subscribe`; predictions unchanged): while the owner records,
  every window their model sees reaches a `SessionRecorder` with their current label
  (slider, thumbs up / down, or none: unlabelled windows are not kept).
* `save_session` writes the features-only ``.npz`` to the owner's folder: the presenter's is
  ``<user data>/calibration/``, a visitor's ``<user data>/calibration/owner-<hash>/`` (the
  hash of the owner key, never the key; 0700). `start_calibration` runs
  ``python -m models.calibrate`` on it in a subprocess
  (`realtime.calibration.job.CalibrationJob`: progress parsed from its output, a stop path,
  never in the UI thread or the pipeline's) and saves the personal model next to the session.
* `load_model` makes a model live for the owner's sessions only, without restarting their
  pipeline: `DEFAULT` (the process's model, the engine's, with the engine's W) or the name
  of a personal model folder in the owner's own folder (never a path: anything else is
  refused), with its fitted W (its checkpoint meta, `models.checkpoint.face_weight`; 0 when
  it has none). The model is the owner's `SessionModel` (the ``models`` the owner's
  pipelines are built with); the engine's model, which every other session runs, never
  changes.

Nothing here names a server path to the page: messages and the panel name files by their
name only. Every user error raises `CalibrationError` with the message to show; nothing
recorded or running is lost by one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from models import checkpoint
from models.base import InputDims, check_dims
from models.data.sessions import SessionError, read_session
from models.training.calibrate import EPOCHS, MIN_SAMPLES
from realtime.calibration.job import CalibrationJob, PersonalModel, Progress, read_personal
from realtime.calibration.recorder import SessionRecorder
from realtime.clock import wall_time_iso
from realtime.engine import Engine, EngineOutput
from realtime.engine import load_model as load_checkpoint
from realtime.personal.storage import (
    CALIBRATION_DIR,
    MODEL_PREFIX,
    OWNER_PREFIX,
    SESSION_PREFIX,
    private_folder,
    user_data_dir,
)
from realtime.serving.sessions import scrub_error
from realtime.tick import ModelCalls
from realtime.types import Prediction, Window, Word

DEFAULT = "default"

log = logging.getLogger(__name__)


class CalibrationError(RuntimeError):
    """A calibration step the user asked for cannot be done; the message says why."""


def session_stamp() -> str:
    return wall_time_iso().replace(":", "-")


def personal_name(model_name: str, folder: Path) -> str:
    """What the UI calls a personal model: its registry name and its folder's name."""
    return f"{model_name} \u00b7 {folder.name}"


def owner_folder(calibration_dir: Path, owner: str) -> Path:
    """A visitor's calibration folder inside ``calibration_dir``: `OWNER_PREFIX` and the first
    16 hex digits of the owner key's SHA-256 (the key itself, a login or a tab's session, is
    written nowhere)."""
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]
    return calibration_dir / f"{OWNER_PREFIX}{digest}"


class SessionModel:
    """The `realtime.tick.ModelCalls` of one owner's sessions (what their
    `Pipeline(models=...)` calls): the process's shared model, or the owner's own personal
    model once `use` chose one.

    ``engine``: the loaded `Engine` (its device, its model and W: the shared ones);
    ``shared``: what runs the shared model and the word encoder for these sessions (the
    engine itself, the shared batching executor `realtime.serving.executor.SharedModels`,
    or the Ray deployment's client; None: the engine). On the shared model `predict` takes
    the shared path (batched with the other sessions' windows when ``shared`` batches). On a
    personal model `predict` runs it here, unbatched: one forward per window, on an `Engine`
    of its own (the same loaded word encoder and stages; its own model, name, W and lock).
    `encode_words` always takes the shared path. `use` and `use_shared` take effect from the
    next window (any thread); a window in flight answers with the model it started on, named
    with it and its W (`EngineOutput`). The engine is never changed here."""

    def __init__(self, engine: Engine, shared: ModelCalls | None = None) -> None:
        self.engine = engine
        self.shared: ModelCalls = shared if shared is not None else engine
        self._own: Engine | None = None

    @property
    def transcriber(self) -> object | None:
        """The shared path's Whisper batcher (None: it has none), for `Pipeline`."""
        return getattr(self.shared, "transcriber", None)

    @property
    def personal(self) -> bool:
        """Whether a personal model answers (else the shared one)."""
        return self._own is not None

    @property
    def model_name(self) -> str:
        own = self._own
        return (own or self.engine).model_name

    @property
    def face_weight(self) -> float:
        own = self._own
        return (own or self.engine).face_weight

    def use(self, model: torch.nn.Module, name: str, face_weight: float) -> None:
        """``model`` (on the engine's device, in eval mode), called ``name``, with W
        ``face_weight``, answers these sessions' windows from the next one."""
        self._own = replace(self.engine, model=model, model_name=name,
                            face_weight=float(face_weight), model_lock=threading.Lock())

    def use_shared(self) -> None:
        """The shared model (and the engine's W) answers again."""
        self._own = None

    def predict(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> EngineOutput:
        own = self._own
        if own is None:
            return self.shared.predict(text, audio, video)
        return own.predict(text, audio, video)

    def encode_words(self, words: Sequence[Word]) -> np.ndarray:
        return self.shared.encode_words(words)


class Calibrator:
    """See the module doc. ``engine``: the loaded `realtime.engine.Engine` (None: the panel
    says calibration is unavailable); ``base_dir``: the model calibration starts from (the
    default model's folder); ``data_dir``: the user data folder (None:
    `realtime.personal.storage.user_data_dir`); ``owner``: the visitor's owner key (their
    files go to `owner_folder`), None for the presenter view (``<data_dir>/calibration/``);
    ``models``: the owner's `SessionModel`, which their pipelines must be built with (None: a
    new one on the engine); ``live_dir``: the folder of the engine's model when it is not
    ``base_dir`` (a personal model given on the command line: the engine's model is then
    named after it, once, before any session)."""

    def __init__(self, engine: Engine | None, base_dir: Path | None,
                 data_dir: Path | None = None, live_dir: Path | None = None,
                 epochs: int = EPOCHS, max_samples: int = 3000, min_samples: int = MIN_SAMPLES,
                 owner: str | None = None, models: SessionModel | None = None) -> None:
        self.engine = engine
        self.base_dir = base_dir
        root = (data_dir or user_data_dir()) / CALIBRATION_DIR
        self.folder = root if owner is None else owner_folder(root, owner)
        self.epochs = int(epochs)
        self.min_samples = int(min_samples)
        self.recorder = SessionRecorder(max_samples=max_samples)
        self.recording = False
        self.last_session: Path | None = None
        self._saved = 0  # windows in the recorder when it was last saved
        self._job: CalibrationJob | None = None
        self._lock = threading.Lock()
        self.models = models if models is not None or engine is None else SessionModel(engine)
        self.live: str = DEFAULT  # DEFAULT or the folder name of the owner's personal model
        if engine is None:
            return
        if live_dir is not None and base_dir is not None and Path(live_dir).resolve() != Path(
                base_dir).resolve() and read_personal(Path(live_dir)) is not None \
                and engine.model_name == engine.model.config.name:
            engine.swap_model(engine.model, personal_name(engine.model_name, Path(live_dir)))

    @property
    def available(self) -> bool:
        return self.engine is not None

    @property
    def model_name(self) -> str:
        """The name of the model the owner's sessions run ("" without an engine)."""
        return self.models.model_name if self.models is not None else ""

    def _need_engine(self) -> None:
        if self.engine is None:
            raise CalibrationError("calibration needs the live model (no engine here)")

    def on_window(self, window: Window, prediction: Prediction) -> None:
        """A pipeline's window subscriber: while recording, the window the live model was
        given goes to the recorder (with its end time on the pipeline's clock, the model's
        own sentiment, the face valence and the expression)."""
        if self.recording:
            self.recorder.add(window.text, window.audio, window.video, window.t_end_s,
                              model_sentiment=prediction.model_sentiment,
                              face_valence=prediction.face_valence,
                              expression=prediction.expression)

    # -- recording ----------------------------------------------------------------------
    def start_recording(self) -> str:
        self._need_engine()
        with self._lock:
            if self.recording:
                return "Already recording."
            resumed = len(self.recorder) - self._saved if len(self.recorder) else 0
            if len(self.recorder) and not resumed:
                self.recorder.clear()  # everything was saved: a new session
                self._saved = 0
            self.recording = True
        if resumed:
            return f"Recording again; the {resumed} unsaved labelled windows are kept."
        return "Recording: set a label (slider or thumbs) while you talk."

    def stop_recording(self) -> str:
        self.recording = False
        n = len(self.recorder)
        return f"Recording stopped: {n} labelled windows (save them to keep them)."

    def set_label(self, value: float | None) -> str:
        self.recorder.set_label(value)
        label = self.recorder.label
        return "No label: windows are not kept." if label is None else f"Label {label:+.1f}"

    @property
    def unsaved(self) -> int:
        return max(0, len(self.recorder) - self._saved)

    def save_session(self) -> Path:
        """Writes the labelled windows (features and labels only) to a new file in the
        owner's folder; returns its path (for the server: the page is told its name)."""
        if not len(self.recorder):
            raise CalibrationError(
                "Nothing to save: no labelled windows yet. Start recording and set a label "
                "(slider or thumbs) while you talk.")
        path = self.folder / f"{SESSION_PREFIX}{session_stamp()}.npz"
        n = 1
        while path.exists():
            n += 1
            path = self.folder / f"{SESSION_PREFIX}{session_stamp()}-{n}.npz"
        try:
            private_folder(self.folder.parent)
            private_folder(self.folder)  # personal data: this user only (files are 0600)
            saved = self.recorder.save(path)
        except (OSError, SessionError) as exc:
            log.warning("could not save %s: %s", path, exc)
            raise CalibrationError(f"Could not save the session {path.name}: "
                                   f"{scrub_error(str(exc))}") from exc
        self._saved = len(self.recorder)
        self.last_session = saved
        return saved

    def discard(self) -> None:
        """Stops recording and forgets the unsaved windows (the person withdrew or left)."""
        with self._lock:
            self.recording = False
            self.recorder.clear()
            self._saved = 0

    # -- calibration --------------------------------------------------------------------
    def sessions(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"{SESSION_PREFIX}*.npz"), reverse=True)

    @property
    def progress(self) -> Progress:
        job = self._job
        return job.progress if job is not None else Progress()

    def start_calibration(self, session: Path | None = None) -> str:
        self._need_engine()
        if self.progress.running:
            raise CalibrationError("A calibration is already running (stop it first).")
        if session is None:
            known = self.sessions()
            session = self.last_session or (known[0] if known else None)
        if session is None:
            raise CalibrationError("No saved session to calibrate on: record and save one.")
        try:
            n = len(read_session(session))
        except SessionError as exc:
            raise CalibrationError(scrub_error(str(exc), (str(session),))) from exc
        if n < self.min_samples:
            raise CalibrationError(
                f"Too few samples: {session.name} has {n} labelled windows; calibration "
                f"needs at least {self.min_samples}. Record longer with a label set.")
        if self.base_dir is None:
            raise CalibrationError("No base model folder to calibrate from.")
        name = session.stem.removeprefix(SESSION_PREFIX)
        out = session.with_name(f"{MODEL_PREFIX}{name}")
        k = 1
        while out.exists():
            k += 1
            out = session.with_name(f"{MODEL_PREFIX}{name}-{k}")
        job = CalibrationJob(session, n, self.base_dir, out, self.epochs)
        try:
            self._job = job.start()
        except OSError as exc:
            raise CalibrationError(
                f"Could not start the calibration: {scrub_error(str(exc))}") from exc
        return f"Calibrating on {session.name} ({n} labelled windows)\u2026"

    def stop_calibration(self) -> str:
        job = self._job
        if job is None or not job.progress.running:
            return "No calibration is running."
        job.stop()
        return "Calibration stopped; no model saved."

    # -- models -------------------------------------------------------------------------
    def personal_models(self) -> list[PersonalModel]:
        """The owner's own personal models (in the owner's folder only)."""
        if not self.folder.is_dir():
            return []
        found = (read_personal(p) for p in sorted(self.folder.glob(f"{MODEL_PREFIX}*"),
                                                    reverse=True)
                 if p.is_dir() and not p.name.endswith(".tmp"))
        return [m for m in found if m is not None]

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, value) of the models the owner may load: `DEFAULT` and the folder name
        of each of their personal models (never a path)."""
        name = self.engine.model_name if self.engine is not None else "?"
        found = [(m.label, m.path.name) for m in self.personal_models()]
        return [(f"Default model ({name})", DEFAULT), *found]

    def load_model(self, choice: str | None) -> str:
        """Makes ``choice`` (`DEFAULT`, or the folder name of one of the owner's personal
        models) the model of the owner's sessions; their pipelines keep running. Anything
        else (another folder, a path) is refused; a folder that does not load leaves the
        model as it is."""
        self._need_engine()
        models = self.models
        if not choice:
            raise CalibrationError("Choose a model first.")
        if choice == DEFAULT:
            models.use_shared()
            self.live = DEFAULT
            weight = models.face_weight
            return f"Live model: {models.model_name}" + (
                f" (face weight {weight:+.2f})" if weight else "")
        folder = self._own_model(choice)
        model = self._load(folder)
        name = personal_name(model.config.name, folder)
        weight = self._face_weight(folder)
        lay = self.engine.layout
        try:
            check_dims(model.config.dims, InputDims(lay.text_dim, lay.audio_dim, lay.video_dim),
                       where=f"the model {folder.name}")
        except ValueError as exc:
            raise CalibrationError(f"Not loaded ({exc}); the live model is unchanged.") from exc
        models.use(model, name, weight)
        self.live = folder.name
        return f"Live model: {name}" + (f" (face weight {weight:+.2f})" if weight else "")

    def _own_model(self, choice: str) -> Path:
        """The owner's personal model folder named ``choice``; CalibrationError if there is
        none of that name in their folder."""
        for m in self.personal_models():
            if m.path.name == choice:
                return m.path
        raise CalibrationError("Not one of your personal models: choose one from the list "
                               "(Refresh list). The live model is unchanged.")

    def _face_weight(self, folder: Path) -> float:
        try:
            return checkpoint.face_weight(folder)
        except (checkpoint.CheckpointError, ValueError) as exc:
            raise CalibrationError(f"Not loaded ({scrub_error(str(exc), (str(folder),))}); "
                                   "the live model is unchanged.") from exc

    def _load(self, folder: Path) -> torch.nn.Module:
        try:
            return load_checkpoint(folder, self.engine.device)
        except Exception as exc:  # noqa: BLE001 - any unreadable folder: a message, no change
            log.warning("could not load the model in %s: %s", folder, exc)
            raise CalibrationError(
                f"Could not load the model {folder.name}: "
                f"{scrub_error(str(exc), (str(folder),))}. The live model is unchanged "
                f"({self.model_name}).") from exc

    def close(self) -> None:
        self.recording = False
        job = self._job
        if job is not None:
            job.stop()


class OwnerCalibrators:
    """One `Calibrator` per visitor, keyed by the page's owner key (the login with
    ``--auth``, else the tab; `realtime.dashboard.people.PageViews.owner`), each with a
    `SessionModel` of its own on ``shared`` (what the visitors' pipelines call for the
    shared model: the batching executor; None: the engine) and files in its own
    `owner_folder`. Thread-safe. ``engine`` None: every calibrator says calibration is
    unavailable. At most ``max_owners`` are kept: past that the oldest is closed (its
    unsaved windows are forgotten; its files stay). ``kw``: `Calibrator`'s epochs,
    max_samples, min_samples."""

    def __init__(self, engine: Engine | None, base_dir: Path | None, data_dir: Path | None,
                 shared: ModelCalls | None = None, max_owners: int = 256, **kw) -> None:
        self.engine, self.base_dir, self.data_dir = engine, base_dir, data_dir
        self.shared, self.max_owners, self._kw = shared, int(max_owners), kw
        self._by_owner: dict[str, Calibrator] = {}
        self._lock = threading.Lock()

    def get(self, owner: str) -> Calibrator:
        """``owner``'s calibrator (made on first use)."""
        evicted = None
        with self._lock:
            cal = self._by_owner.get(owner)
            if cal is None:
                models = None if self.engine is None else SessionModel(self.engine, self.shared)
                cal = Calibrator(self.engine, self.base_dir, self.data_dir, owner=owner,
                                 models=models, **self._kw)
                self._by_owner[owner] = cal
                if len(self._by_owner) > self.max_owners:
                    evicted = self._by_owner.pop(next(iter(self._by_owner)))
        if evicted is not None:
            evicted.discard()
            evicted.close()
        return cal

    def peek(self, owner: str) -> Calibrator | None:
        """``owner``'s calibrator if one was made (None: none)."""
        with self._lock:
            return self._by_owner.get(owner)

    def drop(self, owner: str) -> None:
        """Closes ``owner``'s calibrator and forgets its unsaved windows (files stay)."""
        with self._lock:
            cal = self._by_owner.pop(owner, None)
        if cal is not None:
            cal.discard()
            cal.close()

    def close_all(self) -> None:
        with self._lock:
            cals, self._by_owner = list(self._by_owner.values()), {}
        for cal in cals:
            cal.discard()
            cal.close()
