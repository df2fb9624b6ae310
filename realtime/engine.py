"""The heavy models of the live pipeline, loaded once and shared by every session.

`Engine.load` loads Whisper (ASR), the mediapipe face landmarker, the MiniLM word encoder
and the sentiment model (a `models.checkpoint` folder; default `assets/model/`), checks the
model's input sizes against the extractors' (`models.base.check_dims`) and picks the
device. A `Pipeline` asks the engine for fresh per-session streaming stages (``new_asr``,
``new_acoustic``, ``new_face``), which share the loaded models. Any failure to load is an
`EngineError`. `Engine.swap_model` changes the live model (and its name) under the model
lock while pipelines run (personal calibration).

`Engine` is a plain dataclass so tests can build one from small stand-ins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from realtime.types import AudioChunk, FeatureFrames, FeatureLayout, VideoFrame, Word

if TYPE_CHECKING:
    from realtime.extract.asr import AsrUpdate

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The engine cannot be loaded; the message says what is missing and how to get it."""


class StreamingASRLike(Protocol):
    def insert_audio_chunk(self, chunk: AudioChunk) -> None: ...
    def process_iter(self) -> AsrUpdate: ...
    def finish(self) -> AsrUpdate: ...


class AcousticLike(Protocol):
    def insert_audio_chunk(self, chunk: AudioChunk) -> None: ...
    def process_iter(self) -> FeatureFrames | None: ...
    def finish(self) -> FeatureFrames | None: ...


class FaceLike(Protocol):
    def insert_frame(self, frame: VideoFrame) -> None: ...
    def process_iter(self) -> FeatureFrames | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineOutput:
    """The live model's answer for one window.

    sentiment: clipped to [-3, 3]; masks: MMLatch's top-down masks, modality -> (T, D), or
    None; model_name: the name of the model that answered (read under the same lock as
    the model, so a `Engine.swap_model` never mislabels a prediction).
    """

    sentiment: float
    masks: dict[str, np.ndarray] | None
    model_name: str


@dataclass(frozen=True)
class AsrFactory:
    """Makes one session's `StreamingASR`: the shared Whisper and a named streaming policy
    (`realtime.extract.asr.ASR_POLICIES`)."""

    transcriber: Any
    policy: str

    def __call__(self) -> StreamingASRLike:
        from realtime.extract.asr import StreamingASR, asr_policy

        return StreamingASR(self.transcriber, asr_policy(self.policy))


@dataclass
class Engine:
    """model: a sentiment nn.Module (the `models.base` contract), already on ``device``;
    model_name: what the UI calls it (the registry name, `model.config.name`, plus the
    folder for a personal model). Both change only through `swap_model`.
    encode_words: Words -> (n, text_dim) float32 contextual vectors."""

    model: torch.nn.Module
    model_name: str
    device: str
    layout: FeatureLayout
    encode_words: Callable[[Sequence[Word]], np.ndarray]
    new_asr: Callable[[], StreamingASRLike]
    new_acoustic: Callable[[], AcousticLike]
    new_face: Callable[[], FaceLike]
    triton: bool = False
    model_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        checkpoint_dir: str | Path | None = None,
        asr_model: str = "tiny.en",
        device: str = "auto",
        torch_threads: int | None = 1,
        asr_policy: str = "pause",
    ) -> Engine:
        """torch_threads: intra-op threads for torch on CPU (process-wide). The per-tick
        models are small; on a 2-core machine shared with Whisper and mediapipe, one thread
        costs ~6x less CPU than two (no OpenMP spinning). None leaves torch's default.

        Raises `EngineError` only, with the message of what failed: a missing asset
        (`realtime.assets.AssetMissing`, the word encoder's `TextModelMissing`), a
        checkpoint that does not load (`models.checkpoint.CheckpointError`) or does not fit
        the extractors (`models.base.DimensionMismatch`), an unavailable device, or an
        error of Whisper or torch while loading."""
        try:
            return cls._load(checkpoint_dir, asr_model, device, torch_threads, asr_policy)
        except EngineError:
            raise
        except (RuntimeError, ValueError, OSError, ImportError) as exc:
            log.debug("engine load failed", exc_info=True)
            raise EngineError(str(exc)) from exc

    @classmethod
    def _load(cls, checkpoint_dir: str | Path | None, asr_model: str, device: str,
              torch_threads: int | None, policy: str) -> Engine:
        from models.base import InputDims, check_dims
        from realtime import assets
        from realtime.extract import acoustic, face, text
        from realtime.extract.asr import asr_policy, load_whisper

        asr_policy(policy)  # an unknown name fails before anything loads
        device = pick_device(device)
        if device == "cpu" and torch_threads is not None:
            torch.set_num_threads(int(torch_threads))
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
        layout = FeatureLayout(
            text_dim=text.TEXT_DIM, audio_dim=acoustic.ACOUSTIC_DIM, video_dim=face.FACE_DIM,
            pitch_hz_index=acoustic.PITCH_HZ_INDEX, energy_db_index=acoustic.ENERGY_DB_INDEX,
            smile_index=face.SMILE_INDEX, brow_index=face.BROW_INDEX, jaw_index=face.JAW_INDEX,
            face_present_index=face.FACE_PRESENT_INDEX,
            smile_right_index=face.SMILE_RIGHT_INDEX)
        check_dims(model.config.dims,
                   InputDims(layout.text_dim, layout.audio_dim, layout.video_dim),
                   where=f"the sentiment model in {folder}")
        whisper = load_whisper(asr_model, device="cuda" if device.startswith("cuda") else "cpu")
        featurizer = text.TextFeaturizer(device=device)
        log.info("engine loaded: model %s from %s on %s", model.config.name, folder, device)
        return cls(
            model=model,
            model_name=model.config.name,
            device=device,
            layout=layout,
            encode_words=featurizer.encode,
            new_asr=AsrFactory(whisper, policy),
            new_acoustic=acoustic.AcousticExtractor,
            new_face=face.FaceExtractor,
            triton=_uses_triton(device),
        )

    def with_asr_policy(self, policy: str) -> Engine:
        """This engine (the same loaded models and lock) with sessions that stream speech
        by the named policy; ValueError for an unknown name or an engine without Whisper."""
        from realtime.extract.asr import asr_policy

        asr_policy(policy)
        if not isinstance(self.new_asr, AsrFactory):
            raise ValueError("this engine's ASR has no named policies")
        return replace(self, new_asr=replace(self.new_asr, policy=policy))

    def swap_model(self, model: torch.nn.Module, name: str) -> None:
        """Makes ``model`` (already on ``device``, in eval mode) the live model, called
        ``name``, from the next window on; thread-safe (waits for a running forward)."""
        with self.model_lock:
            self.model, self.model_name = model, name
        log.info("live model is now %s", name)

    def predict(self, text: np.ndarray, audio: np.ndarray, video: np.ndarray) -> EngineOutput:
        """One window (T, D_m) per modality -> the live model's sentiment and masks."""
        steps = text.shape[0]
        tensors = [torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(self.device)
                   for x in (text, audio, video)]
        lengths = torch.tensor([steps], dtype=torch.int64, device=self.device)
        with self.model_lock, torch.inference_mode():
            out = self.model(*tensors, lengths)
            name = self.model_name
        sentiment = float(out.sentiment.reshape(-1)[0].float().cpu())
        if not np.isfinite(sentiment):
            raise FloatingPointError("the sentiment model returned a non-finite value")
        masks = None
        if out.masks is not None:
            masks = {m: v[0].float().cpu().numpy() for m, v in out.masks.items()}
        return EngineOutput(float(np.clip(sentiment, -3.0, 3.0)), masks, name)


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
