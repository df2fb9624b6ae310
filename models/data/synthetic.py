"""A synthetic task with planted top-down structure, for fast tests.

Each sequence (T steps) has a context code k in {0..G-1}, visible only in the text: text
channel k is ~1 at every step (plus noise), the other code channels ~0. The video has G groups
of ``group_size`` channels; group k carries the sequence's signal s ~ U(-1, 1) at every step
(plus noise ``noise``), the other groups carry distractors: zero-mean noise of std
``distractor``, fresh at every step. The label is 2.5 * s: only the group the text points at
matters, and which group that is changes from sequence to sequence. Audio is noise (std 1)
plus a weak copy of the code (+1 on channel k mod 4), so every pair of modalities shares
information (the code), as MMMIE's InfoNCE terms assume.

So the text decides which visual channels are relevant: a top-down mask on the video input
(what MMLatch's feedback learns) removes the distractors before the video encoder, while a
model without feedback must carry all G signals through its video encoder and select late.
"""

from __future__ import annotations

import numpy as np

from models.base import InputDims
from models.data.base import DatasetBundle, make_split

AUDIO_DIM = 4


def _sequences(rng: np.random.Generator, n: int, steps: int, groups: int, group_size: int,
               noise: float, distractor: float):
    code = rng.integers(0, groups, size=n)
    signal = rng.uniform(-1.0, 1.0, size=n)
    lengths = rng.integers(steps // 2, steps + 1, size=n)
    text, audio, video, labels = [], [], [], []
    for i in range(n):
        t = lengths[i]
        tx = rng.normal(0.0, noise, size=(t, groups + 2)).astype(np.float32)
        tx[:, code[i]] += 1.0
        vx = rng.normal(0.0, distractor, size=(t, groups * group_size)).astype(np.float32)
        sel = slice(code[i] * group_size, (code[i] + 1) * group_size)
        vx[:, sel] = signal[i] + rng.normal(0.0, noise, size=(t, group_size))
        ax = rng.normal(0.0, 1.0, size=(t, AUDIO_DIM)).astype(np.float32)
        ax[:, code[i] % AUDIO_DIM] += 1.0
        text.append(tx)
        audio.append(ax)
        video.append(vx)
        labels.append(float(2.5 * signal[i]))
    return text, audio, video, labels


def make_synthetic(seed: int = 0, n_train: int = 512, n_valid: int = 128, n_test: int = 256,
                   steps: int = 12, groups: int = 4, group_size: int = 3,
                   noise: float = 0.3, distractor: float = 1.0) -> DatasetBundle:
    """Deterministic given ``seed``."""
    rng = np.random.default_rng(seed)
    splits = []
    for part, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        text, audio, video, labels = _sequences(
            rng, n, steps, groups, group_size, noise, distractor
        )
        ids = [f"syn-{part}-{i}" for i in range(n)]
        splits.append(make_split(text, audio, video, labels, ids, per_step=False))
    dims = InputDims(groups + 2, AUDIO_DIM, groups * group_size)
    return DatasetBundle(
        name="synthetic", dims=dims, per_step=False, train=splits[0], valid=splits[1],
        test=splits[2],
        description=f"synthetic gating task: {groups} video groups selected by the text",
    )
