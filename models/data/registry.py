"""The dataset registry: a name -> a `DatasetBundle` (training, evaluation and results).

Datasets (`DATASETS`):
* ``mosi-utt``: CMU-MOSI utterance features of bc-LSTM (models.data.mosi), per-step.
* ``mosi-text``: CMU-MOSI standard split, MiniLM word embeddings (models.data.mosi).
* ``synthetic``: a generated task with planted top-down structure (models.data.synthetic).
* ``spoken-mosi``: CMU-MOSI transcripts read by espeak-ng voices through the live extractors,
  the live window at each segment's end (models.data.spoken; built by
  ``python -m realtime.eval.spoken_mosi`` into the user cache or $SPOKEN_MOSI_DIR).

The loaders import only the containers (models.data.base), never this module.
"""

from __future__ import annotations

from pathlib import Path

from models.data import mosi, spoken, synthetic
from models.data.base import DataError, DatasetBundle, default_mosi_dir

DATASETS: tuple[str, ...] = ("mosi-utt", "mosi-text", "synthetic", "spoken-mosi")


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
        return synthetic.make_synthetic(seed=seed)
    if name in ("mosi-utt", "mosi-text"):
        root = Path(mosi_dir) if mosi_dir is not None else default_mosi_dir()
        if not root.is_dir():
            raise DataError(f"CMU-MOSI folder {root} not found (pass --mosi-dir or set MOSI_DIR)")
        if name == "mosi-utt":
            return mosi.load_mosi_utt(root)
        return mosi.load_mosi_text(root, absent_dim=absent_dim, words=words)
    if name == "spoken-mosi":
        return spoken.load_spoken_mosi()
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
