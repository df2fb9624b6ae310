"""Dataset containers and the dataset registry used by training, evaluation and results.

A `Split` holds padded float32 tensors, one per modality (N, T_max, D_m), the valid lengths
(N,), and labels: (N,) sequence-level sentiment, or (N, T_max) per-step sentiment when the
dataset is per-step (mosi-utt: a sequence is one video, a step one utterance; padded labels
are 0 and never scored).

Datasets (`DATASETS`):
* ``mosi-utt``: CMU-MOSI utterance features of bc-LSTM (models.data.mosi), per-step.
* ``mosi-text``: CMU-MOSI standard split, MiniLM word embeddings (models.data.mosi).
* ``synthetic``: a generated task with planted top-down structure (models.data.synthetic).
* ``spoken-mosi``: CMU-MOSI transcripts read by espeak-ng voices through the live extractors,
  the live window at each segment's end (models.data.spoken; built by
  ``python -m realtime.eval.spoken_mosi`` into the user cache or $SPOKEN_MOSI_DIR).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.base import InputDims

DATASETS: tuple[str, ...] = ("mosi-utt", "mosi-text", "synthetic", "spoken-mosi")
REPO_ROOT = Path(__file__).resolve().parents[2]


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


def cache_dir() -> Path:
    """Per-user cache for derived features (never inside the repository)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "live-sentiment-monitor"


def load_dataset(name: str, *, mosi_dir: str | Path | None = None, seed: int = 0,
                 absent_dim: int = 1, words: str = "timestamped") -> DatasetBundle:
    """Loads a dataset by name. ``seed`` only affects ``synthetic``; the MOSI splits are
    fixed. ``absent_dim``: feature size of the all-zero audio/video inputs of ``mosi-text``
    (which has no audio or video features). ``words``: where ``mosi-text`` takes each segment's
    words ("timestamped": the .csd word timings, needs h5py; "transcripts": transcripts.csv).
    ``spoken-mosi`` reads its cached files (`models.data.spoken.load_spoken_mosi`: training
    files of every voice, asr and oracle words; validation and test from the most realistic
    word source present) and names ``python -m realtime.eval.spoken_mosi`` when they are absent."""
    if name == "synthetic":
        from models.data.synthetic import make_synthetic

        return make_synthetic(seed=seed)
    if name in ("mosi-utt", "mosi-text"):
        from models.data import mosi as data_mosi

        root = Path(mosi_dir) if mosi_dir is not None else default_mosi_dir()
        if not root.is_dir():
            raise DataError(f"CMU-MOSI folder {root} not found (pass --mosi-dir or set MOSI_DIR)")
        if name == "mosi-utt":
            return data_mosi.load_mosi_utt(root)
        return data_mosi.load_mosi_text(root, absent_dim=absent_dim, words=words)
    if name == "spoken-mosi":
        from models.data.spoken import load_spoken_mosi

        return load_spoken_mosi()
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def pack_steps(text: Sequence[np.ndarray], audio: Sequence[np.ndarray],
               video: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Ragged per-sample (T_i, D_m) sequences as one float32 array per modality plus
    ``offsets`` (N+1,) int64: sample i owns steps offsets[i]:offsets[i+1]."""
    steps = [len(t) for t in text]
    return {
        "text": np.concatenate(text).astype(np.float32),
        "audio": np.concatenate(audio).astype(np.float32),
        "video": np.concatenate(video).astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(steps)]).astype(np.int64),
    }


def unpack_steps(arrays) -> tuple[tuple[np.ndarray, ...], ...]:
    """Inverse of `pack_steps`: (text, audio, video), each a tuple of per-sample arrays."""
    off = arrays["offsets"]
    cut = [slice(int(a), int(b)) for a, b in zip(off[:-1], off[1:], strict=True)]
    return tuple(tuple(arrays[m][c] for c in cut) for m in ("text", "audio", "video"))


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Writes ``arrays`` to ``path`` through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path
