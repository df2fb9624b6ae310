"""Training behaviour on the synthetic task, and the train / evaluate / results commands."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from models.data.synthetic import make_synthetic
from models.env import OFFLINE_ENV
from models.metrics import KEYS
from models.registry import create
from models.results.report import render
from models.results.run import DATA_ARGS, MODELS
from models.training.train import TrainConfig, evaluate_split, seed_everything, task_loss, train
from models.training.train import main as train_main
from tests.helpers import REPO  # noqa: E402

ENV = {**os.environ, **OFFLINE_ENV}


def _terms(model, split):
    model.eval()
    with torch.no_grad():
        b = split.batch(range(len(split)))
        out = model(b.text, b.audio, b.video, b.lengths)
    return {**{k: float(v) for k, v in out.terms.items()},
            "task": float(task_loss(out.sentiment, b.labels, b.lengths))}


def test_mmmie_terms_finite_and_fall_on_synthetic():
    torch.set_num_threads(1)
    data = make_synthetic(seed=0, n_train=128, n_valid=64, n_test=16, steps=8, groups=2,
                          distractor=3.0)
    seed_everything(0)
    model = create("mmmie", data.dims, d_model=16, heads=2, layers=1, head_hidden=16)
    before = _terms(model, data.valid)
    train(model, data, TrainConfig(lr=3e-3, max_epochs=8, patience=8), progress=False)
    after = _terms(model, data.valid)
    assert set(before) == {"kl", "infonce", "task"}
    for key in before:
        assert torch.isfinite(torch.tensor([before[key], after[key]])).all()
        assert after[key] < before[key], (key, before[key], after[key])


@pytest.mark.slow
def test_mmlatch_beats_no_feedback_on_gating_task():
    """The text decides which video channels matter: top-down masks should help."""
    torch.set_num_threads(1)
    data = make_synthetic(seed=0, n_train=192, n_valid=64, n_test=128, steps=8, groups=4,
                          distractor=3.0)
    mae = {}
    for name in ("mmlatch", "mmlatch_nofb"):
        seed_everything(0)
        model = create(name, data.dims, hidden=16, head_hidden=16,
                       **({"feedback_type": "linear"} if name == "mmlatch" else {}))
        train(model, data, TrainConfig(lr=5e-3, max_epochs=15, patience=15), progress=False)
        mae[name] = evaluate_split(model, data.test)[0].mae
    assert mae["mmlatch"] < mae["mmlatch_nofb"], mae


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_train_cli_is_deterministic_and_evaluate_agrees(tmp_path):
    args = ["models.train", "--model", "late_fusion", "--data", "synthetic", "--seed", "3",
            "--max-epochs", "1", "--set", "hidden=8", "--set", "head_hidden=8"]
    a = _cli(*args, "--out", str(tmp_path / "a"), "--log-level", "INFO")
    b = _cli(*args, "--out", str(tmp_path / "b"))
    ma, mb = json.loads(a.stdout.splitlines()[-1]), json.loads(b.stdout.splitlines()[-1])
    assert tuple(ma) == KEYS and ma == mb
    assert "train late_fusion" in b.stderr  # the progress bar, named after the model
    assert f"INFO models.checkpoint: saved late_fusion checkpoint to {tmp_path / 'a'}" in a.stderr
    assert "INFO models.training.train: epoch 1:" in a.stderr
    assert " INFO " not in b.stderr  # default --log-level WARNING
    ev = _cli("models.evaluate", "--checkpoint", str(tmp_path / "a"), "--data", "synthetic",
              "--seed", "3")
    assert json.loads(ev.stdout.splitlines()[-1]) == pytest.approx(ma)
    assert ev.stdout.startswith(f"late_fusion from {tmp_path / 'a'} on synthetic test: ")
    meta = json.loads((tmp_path / "a" / "config.json").read_text())["meta"]
    assert meta["data"] == "synthetic" and meta["seed"] == 3


def test_train_cli_rejects_bad_override():
    with pytest.raises(TypeError, match="unknown config fields"):
        train_main(["--model", "mmlatch", "--data", "synthetic", "--set", "hiden=3"])


def test_results_render_mean_std_and_anchors():
    rec = [{"model": "mmlatch", "data": "mosi-utt", "seed": s, "best_epoch": 1, "epochs": 2,
            "description": "desc", "metrics": {k: v for k, v in zip(
                KEYS, [0.8 + s / 100, 0.81, 0.8, 0.8, 0.3, 0.9, 0.6], strict=True)}}
           for s in (0, 1)]
    md = render(rec, ["mmlatch", "late_fusion"], ["mosi-utt", "mosi-text"], "cmd",
                data_args=DATA_ARGS, grid_models=MODELS)
    assert ("extra per-dataset arguments: {'mosi-utt': ['--crossfit'], 'mosi-text': "
            "['--max-epochs', '15', '--bucket', '--zero-input-shortcut']}.") in md
    assert "| mmlatch | 2 | 80.5 ± 0.7 |" in md
    assert "late_fusion |" not in md.split("Anchors")[0].split("Per seed")[0]
    assert "80.3%" in md and "Poria et al." in md
    assert "## mosi-text\n\nNot run." in md


def test_the_results_grid_lives_in_run_and_the_page_module_never_imports_it():
    from models.results import run

    code = "import sys, models.results.report; print('models.results.run' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
    assert run.MODELS == ("mmlatch", "mmmie", "late_fusion", "text_only", "mult", "mmlatch_nofb")
    assert run.DATA == ("mosi-utt", "mosi-text")
    assert run.train_args("mosi-text", ["--max-epochs=5"], "transcripts") == [
        "--max-epochs", "15", "--bucket", "--zero-input-shortcut", "--max-epochs=5",
        "--words", "transcripts"]


def test_train_cli_zero_input_shortcut_is_a_model_option(monkeypatch, capsys):
    """--zero-input-shortcut builds the model with the option (nothing process-wide) and
    gives the same metrics as a run without it."""
    from models.training import train as train_module

    built = []

    def spy(*args, **kwargs):
        built.append(create(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(train_module, "create", spy)
    args = ["--model", "late_fusion", "--data", "synthetic", "--seed", "3", "--max-epochs", "1",
            "--set", "hidden=8", "--set", "head_hidden=8", "--no-progress"]
    metrics = []
    for extra in ([], ["--zero-input-shortcut"]):
        train_main(args + extra)
        metrics.append(json.loads(capsys.readouterr().out.splitlines()[-1]))
    assert [m.config.zero_input_shortcut for m in built] == [False, True]
    assert built[1].encoders["audio"].rnn.zero_input_shortcut
    assert not create("late_fusion", built[0].config.dims).encoders["audio"].rnn \
        .zero_input_shortcut
    assert metrics[0] == metrics[1]


@pytest.mark.parametrize("module", ["models.training.train", "models.training.evaluate",
                                    "models.training.calibrate", "models.results.run",
                                    "models.training.train_spoken", "models.training.leakage"])
def test_every_models_cli_takes_log_level(module, capsys):
    import importlib

    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--log-level {DEBUG,INFO,WARNING,ERROR}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--log-level", "LOUD"])
    assert exc.value.code == 2
    assert "invalid choice: 'LOUD'" in capsys.readouterr().err


def test_face_weight_is_fitted_where_a_planted_expression_predicts_the_labels():
    from models.training.calibrate import fit_face_weight

    rng = np.random.default_rng(0)
    n = 200
    model = rng.uniform(-1, 1, n)  # the words model, unrelated to the user's face
    valence = rng.uniform(-1, 1, n)
    valence[::10] = np.nan  # no face in those windows: ignored
    labels = np.clip(model + 2.0 * np.nan_to_num(valence) + 0.1 * rng.standard_normal(n),
                     -3, 3)
    w = fit_face_weight(model, valence, labels)
    assert abs(w - 2.0) < 0.15
    assert abs(fit_face_weight(model, valence, model + 0.1 * rng.standard_normal(n))) < 0.1
    assert fit_face_weight(model[:5], valence[:5], labels[:5]) == 0.0  # too few faces
    assert fit_face_weight(model, np.full(n, np.nan), labels) == 0.0  # never a face
    with pytest.raises(ValueError, match="equal lengths"):
        fit_face_weight(model, valence[:3], labels)
