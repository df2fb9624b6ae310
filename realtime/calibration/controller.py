"""The dashboard's personal calibration: record a labelled session, save it, calibrate, load.

`Calibrator.on_window` is a window subscriber of the live pipelines
(`realtime.pipeline.Pipeline.subscribe`; predictions unchanged): while the user records,
every window the live model sees reaches a `SessionRecorder` with the user's current label
(slider, thumbs up / down, or none: unlabelled windows are not kept). `save_session`
writes the features-only ``.npz`` to ``<user data>/calibration/``; `start_calibration`
runs ``python -m models.calibrate`` on it in a subprocess
(`realtime.calibration.job.CalibrationJob`: progress parsed from its output, a stop path,
never in the UI thread or the pipeline's) and saves the personal model next to the
session; `load_model` makes a model (default or personal) live with `Engine.swap_model`,
without restarting the pipeline, with its face weight W: a personal model's fitted W (its
checkpoint meta, `models.checkpoint.face_weight`; 0 when it has none), the
default model's ``default_face_weight`` (the app's --face-weight). Every user error raises
`CalibrationError` with the message to show; nothing recorded or running is lost by one.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from models import checkpoint
from models.base import InputDims, check_dims
from models.data.sessions import SessionError, read_session
from models.training.calibrate import EPOCHS, MIN_SAMPLES
from realtime.calibration.job import CalibrationJob, PersonalModel, Progress, read_personal
from realtime.calibration.recorder import SessionRecorder
from realtime.clock import wall_time_iso
from realtime.engine import Engine
from realtime.engine import load_model as load_checkpoint
from realtime.personal.storage import (
    CALIBRATION_DIR,
    MODEL_PREFIX,
    SESSION_PREFIX,
    private_folder,
    user_data_dir,
)
from realtime.types import Prediction, Window

DEFAULT = "default"

log = logging.getLogger(__name__)


class CalibrationError(RuntimeError):
    """A calibration step the user asked for cannot be done; the message says why."""


def session_stamp() -> str:
    return wall_time_iso().replace(":", "-")


def personal_name(model_name: str, folder: Path) -> str:
    """What the UI calls a personal model: its registry name and its folder's name."""
    return f"{model_name} \u00b7 {folder.name}"


class Calibrator:
    """See the module doc. ``engine``: the shared `realtime.engine.Engine` (None: the
    panel says calibration is unavailable); ``base_dir``: the model calibration starts from
    (the default model's folder); ``live_dir``: the folder of the engine's model when it is
    not ``base_dir`` (a personal model: the engine's model is then named after it);
    ``default_face_weight``: the W that goes with the default model (None: the engine's W
    when its model is the default, else 0)."""

    def __init__(self, engine: Engine | None, base_dir: Path | None,
                 data_dir: Path | None = None, live_dir: Path | None = None,
                 epochs: int = EPOCHS, max_samples: int = 3000, min_samples: int = MIN_SAMPLES,
                 default_face_weight: float | None = None) -> None:
        self.engine = engine
        self.base_dir = base_dir
        self.folder = (data_dir or user_data_dir()) / CALIBRATION_DIR
        self.epochs = int(epochs)
        self.min_samples = int(min_samples)
        self.recorder = SessionRecorder(max_samples=max_samples)
        self.recording = False
        self.last_session: Path | None = None
        self._saved = 0  # windows in the recorder when it was last saved
        self._job: CalibrationJob | None = None
        self._lock = threading.Lock()
        # the default model and its name, once loaded; the W that goes with it
        self._default: tuple[torch.nn.Module, str] | None = None
        self.default_face_weight = default_face_weight or 0.0
        self.live: str = DEFAULT
        if engine is None:
            return
        if live_dir is None or base_dir is None or Path(live_dir).resolve() == Path(
                base_dir).resolve():
            self._default = (engine.model, engine.model_name)
            if default_face_weight is None:
                self.default_face_weight = engine.face_weight
        else:
            self.live = str(live_dir)
            if read_personal(Path(live_dir)) is not None:
                engine.swap_model(engine.model, personal_name(engine.model_name,
                                                              Path(live_dir)))

    @property
    def available(self) -> bool:
        return self.engine is not None

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
        """Writes the labelled windows (features and labels only) to a new file."""
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
            private_folder(self.folder)  # personal data: this user only (files are 0600)
            saved = self.recorder.save(path)
        except (OSError, SessionError) as exc:
            raise CalibrationError(f"Could not save the session to {path}: {exc}") from exc
        self._saved = len(self.recorder)
        self.last_session = saved
        return saved

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
            raise CalibrationError(str(exc)) from exc
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
            raise CalibrationError(f"Could not start the calibration: {exc}") from exc
        return f"Calibrating on {session.name} ({n} labelled windows)\u2026"

    def stop_calibration(self) -> str:
        job = self._job
        if job is None or not job.progress.running:
            return "No calibration is running."
        job.stop()
        return "Calibration stopped; no model saved."

    # -- models -------------------------------------------------------------------------
    def personal_models(self) -> list[PersonalModel]:
        if not self.folder.is_dir():
            return []
        found = (read_personal(p) for p in sorted(self.folder.glob(f"{MODEL_PREFIX}*"),
                                                    reverse=True)
                 if p.is_dir() and not p.name.endswith(".tmp"))
        return [m for m in found if m is not None]

    def model_choices(self) -> list[tuple[str, str]]:
        name = self._default[1] if self._default is not None else (
            self.base_dir.name if self.base_dir is not None else "?")
        found = [(m.label, str(m.path)) for m in self.personal_models()]
        if self.live != DEFAULT and self.live not in {v for _, v in found}:
            found.insert(0, (Path(self.live).name, self.live))  # loaded from elsewhere
        return [(f"Default model ({name})", DEFAULT), *found]

    def load_model(self, choice: str | None) -> str:
        """Makes ``choice`` (DEFAULT or a personal model folder) the live model; the
        pipeline keeps running. A folder that does not load leaves the live model as is."""
        self._need_engine()
        engine = self.engine
        if not choice:
            raise CalibrationError("Choose a model first.")
        if choice == DEFAULT:
            if self._default is None:
                if self.base_dir is None:
                    raise CalibrationError("No default model folder is known.")
                model = self._load(self.base_dir)
                self._default = (model, model.config.name)
            model, name = self._default
            weight = self.default_face_weight
        else:
            folder = Path(choice)
            model = self._load(folder)
            name = personal_name(model.config.name, folder)
            weight = self._face_weight(folder)
        lay = engine.layout
        try:
            check_dims(model.config.dims, InputDims(lay.text_dim, lay.audio_dim, lay.video_dim),
                       where=f"the model in {choice}")
        except ValueError as exc:
            raise CalibrationError(f"Not loaded ({exc}); the live model is unchanged.") from exc
        engine.swap_model(model, name, face_weight=weight)
        self.live = choice
        return f"Live model: {name}" + (f" (face weight {weight:+.2f})" if weight else "")

    def _face_weight(self, folder: Path) -> float:
        try:
            return checkpoint.face_weight(folder)
        except (checkpoint.CheckpointError, ValueError) as exc:
            raise CalibrationError(f"Not loaded ({exc}); the live model is unchanged.") from exc

    def _load(self, folder: Path) -> torch.nn.Module:
        try:
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is not a folder")
            return load_checkpoint(folder, self.engine.device)
        except Exception as exc:  # noqa: BLE001 - any unreadable folder: a message, no change
            log.warning("could not load the model in %s: %s", folder, exc)
            raise CalibrationError(
                f"Could not load the model in {folder}: {exc}. The live model is unchanged "
                f"({self.engine.model_name}).") from exc

    def close(self) -> None:
        self.recording = False
        job = self._job
        if job is not None:
            job.stop()
