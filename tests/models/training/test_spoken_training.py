"""Spoken-MOSI training augmentation, the short training loop, and the results-doc writer."""

from __future__ import annotations

import numpy as np
import torch

from models.base import InputDims
from models.data.base import Batch, DatasetBundle, make_split
from models.registry import create
from models.training.train_spoken import Augment, augment, fit, random_faces
from realtime.eval.live import write_doc


def _batch(n: int = 64, steps: int = 4) -> Batch:
    return Batch(torch.ones(n, steps, 6), torch.ones(n, steps, 3), torch.zeros(n, steps, 5),
                 torch.full((n,), steps - 1), torch.zeros(n))


def test_augment_drops_and_adds_faces_at_the_stated_rates():
    aug = Augment(p_audio=0.5, p_text=0.1, p_face=0.5, face_present_index=4, blend_columns=3)
    gen = np.random.default_rng(0)
    text_off = audio_off = faces = 0
    for _ in range(20):
        b = augment(_batch(), aug, gen)
        t = b.text.abs().sum((1, 2)) == 0
        a = b.audio.abs().sum((1, 2)) == 0
        f = b.video[:, :, 4].sum(1) > 0
        assert not (t & a).any()  # never both
        assert (b.video[:, 3:, :] == 0).all()  # padding stays zero
        text_off, audio_off, faces = text_off + int(t.sum()), audio_off + int(a.sum()), \
            faces + int(f.sum())
    n = 20 * 64
    assert 0.05 < text_off / n < 0.15 and 0.35 < audio_off / n < 0.55 and 0.4 < faces / n < 0.6


def test_random_faces_look_like_face_features():
    gen, partial = np.random.default_rng(1), 0
    for _ in range(50):
        rows = random_faces(7, 56, Augment(face_present_index=55), gen)
        assert rows.shape == (7, 56) and rows.dtype == np.float32
        assert ((rows[:, :52] >= 0) & (rows[:, :52] <= 1)).all()
        present = rows[:, 55] == 1
        first = int(np.argmax(present))
        assert present[first:].all() and not rows[:first].any()  # a face may enter late
        partial += first > 0
        assert np.abs(rows[:, 52:55]).max() < 2.0
    assert 2 <= partial <= 20


def test_fit_learns_a_text_signal_and_keeps_the_best_epoch():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dims = InputDims(8, 3, 4)

    def split(n):
        y = rng.uniform(-2, 2, n).astype(np.float32)
        text = [np.outer(np.ones(3), np.r_[v, rng.normal(0, 0.1, 7)]).astype(np.float32)
                for v in y]
        audio = [rng.normal(size=(3, 3)).astype(np.float32) for _ in y]
        video = [np.zeros((3, 4), np.float32) for _ in y]
        return make_split(text, audio, video, list(y), [str(i) for i in range(n)], False)

    bundle = DatasetBundle("toy", dims, False, split(96), split(32), split(8), "toy")
    model = create("late_fusion", dims, hidden=8, head_hidden=8)
    seen = []
    result = fit(model, bundle, Augment(face_present_index=3, blend_columns=2), lr=5e-3,
                 max_epochs=10, patience=10,
                 on_best=lambda m, e, v: seen.append((e, v)))
    valid = [h["valid_l1"] for h in result.history]
    assert result.valid_l1 == min(valid) and seen[-1] == (result.best_epoch, min(valid))
    assert result.epochs == len(valid) == 10
    assert min(valid) < 0.6 * valid[0]
    assert not model.training


def test_write_doc_replaces_only_the_generated_block(tmp_path):
    metrics = {"acc2_has0": 0.8, "acc2_non0": 0.81, "f1_has0": 0.79, "f1_non0": 0.8,
               "acc7": 0.3, "mae": 0.9, "corr": 0.7}
    worse = {**metrics, "acc2_non0": 0.77}
    doc = tmp_path / "r.md"
    doc.write_text("# Title\n\nintro\n<!-- eval_live:begin -->\nold\n<!-- eval_live:end -->\nend\n")
    result = {"segments": 10, "limit": 10, "seed": 0, "test_voice": "en-us@165",
              "model": "mmlatch", "live": worse, "oracle": metrics, "text_only": metrics,
              "robustness": {"segments": 2, "face_added": {"mean_abs": 0.1, "p90_abs": 0.2,
                                                           "max_abs": 0.3},
                             "alt_voice": {"mean_abs": 0.2, "p90_abs": 0.3, "max_abs": 0.4,
                                           "voice": "x@150"}}}
    write_doc(result, doc)
    text = doc.read_text()
    assert text.startswith("# Title\n\nintro\n") and text.endswith("end\n")
    assert "old" not in text and "| 0.770 |" in text and "+4.0 points" in text
    assert "face stream added" in text and "x@150" in text
    write_doc(result, doc)  # idempotent
    assert doc.read_text() == text
