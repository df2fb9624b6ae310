"""Training recipes for mosi-utt: input noise, and the cross-fitted choice over
(recipe, epoch) candidates (models.training.recipes)."""

import dataclasses

import numpy as np
import pytest
import torch

from models.training.crossfit import halves
from models.training.recipes import EPOCH_PREDS, RECIPES, pooled
from models.training.train import add_input_noise
from tests.models.test_models_recipe import ragged_split


def test_input_noise_has_the_asked_std_and_spares_padding_and_absent_inputs():
    split = ragged_split(n=40, seed=5)
    batch = split.batch(range(len(split)))
    batch = dataclasses.replace(batch, audio=torch.zeros_like(batch.audio))
    assert add_input_noise(batch, 0.0, torch.Generator()) is batch
    noisy = add_input_noise(batch, 0.5, torch.Generator().manual_seed(3))
    valid = torch.arange(batch.text.shape[1])[None, :] < batch.lengths[:, None]
    delta = (noisy.text - batch.text)
    assert torch.equal(delta[~valid], torch.zeros_like(delta[~valid]))
    assert float(delta[valid].std()) == pytest.approx(0.5, rel=0.08)
    assert float(delta[valid].mean()) == pytest.approx(0.0, abs=0.05)
    assert torch.equal(noisy.audio, batch.audio)  # absent modality: still all zeros
    assert not torch.equal(noisy.video, batch.video)
    again = add_input_noise(batch, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(again.text, noisy.text) and torch.equal(noisy.labels, batch.labels)


def _run(tmp_path, name, preds, labels, lengths):
    run = tmp_path / name
    run.mkdir()
    np.savez_compressed(run / EPOCH_PREDS, preds=np.asarray(preds, np.float32),
                        labels=labels, lengths=lengths)
    return run


def test_pooled_scores_each_half_with_the_recipe_and_epoch_best_on_the_other(tmp_path):
    lengths = np.array([2, 1, 3, 2])
    half = halves(len(lengths))
    of_step = np.repeat(half, lengths)
    labels = np.linspace(-2, 2, int(lengths.sum())).astype(np.float32)
    exact_on_a = np.where(of_step == 0, labels, labels + 2.0)
    exact_on_b = np.where(of_step == 1, labels, labels + 2.0)
    off = labels + 1.0
    runs = {"issue": _run(tmp_path, "r0", [off, exact_on_b], labels, lengths),
            "batch8": _run(tmp_path, "r1", [exact_on_a, off, off], labels, lengths)}
    result = pooled(runs)
    # half A is scored with the candidate best on half B (issue, epoch 2), and vice versa
    assert result.chosen == (("issue", 2), ("batch8", 1))
    # so every step is 2.0 off: neither half is scored with its own best candidate
    assert result.metrics["mae"] == pytest.approx(2.0, abs=1e-6)


def test_pooled_refuses_runs_of_other_test_steps_and_names_missing_files(tmp_path):
    lengths, labels = np.array([1, 2]), np.zeros(3, np.float32)
    a = _run(tmp_path, "a", [labels], labels, lengths)
    b = _run(tmp_path, "b", [labels], labels + 1, lengths)
    with pytest.raises(ValueError, match="other test steps"):
        pooled({"issue": a, "batch8": b})
    with pytest.raises(FileNotFoundError, match=EPOCH_PREDS):
        pooled({"issue": tmp_path})
    with pytest.raises(ValueError, match="no runs"):
        pooled({})
    assert RECIPES["issue"] == ()


def test_train_writes_the_epoch_predictions_that_pooled_reads(tmp_path):
    from models.training.train import build_parser, run

    out = tmp_path / "run"
    args = build_parser().parse_args([
        "--model", "late_fusion", "--data", "synthetic", "--max-epochs", "3", "--crossfit",
        "--input-noise", "0.3", "--set", "hidden=8", "--set", "head_hidden=8",
        "--no-progress", "--out", str(out)])
    run(args)
    with np.load(out / EPOCH_PREDS) as f:
        assert f["preds"].shape[0] >= 1 and f["preds"].shape[1] == f["labels"].shape[0]
    result = pooled({"issue": out})
    assert set(result.metrics) >= {"acc2_has0", "mae"} and result.chosen[0][0] == "issue"


def test_results_page_shows_every_recipe_and_the_pooled_choice(tmp_path):
    from models.metrics import KEYS
    from models.results.report import render
    from models.results.run import (
        DATA_ARGS,
        MODELS,
        attach_pooled,
        recipe_jobs,
        run_dir,
        train_args,
    )

    lengths = np.array([3, 2, 4, 1])
    labels = np.linspace(-2.5, 2.5, int(lengths.sum())).astype(np.float32)
    extra_of = {r: train_args("mosi-utt", list(a), "timestamped") for r, a in RECIPES.items()}

    def record(model, seed, acc):
        vals = dict(zip(KEYS, [acc, 0.81, 0.8, 0.8, 0.3, 0.9, 0.6], strict=True))
        return {"model": model, "data": "mosi-utt", "seed": seed, "best_epoch": 1,
                "epochs": 2, "description": "desc", "metrics": vals, "metrics_crossfit": vals}

    records, recipe_records = [], {}
    for seed in (0, 1):
        for model in ("mmlatch", "late_fusion"):
            records.append(record(model, seed, 0.79))
            for name, extra in extra_of.items():
                run = run_dir(tmp_path, "mosi-utt", model, seed, extra)
                run.mkdir(parents=True)
                # only mmlatch's batch8 recipe predicts the signs right
                good = model == "mmlatch" and name == "batch8"
                preds = [labels if good else -labels, labels * 0 + 0.5]
                np.savez_compressed(run / EPOCH_PREDS, preds=np.stack(preds), labels=labels,
                                    lengths=lengths)
                if name != "issue":
                    recipe_records.setdefault(name, []).append(record(model, seed, 0.8))
    assert ("batch8", "mmlatch", 0) in [(r, m, s) for r, m, s in recipe_jobs(
        ["mmlatch", "text_only"], 2)]
    assert all(m != "text_only" and r != "issue" for r, m, _ in recipe_jobs(["text_only"], 2))
    attach_pooled(records, tmp_path, extra_of)
    mm = [r for r in records if r["model"] == "mmlatch"]
    assert all(r["pooled_chosen"] == (("batch8", 1), ("batch8", 1)) for r in mm)
    assert all(r["metrics_pooled"]["acc2_has0"] == 1.0 for r in mm)
    md = render(records, ["mmlatch", "late_fusion"], ["mosi-utt"], "cmd",
                recipe_records=recipe_records, data_args=DATA_ARGS, grid_models=MODELS)
    assert "### Cross-fitted choice of recipe and epoch (models.training.recipes)" in md
    assert "| batch8 | `--batch-size=8` | 80.0 / 80.0 | 80.0 / 80.0 |" in md
    assert "| mmlatch | 2 | 100.0 ± 0.0 |" in md
    assert "- mmlatch: seed 0: batch8@1 / batch8@1; seed 1: batch8@1 / batch8@1" in md
    assert ("mmlatch, cross-fitted choice of recipe and epoch (models.training.recipes): Acc2 has0 "
            "100.0") in md and "meets the 81% goal" in md
