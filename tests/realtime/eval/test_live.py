"""realtime.eval.live without replaying: nested subsets, the per-clip window cache, the
validation "live" file, and the results-doc scope line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data.spoken import Segment, read_split
from realtime.eval.live import FinalWindow, Replayer, ordered, write_doc, write_live_split
from realtime.eval.spoken_mosi import ALT_TEST_VOICE, TEST_VOICE, TRAIN_VOICES, VALID_VOICES, Voice
from realtime.extract.asr import DEFAULT_ASR_POLICY


def _segments(n: int) -> list[Segment]:
    return [Segment(f"vid{i:03d}_1", "a b c", float(i % 7 - 3), "valid") for i in range(n)]


def test_ordered_subsets_are_nested_and_fixed():
    segs = _segments(50)
    full = ordered(segs, None, 0)
    assert sorted(s.id for s in full) == [s.id for s in segs]  # a permutation
    assert [s.id for s in full] != [s.id for s in segs]  # shuffled
    assert ordered(segs, 10, 0) == full[:10] and ordered(segs, 30, 0)[:10] == full[:10]
    assert ordered(list(reversed(segs)), 10, 0) == full[:10]  # input order does not matter
    assert ordered(segs, 10, 1) != full[:10]


def test_voices_for_training_selection_and_test_are_disjoint():
    tests = {TEST_VOICE, ALT_TEST_VOICE}
    assert not set(VALID_VOICES) & set(TRAIN_VOICES) and not set(VALID_VOICES) & tests
    assert not set(TRAIN_VOICES) & tests


def _cached_window(root, kind: str, seg_id: str, steps: int, seed: int) -> FinalWindow:
    rng = np.random.default_rng(seed)
    win = FinalWindow(rng.normal(size=(steps, 384)).astype(np.float32),
                      rng.normal(size=(steps, 35)).astype(np.float32),
                      np.zeros((steps, 56), np.float32), ("good", "film"), 1.5)
    path = root / "live" / DEFAULT_ASR_POLICY / kind / f"{seg_id}.npz"  # the default's cache
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, text=win.text, audio=win.audio, video=win.video,
             words=np.asarray(win.words, dtype=str), replay_s=win.replay_s)
    return win


def test_cached_windows_are_read_back_without_loading_the_pipeline(tmp_path):
    voice = Voice("en-us-nyc", 160)
    segs = _segments(3)
    wins = [_cached_window(tmp_path, f"valid/{voice.tag}", s.id, 2 + i, i)
            for i, s in enumerate(segs)]
    rep = Replayer(tmp_path)
    back = rep.window(tmp_path / "missing.wav", f"valid/{voice.tag}", segs[1].id)
    assert rep._engine is None  # nothing replayed: the cache answered
    np.testing.assert_array_equal(back.text, wins[1].text)
    assert back.words == ("good", "film") and back.replay_s == 1.5
    text, audio, video, lengths = back.tensors()
    assert text.shape == (1, 3, 384) and video.shape == (1, 3, 56)
    assert lengths.tolist() == [3] and lengths.dtype == torch.int64

    path = write_live_split(segs, voice, "valid", rep, log=lambda _: None)
    data = read_split(path)
    assert path.name == "valid__en-us-nyc-160__live.npz"
    assert data.meta.words == "live" and data.meta.voice == "en-us-nyc"
    assert data.ids == tuple(s.id for s in segs) and data.words[0] == "good film"
    assert [len(t) for t in data.text] == [2, 3, 4]
    np.testing.assert_allclose(data.labels, [s.label for s in segs])


def test_write_doc_states_the_nested_subset(tmp_path):
    m = {"acc2_has0": 0.8, "acc2_non0": 0.8, "f1_has0": 0.8, "f1_non0": 0.8, "acc7": 0.3,
         "mae": 0.9, "corr": 0.7}
    doc = tmp_path / "r.md"
    base = {"test_voice": "en-us@165", "model": "mmlatch", "live": m, "oracle": m, "seed": 0}
    write_doc({**base, "segments": 300, "limit": 300}, doc)
    assert "the first 300 of the 686 test segments in a fixed random order (seed 0" in \
        doc.read_text()
    worse = {**m, "acc2_non0": 0.75, "mae": 1.1}
    write_doc({**base, "segments": 686, "limit": None,
               "also": {"mmmie": {"live": worse, "oracle": m}}}, doc)
    text = doc.read_text()
    assert "all 686 test segments" in text and "first 300" not in text
    assert "| mmmie | 0.750 | 1.100 | 0.800 | 0.900 |" in text


@pytest.mark.parametrize("limit", [0, 5])
def test_ordered_limit_edges(limit):
    assert len(ordered(_segments(8), limit, 0)) == limit


def test_a_replayed_clip_caches_the_final_window_behind_the_last_prediction(tmp_path,
                                                                           monkeypatch):
    from realtime.engine import Engine
    from realtime.eval.live import predict_window, replay
    from tests.helpers import media
    from tests.realtime.test_pipeline import fake_engine

    engine = fake_engine()
    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, *a, **k: engine))
    clip = media.face_video(tmp_path, seconds=2.0, fps=10, with_audio_text="hello there")
    res = replay(clip, engine)
    assert res.words == tuple(w.text for w in res.window.words) and res.seconds > 0
    np.testing.assert_array_equal(engine.model.inputs[-1][0], res.window.text)  # the model's

    rep = Replayer(tmp_path / "root")
    win = rep.window(clip, "test/voice", "clip1")
    assert win.words == res.words and win.text.dtype == np.float32
    np.testing.assert_array_equal(win.audio, res.window.audio)
    assert predict_window(engine.model, win.tensors()) == pytest.approx(res.sentiment, abs=1e-6)
    again = Replayer(tmp_path / "root").window(tmp_path / "gone.mp4", "test/voice", "clip1")
    np.testing.assert_array_equal(again.video, win.video)  # from the cache


def test_policies_are_compared_on_the_same_segments_with_a_paired_test(tmp_path):
    from types import SimpleNamespace

    from realtime.eval.live import compare_policies

    class FirstValue(torch.nn.Module):  # the sentiment is the window's text[0, 0]
        def forward(self, text, audio, video, lengths):
            return SimpleNamespace(sentiment=text[:, 0, 0], masks=None)

    segs = [Segment(f"vid{i:03d}_1", "good film", label, "test")
            for i, label in enumerate((1.0, 2.0, -1.0, -2.0, 1.5, 0.0))]
    sentiments = {"pause": (1.0, -1.0, -1.0, 1.0, 1.0, 1.0),  # wrong on segments 1 and 3
                  "agreement": (1.0, 1.0, -1.0, -1.0, -1.0, 1.0)}  # wrong on segment 4
    for policy, values in sentiments.items():
        for seg, value in zip(segs, values, strict=True):
            path = tmp_path / "live" / policy / f"test/{TEST_VOICE.tag}" / f"{seg.id}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            text = np.full((2, 384), value, np.float32)
            np.savez(path, text=text, audio=np.zeros((2, 35), np.float32),
                     video=np.zeros((2, 56), np.float32),
                     words=np.asarray(["good", "film"], dtype=str), replay_s=1.0)
    out, rows = compare_policies(segs, ["pause", "agreement"], FirstValue(), tmp_path,
                                 log=lambda _: None)
    paired = out["paired_acc2_non0"]["pause_vs_agreement"]
    assert (paired["n"], paired["only_a"], paired["only_b"], paired["both"]) == (5, 1, 2, 2)
    assert paired["acc_a"] == 0.6 and paired["acc_b"] == 0.8 and paired["mcnemar_p"] == 1.0
    assert out["pause"]["live"]["acc2_non0"] == 0.6 and out["pause"]["wer"] == 0.0
    assert [p for p, _ in rows["agreement"]] == list(sentiments["agreement"])
    assert rows["pause"][0][1] == "good film"
