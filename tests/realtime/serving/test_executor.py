"""realtime.serving.executor: one forward pass for many streams' windows, each answer the same as at
batch size 1, waits and queues bounded, errors and stops reach every waiting stream."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from realtime.clock import perf_s
from realtime.engine import EngineOutput
from realtime.serving.executor import (
    BatchConfig,
    BatchingExecutor,
    ExecutorBusy,
    ExecutorStopped,
)
from tests.helpers.required import missing
from tests.realtime.test_pipeline import fake_engine

LENGTHS = (1, 3, 21, 7, 2, 12, 5, 20, 9)


@pytest.fixture(scope="module")
def shipped_engine():
    from models import checkpoint
    from realtime.assets import AssetMissing, default_model_dir

    try:
        folder = default_model_dir()
    except AssetMissing as exc:
        missing(f"no bundled model: {exc}")
    return fake_engine(checkpoint.load(folder))


def windows(engine, lengths=LENGTHS, seed=0):
    dims = engine.model.config.dims
    rng = np.random.default_rng(seed)
    return [tuple(rng.standard_normal((n, d)).astype(np.float32)
                  for d in (dims.text, dims.audio, dims.video)) for n in lengths]


def echo_batch(sizes: list[int]):
    """A predict_batch that answers each window with its length and records batch sizes."""
    def run(batch):
        sizes.append(len(batch))
        return [EngineOutput(float(w[0].shape[0]), None, "echo") for w in batch]
    return run


def small_window(steps: int = 1):
    return (np.zeros((steps, 2), np.float32),) * 3


def test_a_batch_gives_each_window_its_batch_of_one_answer(shipped_engine):
    ws = windows(shipped_engine)
    alone = [shipped_engine.predict(*w) for w in ws]
    together = shipped_engine.predict_batch(ws)
    assert len(together) == len(ws)
    for w, a, b in zip(ws, alone, together, strict=True):
        assert abs(a.sentiment - b.sentiment) <= 1e-5
        assert set(a.masks) == set(b.masks) == {"text", "audio", "video"}
        for m in a.masks:
            assert b.masks[m].shape == (w[0].shape[0], a.masks[m].shape[1])
            np.testing.assert_allclose(b.masks[m], a.masks[m], atol=1e-5, rtol=0)
    assert len({round(o.sentiment, 3) for o in together}) > 3  # not one answer for all


def test_the_executor_batches_streams_and_matches_batch_size_one(shipped_engine):
    ws = windows(shipped_engine, seed=1)
    alone = [shipped_engine.predict(*w) for w in ws]
    config = BatchConfig(max_batch=4, max_wait_ms=200.0)
    ex = BatchingExecutor(shipped_engine.predict_batch, config)
    futures = [ex.submit(w) for w in ws]  # all queued before its thread starts: no race
    with ex:
        got = [f.result(timeout=30) for f in futures]
        stats = ex.stats()
    for a, b in zip(alone, got, strict=True):
        assert abs(a.sentiment - b.sentiment) <= 1e-5 and b.model_name == a.model_name
    assert stats.windows == len(ws) and stats.max_batch == 4
    assert stats.batches == 3 and stats.drops == 0  # 4 + 4 + 1


def test_the_oldest_window_waits_at_most_max_wait():
    sizes: list[int] = []
    with BatchingExecutor(echo_batch(sizes), BatchConfig(max_batch=8, max_wait_ms=50.0)) as ex:
        t0 = perf_s()
        out = ex.submit(small_window(3)).result(timeout=5)
        waited_s = perf_s() - t0
    assert out.sentiment == 3.0 and sizes == [1]
    assert 0.045 <= waited_s < 1.0, waited_s  # it waited for company, then ran alone


def test_unbatched_runs_one_forward_per_window():
    sizes: list[int] = []
    with BatchingExecutor(echo_batch(sizes), BatchConfig(max_batch=1, max_wait_ms=0.0)) as ex:
        outs = [f.result(timeout=5) for f in [ex.submit(small_window(n)) for n in (1, 2, 3)]]
    assert [o.sentiment for o in outs] == [1.0, 2.0, 3.0] and sizes == [1, 1, 1]


def test_a_full_queue_refuses_and_counts_and_stop_fails_what_waits():
    release = threading.Event()
    started = threading.Event()

    def slow(batch):
        started.set()
        release.wait(5)
        return [EngineOutput(0.0, None, "slow") for _ in batch]

    ex = BatchingExecutor(slow, BatchConfig(max_batch=1, max_wait_ms=0.0, max_queue=2)).start()
    first = ex.submit(small_window())
    assert started.wait(5)  # the first window is in flight; two more fill the queue
    queued = [ex.submit(small_window()), ex.submit(small_window())]
    refused = ex.submit(small_window())
    with pytest.raises(ExecutorBusy, match="max_queue"):
        refused.result(timeout=1)
    assert ex.stats().drops == 1
    stopping = threading.Thread(target=ex.stop)
    stopping.start()
    for f in queued:
        with pytest.raises(ExecutorStopped):
            f.result(timeout=5)
    release.set()
    stopping.join(5)
    assert first.result(timeout=5).model_name == "slow"  # the batch in flight finishes
    with pytest.raises(ExecutorStopped):
        ex.submit(small_window()).result(timeout=1)
    assert ex.stop() is True


def test_a_failing_batch_reaches_its_streams_and_the_executor_goes_on():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise FloatingPointError("the sentiment model returned a non-finite value")
        return [EngineOutput(1.0, None, "ok") for _ in batch]

    with BatchingExecutor(flaky, BatchConfig(max_batch=1, max_wait_ms=0.0)) as ex:
        with pytest.raises(FloatingPointError, match="non-finite"):
            ex.submit(small_window()).result(timeout=5)
        assert ex.submit(small_window()).result(timeout=5).sentiment == 1.0
        assert ex.stats().failures == 1


def test_an_exception_in_place_of_a_result_fails_that_stream_only():
    def some_fail(batch):
        return [ValueError(f"window {n} is bad") if n % 2 else EngineOutput(float(n), None, "ok")
                for n in (w[0].shape[0] for w in batch)]

    with BatchingExecutor(some_fail, BatchConfig(max_batch=4, max_wait_ms=200.0)) as ex:
        futures = [ex.submit(small_window(n)) for n in (2, 3, 4, 5)]
        assert [futures[i].result(timeout=5).sentiment for i in (0, 2)] == [2.0, 4.0]
        for i, n in ((1, 3), (3, 5)):
            with pytest.raises(ValueError, match=f"window {n} is bad"):
                futures[i].result(timeout=5)
        stats = ex.stats()
    assert stats.batches == 1 and stats.failures == 0


def test_bad_settings_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="max_batch >= 1"):
        BatchConfig(max_batch=0)
    with pytest.raises(ValueError, match="max_queue >= max_batch"):
        BatchConfig(max_batch=64, max_queue=8)


def test_word_lists_encoded_together_match_each_alone():
    from models.text_encoder import WordEncoder

    encoder = WordEncoder.load()
    lists = [["what", "a", "wonderful", "film"], ["no"], [], ["the", "acting", "was", "awful",
             "and", "the", "plot", "made", "no", "sense", "at", "all"]]
    together = encoder.encode_many(lists)
    for words, got in zip(lists, together, strict=True):
        alone = encoder.encode(words)
        assert got.shape == alone.shape == (len(words), alone.shape[1] if words else 384)
        np.testing.assert_allclose(got, alone, atol=1e-4, rtol=0)


def test_shared_models_batch_sessions_word_lists_and_windows(shipped_engine):
    from realtime.serving.executor import SharedModels
    from realtime.types import Word

    engine = shipped_engine
    lists = [tuple(Word(float(i), i + 0.4, w, True) for i, w in enumerate(text.split()))
             for text in ("i loved it", "terrible", "it was fine i guess")]
    calls = []
    engine = replace(engine, encode_many=lambda ls: (
        calls.append(len(ls)) or [np.full((len(x), 4), len(x), np.float32) for x in ls]))
    with SharedModels(engine, BatchConfig(max_batch=8, max_wait_ms=100.0)) as shared:
        futures = [shared.words.submit(words) for words in lists]
        got = [f.result(timeout=10) for f in futures]
        ws = windows(engine, (4, 9))
        out = shared.predict(*ws[0])
    assert calls == [3]  # one forward for the three sessions' word lists
    assert [g.shape for g in got] == [(3, 4), (1, 4), (5, 4)]
    assert abs(out.sentiment - engine.predict(*ws[0]).sentiment) <= 1e-5


def test_an_engine_with_the_sentiment_model_alone_predicts_and_refuses_stages():
    from realtime.assets import AssetMissing, default_model_dir
    from realtime.engine import Engine, EngineError
    from realtime.extract.stages import StagesNotLoaded

    try:
        default_model_dir()
    except AssetMissing as exc:
        missing(f"no bundled model: {exc}")
    engine = Engine.load(device="cpu", stages=False, words=False)
    [out] = engine.predict_batch(windows(engine, (6,)))
    assert -3 <= out.sentiment <= 3 and out.model_name == "mmlatch"
    stages = engine.stages
    for left_out, error in ((stages.new_asr, StagesNotLoaded), (stages.new_face, StagesNotLoaded),
                            (lambda: engine.encode_words([]), EngineError)):
        with pytest.raises(error, match="loaded without it"):
            left_out()


@pytest.fixture(scope="module")
def expression_network():
    from models import expression
    from realtime.assets import AssetMissing, expression_model_path

    try:
        return expression.load(expression_model_path())
    except AssetMissing as exc:
        missing(f"no bundled expression network: {exc}")


def test_sessions_crops_classified_together_match_each_alone(expression_network):
    from realtime.serving.executor import SharedClassifier

    rng = np.random.default_rng(3)
    stacks = [rng.integers(0, 256, (n, 64, 64), dtype=np.uint8) for n in (1, 3, 1, 2, 1, 4)]
    alone = [expression_network.classify(s) for s in stacks]
    shared = SharedClassifier(expression_network.classify,
                              BatchConfig(max_batch=len(stacks), max_wait_ms=200.0))
    results: list = [None] * len(stacks)

    def session(i: int) -> None:
        results[i] = shared.classify(stacks[i])

    with shared.executor:
        threads = [threading.Thread(target=session, args=(i,)) for i in range(len(stacks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10.0)
        stats = shared.executor.stats()
    assert stats.windows == len(stacks) and stats.batches < len(stacks)  # some ran together
    for got, want in zip(results, alone, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def test_shared_models_classify_only_over_a_loaded_expression_network(expression_network):
    from realtime.extract.stages import ExpressionFactory, Stages
    from realtime.serving.executor import SharedModels

    assert SharedModels(fake_engine()).classifier is None  # a stand-in: no shared classifier
    engine = replace(fake_engine(), stages=Stages(
        new_asr=None, new_acoustic=None, new_face=None,
        new_expression=ExpressionFactory(expression_network, 5.0)))
    with SharedModels(engine) as shared:
        extractor = engine.stages.new_expression(shared.classifier)
        assert extractor.wants_crop(0.0)
        from realtime.extract.expression import FaceCrop

        grey = np.full((64, 64), 128, np.uint8)
        extractor.insert_crop(FaceCrop(0.0, grey, 0.0))
        extractor.insert_crop(FaceCrop(0.1, grey, 0.1))  # same 0.2 s slot: let go
        rows = extractor.process_iter()
        assert shared.classifier.executor.stats().windows == 1
    np.testing.assert_allclose(rows.values[:, :7], expression_network.classify(grey[None]),
                               atol=1e-5)
    assert extractor.decimated == 1
