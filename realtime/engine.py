"""The per-tick models of the live pipeline, loaded once and shared by every session.

`Engine.load` loads the sentiment model (a `models.checkpoint` folder; default
`assets/model/`) and the MiniLM word encoder, checks the model's input sizes against the
extractors' (`models.base.check_dims`, `realtime.extract.stages.feature_layout`), picks the
device and decides the face weight W once (`models.checkpoint.face_weight`: the flag, else
the checkpoint's, else 0). The sessions' streaming stages are `realtime.extract.stages.Stages`
(Whisper, the expression network; ``stages=True`` loads them too); the engine only holds
them for the pipelines (``engine.stages``). Any failure to load is an `EngineError`.
`Engine.swap_model` changes the engine's model (and its name and W) under the model lock;
only the start-up naming of a personal ``--model`` uses it. A personal model loaded in the
calibration panel never changes the engine: it runs in its owner's sessions only
(`realtime.calibration.controller.SessionModel`).

Loading changes nothing process-wide: torch's and BLAS's threads and malloc's mmap threshold
are the entry point's call (`realtime.runtime.apply_process_settings`).

`Engine` is a plain dataclass so tests can build one from small stand-ins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from realtime.extract.stages import NO_STAGES, Stages
from realtime.types import FeatureLayout, Word

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The engine cannot be loaded; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class EngineOutput:
    """The live model's answer for one window.

    sentiment: clipped to [-3, 3]; masks: MMLatch's top-down masks, modality -> (T, D), or
    None; model_name: the name of the model that answered and face_weight: the face weight
    W that goes with it (both read under the same lock as the model, so a
    `Engine.swap_model` never mislabels a prediction).
    """

    sentiment: float
    masks: dict[str, np.ndarray] | None
    model_name: str
    face_weight: float = 0.0


@dataclass
class Engine:
    """model: a sentiment nn.Module (the `models.base` contract), already on ``device``;
    model_name: what the UI calls it (the registry name, `model.config.name`, plus the
    folder for a personal model); face_weight: the W the pipelines fuse the face valence
    with (`realtime.pipeline`; a personal model's fitted W, or --face-weight). All three
    change only through `swap_model`.
    encode_words: Words -> (n, text_dim) float32 contextual vectors; encode_many: the same
    for several word lists in one forward pass (None: one `encode_words` call each).
    stages: the sessions' streaming stages (`realtime.extract.stages.Stages`; `NO_STAGES`
    for a process that runs no session); ``new_asr`` and the other three read them."""

    model: torch.nn.Module
    model_name: str
    device: str
    layout: FeatureLayout
    encode_words: Callable[[Sequence[Word]], np.ndarray]
    stages: Stages = NO_STAGES
    triton: bool = False
    encode_many: Callable[[Sequence[Sequence[Word]]], list[np.ndarray]] | None = None
    face_weight: float = 0.0
    model_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        checkpoint_dir: str | Path | None = None,
        asr_model: str = "tiny.en",
        device: str = "auto",
        stages: bool = True,
        words: bool = True,
        face_weight: float | None = None,
        asr_policy: str = "pause",
    ) -> Engine:
        """face_weight: W (None: the checkpoint's fitted W when calibration made it, else 0;
        `models.checkpoint.face_weight`).
        stages=False leaves out a session's streaming stages (`Stages.load`: Whisper
        ``asr_model`` with ``asr_policy``, the expression model), words=False the MiniLM
        word encoder: a model server needs the sentiment model and the word encoder
        (stages=False), a benchmark of recorded windows the sentiment model alone (both
        False). Asking for what was left out raises EngineError (the word encoder) or
        `realtime.extract.stages.StagesNotLoaded` (a stage). With stages=False nothing of
        Whisper, CTranslate2, PyAV or mediapipe is imported (a GPU machine without them
        can serve the model), and ``asr_policy`` is not checked.
        Nothing process-wide is set here (see the module doc).

        Raises `EngineError` only, with the message of what failed: a missing asset
        (`realtime.assets.AssetMissing`, the word encoder's `TextModelMissing`), a
        checkpoint that does not load (`models.checkpoint.CheckpointError`) or does not fit
        the extractors (`models.base.DimensionMismatch`), an invalid face weight, an
        unavailable device, or an error of Whisper or torch while loading."""
        try:
            return cls._load(checkpoint_dir, asr_model, device, stages, words, face_weight,
                             asr_policy)
        except EngineError:
            raise
        except (RuntimeError, ValueError, OSError, ImportError) as exc:
            log.debug("engine load failed", exc_info=True)
            raise EngineError(str(exc)) from exc

    @classmethod
    def _load(cls, checkpoint_dir: str | Path | None, asr_model: str, device: str,
              stages: bool, words: bool, face_weight: float | None, policy: str) -> Engine:
        from models import checkpoint
        from models.base import InputDims, check_dims
        from realtime import assets
        from realtime.extract import text
        from realtime.extract.stages import feature_layout

        if stages:  # Whisper's module, imported only when its stage is wanted
            from realtime.extract.asr import asr_policy

            asr_policy(policy)  # an unknown name fails before anything loads
        device = pick_device(device)
        try:
            folder = Path(checkpoint_dir) if checkpoint_dir else assets.default_model_dir()
        except assets.AssetMissing as exc:
            raise EngineError(
                f"{exc}. To get one: train it (see README, `python -m models.train ... "
                "--out assets/model`), or pass a checkpoint folder with --checkpoint DIR."
            ) from exc
        if not folder.is_dir():
            raise EngineError(f"checkpoint folder {folder} does not exist")
        model = load_model(folder, device)
        weight = checkpoint.face_weight(folder, face_weight)
        layout = feature_layout()
        check_dims(model.config.dims,
                   InputDims(layout.text_dim, layout.audio_dim, layout.video_dim),
                   where=f"the sentiment model in {folder}")
        featurizer = text.TextFeaturizer(device=device) if words else None
        loaded = Stages.load(asr_model, device, policy) if stages else NO_STAGES
        log.info("engine loaded: model %s from %s on %s (stages %s, words %s)",
                 model.config.name, folder, device, stages, words)
        return cls(
            model=model, model_name=model.config.name, device=device, layout=layout,
            encode_words=featurizer.encode if featurizer else _not_loaded,
            encode_many=featurizer.encode_many if featurizer else None,
            stages=loaded, triton=_uses_triton(device), face_weight=weight)

    def with_asr_policy(self, policy: str) -> Engine:
        """This engine (the same loaded models and lock) with sessions that stream speech
        by the named policy; ValueError for an unknown name or an engine without Whisper."""
        return replace(self, stages=self.stages.with_asr_policy(policy))

    def swap_model(self, model: torch.nn.Module, name: str,
                   face_weight: float | None = None) -> None:
        """Makes ``model`` (already on ``device``, in eval mode) the live model, called
        ``name``, with face weight ``face_weight`` (None: the current W stays), from the next
        window on; thread-safe (waits for a running forward)."""
        with self.model_lock:
            self.model, self.model_name = model, name
            if face_weight is not None:
                self.face_weight = float(face_weight)
        log.info("live model is now %s (face weight %g)", name, self.face_weight)

    def encode_words_batch(self, lists: Sequence[Sequence[Word]]) -> list[np.ndarray]:
        """`encode_words` for several windows' words, in one forward pass when the engine
        has ``encode_many``."""
        if self.encode_many is not None:
            return self.encode_many(lists)
        return [self.encode_words(words) for words in lists]

    def predict(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> EngineOutput:
        """One window (T, D_m) per modality -> the live model's sentiment and masks."""
        return self.predict_batch([(text, audio, video)])[0]

    def predict_batch(
        self, windows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
        with_masks: bool = True,
    ) -> list[EngineOutput]:
        """Many windows, each (text, audio, video) of shape (T_i, D_m), in ONE forward pass:
        they are zero-padded to the longest T and run with their lengths, so each answer is
        the one the window gets alone (within float rounding; the models mask padding).
        Masks come back cut to each window's own T_i; ``with_masks=False`` leaves them on the
        device (every answer's ``masks`` is None: nothing is copied to the host), for callers
        that read only the sentiment (a benchmark of windows)."""
        if not windows:
            return []
        steps = [int(w[0].shape[0]) for w in windows]
        longest = max(steps)
        tensors = []
        for m in range(3):
            batch = np.zeros((len(windows), longest, windows[0][m].shape[1]), np.float32)
            for i, w in enumerate(windows):
                batch[i, : steps[i]] = w[m]
            tensors.append(torch.from_numpy(batch).to(self.device))
        lengths = torch.tensor(steps, dtype=torch.int64, device=self.device)
        with self.model_lock, torch.inference_mode():
            out = self.model(*tensors, lengths)
            name, weight = self.model_name, self.face_weight
        sentiment = out.sentiment.reshape(-1).float().cpu().numpy()
        if not np.all(np.isfinite(sentiment)):
            raise FloatingPointError("the sentiment model returned a non-finite value")
        masks = None
        if with_masks and out.masks is not None:
            masks = {m: v.float().cpu().numpy() for m, v in out.masks.items()}
        return [
            EngineOutput(float(np.clip(sentiment[i], -3.0, 3.0)),
                         None if masks is None
                         else {m: v[i, : steps[i]].copy() for m, v in masks.items()},
                         name, weight)
            for i in range(len(windows))
        ]


def _not_loaded(*_args: object, **_kwargs: object) -> None:
    raise EngineError("this engine was loaded without it (Engine.load(words=False) has no "
                      "word encoder)")


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} requested but no CUDA GPU is available")
    return device


def load_model(folder: Path, device: str) -> torch.nn.Module:
    from models import checkpoint

    try:
        return checkpoint.load(folder, map_location=device).eval()
    except checkpoint.CheckpointError as exc:
        raise EngineError(f"cannot load the sentiment model: {exc}") from exc


def _uses_triton(device: str) -> bool:
    import importlib.util

    return device.startswith("cuda") and importlib.util.find_spec("triton") is not None
