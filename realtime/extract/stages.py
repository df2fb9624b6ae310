"""A session's streaming stages: the factories that give each `realtime.pipeline.Pipeline`
its own ASR, acoustic, face and expression extractors over models loaded once per process.

`Stages.load` loads what the stages share (Whisper, `realtime.extract.asr.load_whisper`; the
facial expression network, `models.expression`, fer's FER2013 weights) and returns the
factories; the mediapipe face landmarker is opened per session by `FaceExtractor`. The face
tracker and the expression network run at most ``face_rate_hz`` / ``expression_rate_hz``
times a second of media (`FACE_RATE_HZ`, `EXPRESSION_RATE_HZ` by default; why:
docs/benchmarks.md, "face and expression rates"); `Stages.with_rates` changes them.
`NO_STAGES` is the bundle of a process that runs no session (a model server): each of its
factories raises `StagesNotLoaded`. `feature_layout` says where the extractors put each
feature (`realtime.types.FeatureLayout`), for the engine's dimension check.

Tests build a `Stages` from small stand-ins (any callables with the protocols below).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from realtime.types import AudioChunk, FeatureFrames, FeatureLayout, VideoFrame

if TYPE_CHECKING:
    from realtime.extract.asr import AsrUpdate


class StagesNotLoaded(RuntimeError):
    """A stage was asked of a process that loaded none (`NO_STAGES`)."""


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
    def wants_crop(self, t_s: float) -> bool: ...
    def insert_crop(self, crop) -> None: ...
    def process_iter(self) -> FeatureFrames | None: ...


class FaceLike(Protocol):
    def insert_frame(self, frame: VideoFrame) -> None: ...
    def process_iter(self) -> FeatureFrames | None: ...
    def close(self) -> None: ...


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


FACE_RATE_HZ: float | None = 5.0
"""Frames a second the face tracker sees at most (None: every frame)."""
EXPRESSION_RATE_HZ: float | None = 5.0
"""Expression classifications a second at most (None: every tracked face)."""


@dataclass(frozen=True)
class FaceFactory:
    """Makes one session's `realtime.extract.face.FaceExtractor` tracking at most
    ``max_rate_hz`` frames a second; ``crops``: the expression extractor it feeds."""

    max_rate_hz: float | None

    def __call__(self, crops: Any = None) -> FaceLike:
        from realtime.extract.face import FaceExtractor

        return FaceExtractor(crops=crops, max_rate_hz=self.max_rate_hz)


@dataclass(frozen=True)
class ExpressionFactory:
    """Makes one session's `realtime.extract.expression.ExpressionExtractor` on the loaded
    network, at most ``max_rate_hz`` classifications a second. classifier: the one the
    session calls instead of the loaded network (`realtime.serving.executor.SharedClassifier`:
    batched with other sessions' crops); None: the loaded network, called directly."""

    classifier: Any
    max_rate_hz: float | None

    def __call__(self, classifier: Any = None) -> ExpressionLike:
        from realtime.extract.expression import ExpressionExtractor

        return ExpressionExtractor(classifier or self.classifier, max_rate_hz=self.max_rate_hz)


def _not_loaded(*_args: object, **_kwargs: object) -> Any:
    raise StagesNotLoaded("this engine was loaded without it: no streaming stages (a model "
                          "server's engine); load them with Stages.load")


@dataclass(frozen=True)
class Stages:
    """new_asr(transcriber=None): a session's streaming ASR (`AsrFactory`; a pipeline passes
    the `SharedModels` transcriber when it has one). new_acoustic(): its acoustic features.
    new_face(crops=None): a face extractor; ``crops`` is the expression extractor it pushes
    face crops into. new_expression(classifier=None): a facial expression extractor (None:
    no expression; a pipeline passes the `SharedModels` classifier when it has one)."""

    new_asr: Callable[..., StreamingASRLike]
    new_acoustic: Callable[[], AcousticLike]
    new_face: Callable[..., FaceLike]
    new_expression: Callable[..., ExpressionLike] | None = None

    @classmethod
    def load(cls, asr_model: str = "tiny.en", device: str = "cpu",
             asr_policy: str = "pause", face_rate_hz: float | None = FACE_RATE_HZ,
             expression_rate_hz: float | None = EXPRESSION_RATE_HZ) -> Stages:
        """Loads Whisper ``asr_model`` on ``device`` ("cpu" or "cuda...") and the expression
        network on ``device``; the face and expression stages run at the given rates (see the
        module doc). Raises ValueError for an unknown policy (before anything loads),
        `realtime.assets.AssetMissing` for a missing bundled model, and Whisper's or torch's
        own errors."""
        from models import expression as expression_model
        from realtime import assets
        from realtime.extract import acoustic
        from realtime.extract.asr import asr_policy as check_policy
        from realtime.extract.asr import load_whisper

        check_policy(asr_policy)
        whisper = load_whisper(asr_model, device="cuda" if device.startswith("cuda") else "cpu")
        classifier = expression_model.load(assets.expression_model_path(), device=device)
        return cls(
            new_asr=AsrFactory(whisper, asr_policy),
            new_acoustic=acoustic.AcousticExtractor,
            new_face=FaceFactory(face_rate_hz),
            new_expression=ExpressionFactory(classifier, expression_rate_hz))

    def with_rates(self, face_rate_hz: float | None,
                   expression_rate_hz: float | None) -> Stages:
        """The same stages with the face tracker and the expression network at these rates
        (None: every frame); ValueError for stages without the loaded face and expression."""
        if not (isinstance(self.new_face, FaceFactory)
                and isinstance(self.new_expression, ExpressionFactory)):
            raise ValueError("these stages have no face and expression rates")
        return replace(self, new_face=FaceFactory(face_rate_hz),
                       new_expression=replace(self.new_expression,
                                              max_rate_hz=expression_rate_hz))

    def with_asr_policy(self, policy: str) -> Stages:
        """The same stages with a session's speech streamed by the named policy; ValueError
        for an unknown name or stages without a loaded Whisper."""
        from realtime.extract.asr import asr_policy

        asr_policy(policy)
        if not isinstance(self.new_asr, AsrFactory):
            raise ValueError("this engine's ASR has no named policies")
        return replace(self, new_asr=replace(self.new_asr, policy=policy))


NO_STAGES = Stages(new_asr=_not_loaded, new_acoustic=_not_loaded, new_face=_not_loaded)


def feature_layout() -> FeatureLayout:
    """The feature sizes and the named columns the extractors produce."""
    from realtime.extract import acoustic, face, text

    return FeatureLayout(
        text_dim=text.TEXT_DIM, audio_dim=acoustic.ACOUSTIC_DIM, video_dim=face.FACE_DIM,
        pitch_hz_index=acoustic.PITCH_HZ_INDEX, energy_db_index=acoustic.ENERGY_DB_INDEX,
        smile_index=face.SMILE_INDEX, brow_index=face.BROW_INDEX, jaw_index=face.JAW_INDEX,
        face_present_index=face.FACE_PRESENT_INDEX,
        smile_right_index=face.SMILE_RIGHT_INDEX)
