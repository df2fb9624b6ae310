"""Frozen dataclasses that cross module boundaries in the live pipeline.

Every time is float seconds on the session clock (see `realtime.clock`), named ``*_s``.
Feature vectors are float32 numpy arrays; their sizes are defined once, in the extractor
that makes them (`realtime.extract.acoustic.ACOUSTIC_DIM`, `realtime.extract.face.FACE_DIM`,
`realtime.extract.text.TEXT_DIM`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AudioChunk:
    """A run of mono float32 samples in [-1, 1].

    Every source delivers 16 kHz chunks (``realtime.sources.audio.RATE_HZ``); the extractors
    refuse any other rate or layout (see `realtime.sources.base.Source`).

    t0_s: session time of the first sample.
    captured_at_s: session time at which the chunk was handed over by its source (for a
        replayed file, the time the replay clock reached the chunk's end).
    """

    t0_s: float
    samples: np.ndarray
    rate_hz: int
    captured_at_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.rate_hz)

    @property
    def t1_s(self) -> float:
        return self.t0_s + self.duration_s


@dataclass(frozen=True)
class VideoFrame:
    """One RGB uint8 frame, shape (H, W, 3), shown at session time ``t_s``.

    Sources convert every picture to this form (`realtime.sources.image.to_rgb_uint8`: float
    images are read as [0, 1]); the face extractor refuses any other.
    """

    t_s: float
    image: np.ndarray
    captured_at_s: float


@dataclass(frozen=True)
class Word:
    """A recognised word spanning [t0_s, t1_s] on the session clock.

    committed: True once the streaming ASR's commit policy has fixed it; tentative words
        are for display only and never reach the model.
    """

    t0_s: float
    t1_s: float
    text: str
    committed: bool
    probability: float = 1.0


@dataclass(frozen=True)
class FeatureFrames:
    """A batch of per-frame feature vectors from one extractor.

    t_s: (N,) frame centre times; values: (N, D) float32.
    computed_at_s: session time when the extractor finished this batch.
    captured_at_s: session time when the newest input behind the batch was captured.
    """

    t_s: np.ndarray
    values: np.ndarray
    computed_at_s: float
    captured_at_s: float


@dataclass(frozen=True)
class FeatureLayout:
    """Sizes of the three modalities' step vectors and the columns the signals read
    (filled from the extractors by `realtime.engine.Engine.load`)."""

    text_dim: int
    audio_dim: int
    video_dim: int
    pitch_hz_index: int
    energy_db_index: int
    smile_index: int
    brow_index: int
    jaw_index: int
    face_present_index: int
    smile_right_index: int | None = None  # when set, smile = mean of the two columns


@dataclass(frozen=True)
class Signals:
    """The per-modality readings shown to users (not model inputs).

    pitch_hz: median F0 over voiced frames of the latest hop (nan when unvoiced/silent).
    energy_db: mean log energy of the latest hop, dB re full scale.
    smile, brow, jaw: blendshape scores in [0, 1] (nan without a face).
    face_present: whether the latest frame had a face.
    """

    pitch_hz: float = float("nan")
    energy_db: float = float("nan")
    smile: float = float("nan")
    brow: float = float("nan")
    jaw: float = float("nan")
    face_present: bool = False


@dataclass(frozen=True)
class Window:
    """The word-aligned model input: one row per step (a word, or the open tail after the
    last word; see `realtime.window`).

    text: (T, TEXT_DIM), audio: (T, ACOUSTIC_DIM), video: (T, FACE_DIM), float32.
    words: the committed words behind the word steps, oldest first.
    newest_input_t_s: capture time of the newest input that went into the window.
    """

    t_end_s: float
    words: tuple[Word, ...]
    text: np.ndarray
    audio: np.ndarray
    video: np.ndarray
    face_present: bool
    newest_input_t_s: float

    @property
    def steps(self) -> int:
        return int(self.text.shape[0])


@dataclass(frozen=True)
class Prediction:
    """One model update, as published to `realtime.store.PredictionStore`.

    sentiment: in [-3, 3].
    latency_ms: per-stage latencies in milliseconds, with at least the key ``"total"``
        (``emitted_at_s - newest input``).
    drops: items dropped so far, per queue.
    masks: MMLatch's top-down masks for the latest window, modality -> (T, D), if the
        model exposes them.
    """

    t_end_s: float
    sentiment: float
    words: tuple[str, ...]
    tentative: tuple[str, ...]
    face: bool
    signals: Signals
    latency_ms: dict[str, float]
    drops: dict[str, int]
    emitted_at_s: float
    model_name: str = ""
    masks: dict[str, np.ndarray] | None = field(default=None, compare=False)
    new_words: tuple[str, ...] = ()
    """Words committed since the previous prediction (so a log of predictions holds the
    whole transcript, even after words leave the window)."""
    model_sentiment: float = float("nan")
    """The sentiment model's own output in [-3, 3]. ``sentiment`` equals it exactly unless a
    face weight is set and a face is in view: then ``sentiment`` = clip(model_sentiment +
    face_weight * face_valence) (`realtime.pipeline`)."""
    expression: tuple[float, ...] | None = None
    """The 7 facial expression probabilities (`models.expression.EXPRESSIONS` order), mean
    over the face frames of the last ~0.5 s; None without a face there."""
    face_valence: float = float("nan")
    """P(happy) - P(angry, disgust, fear, sad) of ``expression``, in [-1, 1]; NaN without."""
    voice_arousal: float = float("nan")
    """Voice arousal (heuristic, not validated; `realtime.extract.arousal`): mean z-score of prosody
    against the session's own baseline; NaN while warming up or silent."""
    arousal_warming_up: bool = True
    """The voice arousal baseline is still forming."""
    face_weight: float = 0.0
    """The W this prediction's sentiment was fused with (see ``model_sentiment``)."""
