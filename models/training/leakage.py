"""Why mosi-utt's validation videos cannot choose settings: a linear probe per modality.

A ridge regression (closed form, alpha 10, on the standardised features) is fitted on the
utterances of the train videos and its binary accuracy (has0) read on train, on the validation
videos carved from the same 62 bc-LSTM train videos, and on the 31 test videos. The bc-LSTM
feature extractors were trained on the labels of those 62 videos, so features of held-out
train videos still carry their labels: the validation videos score like the train videos,
far above the test videos.

    python -m models.training.leakage          # prints a markdown table
"""

from __future__ import annotations

import argparse

import numpy as np

from models.base import MODALITIES
from models.data.base import DatasetBundle, Split
from models.data.registry import load_dataset
from models.env import add_log_level, configure_logging

ALPHA = 10.0


def _flat(split: Split, modality: str) -> tuple[np.ndarray, np.ndarray]:
    lengths = split.lengths.numpy()
    x = getattr(split, modality).numpy()
    y = split.labels.numpy()
    rows = [x[i, :n] for i, n in enumerate(lengths)]
    labels = [y[i, :n] if y.ndim == 2 else np.full(n, y[i]) for i, n in enumerate(lengths)]
    return np.concatenate(rows).astype(np.float64), np.concatenate(labels).astype(np.float64)


def _features(split: Split, modalities: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = [_flat(split, m) for m in modalities]
    return np.concatenate([p[0] for p in parts], axis=1), parts[0][1]


def probe(bundle: DatasetBundle, alpha: float = ALPHA) -> list[tuple[str, dict[str, float]]]:
    """[(feature set, {"train": acc, "valid": acc, "test": acc})], accuracies in [0, 1]."""
    out = []
    for name, mods in [*((m, (m,)) for m in MODALITIES), ("all three", MODALITIES)]:
        x, y = _features(bundle.train, mods)
        a = np.c_[x, np.ones(len(x))]
        w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ y)
        accs = {}
        for part in ("train", "valid", "test"):
            xp, yp = _features(getattr(bundle, part), mods)
            pred = np.c_[xp, np.ones(len(xp))] @ w
            accs[part] = float(np.mean((pred >= 0) == (yp >= 0)))
        out.append((name, accs))
    return out


def markdown(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    lines = ["| ridge probe on | train videos | validation videos (carved from train) | "
             "test videos |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {100 * a['train']:.1f} | {100 * a['valid']:.1f} | "
              f"{100 * a['test']:.1f} |" for name, a in rows]
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.training.leakage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mosi-dir", default=None)
    args = add_log_level(p).parse_args(argv)
    configure_logging(args.log_level)
    print("\n".join(markdown(probe(load_dataset("mosi-utt", mosi_dir=args.mosi_dir)))))


if __name__ == "__main__":
    main()
