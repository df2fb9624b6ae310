"""PredictionStore: latest, bounded history, version, concurrent publishers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from realtime.store import PredictionStore
from realtime.types import Prediction, Signals


def pred(t: float, masks: dict | None = None) -> Prediction:
    return Prediction(t_end_s=t, sentiment=0.0, words=(), tentative=(), face=False,
                      signals=Signals(), latency_ms={"total": 0.0}, drops={}, emitted_at_s=t,
                      masks=masks)


def test_latest_history_since_and_bound():
    store = PredictionStore(max_history=3)
    assert store.latest() is None and store.history() == []
    for i in range(5):
        store.publish(pred(float(i)))
    assert store.version == 5 and store.latest().t_end_s == 4.0
    assert [p.t_end_s for p in store.history()] == [2.0, 3.0, 4.0]
    assert [p.t_end_s for p in store.history(since_s=2.0)] == [3.0, 4.0]
    store.clear()
    assert store.latest() is None and store.version == 5


def test_concurrent_publishers_lose_nothing_from_the_count():
    store = PredictionStore(max_history=100)

    def work(k: int) -> None:
        for i in range(500):
            store.publish(pred(k * 1000 + i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.version == 2000 and len(store.history()) == 100


def test_only_the_latest_prediction_keeps_its_masks():
    store = PredictionStore(max_history=10)
    for i in range(4):
        store.publish(pred(float(i), {"text": np.full((10, 384), i, np.float32)}))
    history = store.history()
    assert [p.t_end_s for p in history] == [0.0, 1.0, 2.0, 3.0]
    assert [p.masks is None for p in history] == [True, True, True, False]
    assert store.latest().masks["text"][0, 0] == 3.0  # the newest, untouched
    assert history[1] == pred(1.0)  # everything but the masks is kept


def test_bad_size():
    with pytest.raises(ValueError):
        PredictionStore(0)
