"""Sentiment regression metrics, as in the MMSA toolkit and the MMLatch code.

* acc2_has0: (pred >= 0) vs (label >= 0) over all samples ("negative / non-negative").
* acc2_non0: (pred > 0) vs (label > 0) over samples whose label is not 0.
* f1_has0, f1_non0: weighted F1 (per-class F1 weighted by class support) in those settings.
* acc7: round(clip(x, -3, 3)) equal for prediction and label (numpy rounding, half to even).
* mae: mean absolute error; corr: Pearson correlation (0.0 when either side is constant).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

KEYS = ("acc2_has0", "acc2_non0", "f1_has0", "f1_non0", "acc7", "mae", "corr")


@dataclass(frozen=True)
class Metrics:
    acc2_has0: float
    acc2_non0: float
    f1_has0: float
    f1_non0: float
    acc7: float
    mae: float
    corr: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """Weighted F1 over the classes present in ``truth`` (bool or int labels)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.size == 0:
        return float("nan")
    total = 0.0
    for cls in np.unique(truth):
        tp = np.sum((pred == cls) & (truth == cls))
        fp = np.sum((pred == cls) & (truth != cls))
        fn = np.sum((pred != cls) & (truth == cls))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        total += f1 * np.sum(truth == cls)
    return float(total / truth.size)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def compute(pred, label) -> Metrics:
    pred = np.asarray(pred, np.float64).reshape(-1)
    label = np.asarray(label, np.float64).reshape(-1)
    if pred.shape != label.shape or pred.size == 0:
        raise ValueError(f"need equal, non-empty predictions and labels, got {pred.shape}, "
                         f"{label.shape}")
    non0 = label != 0
    has0_t, has0_p = label >= 0, pred >= 0
    non0_t, non0_p = label[non0] > 0, pred[non0] > 0
    r7 = np.round(np.clip(pred, -3, 3)) == np.round(np.clip(label, -3, 3))
    return Metrics(
        acc2_has0=float(np.mean(has0_t == has0_p)),
        acc2_non0=float(np.mean(non0_t == non0_p)) if non0.any() else float("nan"),
        f1_has0=weighted_f1(has0_t, has0_p),
        f1_non0=weighted_f1(non0_t, non0_p),
        acc7=float(np.mean(r7)),
        mae=float(np.mean(np.abs(pred - label))),
        corr=pearson(pred, label),
    )
