"""realtime.extract.expression's rate: at most ``max_rate_hz`` classifications a second of
media, chosen by the crops' times only; crops not due are let go and counted, never queued."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.extract.expression import (
    EXPRESSION_DIM,
    FACE_PRESENT_INDEX,
    ExpressionExtractor,
    FaceCrop,
    RateGate,
)


class CountingClassifier:
    """Answers each crop with its mean grey level in the first column; records batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def classify(self, grey: np.ndarray) -> np.ndarray:
        self.batches.append(len(grey))
        out = np.zeros((len(grey), 7), np.float32)
        out[:, 0] = grey.reshape(len(grey), -1).mean(axis=1)
        return out


def crop(t_s: float, level: int | None = 1) -> FaceCrop:
    grey = None if level is None else np.full((64, 64), level, np.uint8)
    return FaceCrop(t_s, grey, t_s)


def test_the_gate_takes_the_first_item_of_each_slot_of_media_time():
    gate = RateGate(5.0)
    taken = []
    for t in np.arange(0, 2.0, 0.05):  # 20 frames a second for 2 s
        if gate.due(t):
            gate.take(t)
            taken.append(round(float(t), 2))
    assert taken == [round(0.2 * i, 2) for i in range(10)]
    assert not gate.due(1.85) and gate.due(0.3)  # a time that goes back opens a slot again


@pytest.mark.parametrize("rate", [None, 0])
def test_no_rate_takes_every_item(rate):
    gate = RateGate(rate)
    assert all(gate.due(0.0) for _ in range(3)) and gate.max_rate_hz is None


def test_a_negative_rate_is_refused():
    with pytest.raises(ValueError, match="max_rate_hz must be None or >= 0, got -1"):
        RateGate(-1.0)


def test_crops_beyond_the_rate_are_let_go_and_counted_not_classified():
    classifier = CountingClassifier()
    ex = ExpressionExtractor(classifier, max_rate_hz=2.5)
    times = [0.1 * i for i in range(10)]  # 10 a second: every fourth is due
    wanted = []
    for t in times:
        if ex.wants_crop(t):
            wanted.append(t)
        ex.insert_crop(crop(t))  # the face extractor would not cut the others; let go anyway
    rows = ex.process_iter()
    assert wanted == pytest.approx([0.0, 0.4, 0.8])
    assert list(rows.t_s) == pytest.approx([0.0, 0.4, 0.8])
    assert ex.decimated == 7 and ex.drops == 0 and classifier.batches == [3]
    assert rows.values.shape == (3, EXPRESSION_DIM)
    assert (rows.values[:, FACE_PRESENT_INDEX] == 1).all()


def test_without_a_rate_every_crop_is_classified_as_before():
    classifier = CountingClassifier()
    ex = ExpressionExtractor(classifier)
    for i in range(6):
        assert ex.wants_crop(0.1 * i)
        ex.insert_crop(crop(0.1 * i, level=None if i == 2 else i))
    rows = ex.process_iter()
    assert len(rows.t_s) == 6 and ex.decimated == 0 and classifier.batches == [5]
    assert rows.values[2].tolist() == [0.0] * EXPRESSION_DIM  # no face: zeros, flag 0
    assert rows.values[5, 0] == pytest.approx(5.0)
