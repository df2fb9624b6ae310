"""Dataset containers shared by the loaders, training, evaluation and results.

A `Split` holds padded float32 tensors, one per modality (N, T_max, D_m), the valid lengths
(N,), and labels: (N,) sequence-level sentiment, or (N, T_max) per-step sentiment when the
dataset is per-step (mosi-utt: a sequence is one video, a step one utterance; padded labels
are 0 and never scored).

The loaders (models.data.mosi, .spoken, .synthetic) build these; `models.data.registry`
names them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.base import InputDims
from models.env import REPO_ROOT


class DataError(RuntimeError):
    """A data file is missing, unreadable or inconsistent (the message names it)."""


@dataclass(frozen=True)
class Batch:
    text: torch.Tensor
    audio: torch.Tensor
    video: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class Split:
    text: torch.Tensor
    audio: torch.Tensor
    video: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def batch(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> Batch:
        """The rows in ``index``, trimmed to their longest sequence."""
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        lengths = self.lengths[index]
        steps = max(int(lengths.max().item()), 1) if len(index) else 1
        labels = self.labels[index]
        if labels.dim() == 2:
            labels = labels[:, :steps]
        return Batch(self.text[index, :steps], self.audio[index, :steps],
                     self.video[index, :steps], lengths, labels)


@dataclass(frozen=True)
class DatasetBundle:
    name: str
    dims: InputDims
    per_step: bool
    train: Split
    valid: Split
    test: Split
    description: str


def pad(seqs: Sequence[np.ndarray], dim: int) -> torch.Tensor:
    """List of (T_i, D) (or (T_i,)) arrays -> zero-padded float32 tensor (N, T_max, D)."""
    steps = max([len(s) for s in seqs] + [1])
    shape = (len(seqs), steps) if dim == 0 else (len(seqs), steps, dim)
    out = np.zeros(shape, np.float32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def make_split(text, audio, video, labels, ids, per_step: bool) -> Split:
    """Builds a Split from per-sequence arrays. labels: per sequence a float (sequence-level)
    or a (T_i,) array (per-step)."""
    dims = [x[0].shape[1] for x in (text, audio, video)]
    lab = pad(labels, 0) if per_step else torch.tensor(np.asarray(labels, np.float32))
    return Split(pad(text, dims[0]), pad(audio, dims[1]), pad(video, dims[2]),
                 torch.tensor([len(t) for t in text], dtype=torch.long), lab, tuple(ids))


def default_mosi_dir() -> Path:
    """$MOSI_DIR, else ../shared/data/mosi beside the repository."""
    return Path(os.environ.get("MOSI_DIR", REPO_ROOT.parent / "shared" / "data" / "mosi"))
