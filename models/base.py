"""The contract every sentiment model satisfies, shared by training and the live pipeline.

A model takes one float32 tensor per modality, shape (B, T, D_m), in the order of
`MODALITIES`, plus ``lengths`` (B,) int64 (valid steps; the rest is padding), and returns a
`ModelOutput`. Its config records the input sizes (`InputDims`), so a checkpoint can be
checked against the extractors that will feed it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODALITIES: tuple[str, str, str] = ("text", "audio", "video")


@dataclass(frozen=True)
class InputDims:
    """Per-step feature sizes of the three modalities."""

    text: int
    audio: int
    video: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.text, self.audio, self.video)


@dataclass
class ModelOutput:
    """sentiment: (B,) in [-3, 3].
    masks: MMLatch's top-down masks, modality -> (B, T, D_m) in [0, 1]; None for models
        without feedback.
    aux_loss: extra training loss terms (e.g. MMMIE's MI terms), already weighted; a
        scalar tensor, or None.
    terms: the unweighted auxiliary terms by name, for logging and tests.
    per_step: (B, T) per-step sentiment, for models built with ``per_step=True`` (the
        utterance-level task mosi-utt, where each step is one utterance of a video); None
        otherwise. Padded steps hold 0. ``sentiment`` stays the sequence-level value that the
        live pipeline shows (for per-step models, the mean over valid steps).
    """

    sentiment: torch.Tensor
    masks: dict[str, torch.Tensor] | None = None
    aux_loss: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] | None = None
    per_step: torch.Tensor | None = None


class DimensionMismatch(ValueError):
    """A checkpoint's input sizes do not match the features offered to it."""


def check_dims(expected: InputDims, offered: InputDims, where: str = "model") -> None:
    if expected != offered:
        raise DimensionMismatch(
            f"{where} expects per-step feature sizes text={expected.text}, "
            f"audio={expected.audio}, video={expected.video}, but the features offered are "
            f"text={offered.text}, audio={offered.audio}, video={offered.video}. "
            "Retrain or pick a checkpoint made for these extractors."
        )
