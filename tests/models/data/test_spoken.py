"""The "spoken-mosi" dataset in the registry: a tiny synthetic cache trains end to end through
`python -m models.train`, a missing cache names the build command, validation prefers the most
realistic word source of the chosen voice, and the candidate-selection rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import checkpoint
from models.data.base import DataError
from models.data.registry import DATASETS, load_dataset
from models.data.spoken import (
    SPOKEN_ENV,
    SpokenMeta,
    SpokenSplit,
    file_name,
    find_files,
    spoken_dir,
    train_valid_bundle,
    valid_files,
    write_split,
)
from models.training.train_spoken import select


def _split(split: str, n: int, voice: str = "en-gb", words: str = "oracle",
           seed: int = 0) -> SpokenSplit:
    """n segments whose first text column carries the label (a learnable signal)."""
    rng = np.random.default_rng(seed)
    labels = rng.uniform(-3, 3, n).astype(np.float32)
    steps = [int(k) for k in rng.integers(2, 6, n)]
    text = tuple(np.column_stack([np.full(t, y / 3), rng.normal(0, 0.1, (t, 5))]).astype(
        np.float32) for t, y in zip(steps, labels, strict=True))
    meta = SpokenMeta(split, voice, 150, words, "", ("energy_db", "f0_hz", "x"),
                      ("smile", "face_present"))
    return SpokenSplit(meta, tuple(f"{split}{voice}_{i}" for i in range(n)), labels,
                       tuple("w" for _ in range(n)), text,
                       tuple(rng.normal(size=(t, 3)).astype(np.float32) for t in steps),
                       tuple(np.zeros((t, 2), np.float32) for t in steps))


def _cache(root, test: bool = True) -> None:
    write_split(root / file_name("train", "en-gb", 150, "oracle"), _split("train", 48))
    write_split(root / file_name("train", "en-gb", 150, "asr"),
                _split("train", 40, words="asr", seed=1))
    write_split(root / file_name("valid", "en-gb", 150, "oracle"), _split("valid", 9, seed=2))
    write_split(root / file_name("valid", "en-us-nyc", 150, "live"),
                _split("valid", 12, voice="en-us-nyc", words="live", seed=3))
    if test:
        write_split(root / file_name("test", "en-us", 150, "oracle"), _split("test", 10, seed=4))


def test_spoken_mosi_is_registered_and_a_missing_cache_names_the_builder(tmp_path, monkeypatch):
    assert "spoken-mosi" in DATASETS
    monkeypatch.setenv(SPOKEN_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="python -m realtime.eval.spoken_mosi"):
        load_dataset("spoken-mosi")
    monkeypatch.setenv(SPOKEN_ENV, str(tmp_path))
    with pytest.raises(DataError, match="python -m realtime.eval.spoken_mosi --split train"):
        load_dataset("spoken-mosi")
    _cache(tmp_path, test=False)
    with pytest.raises(DataError, match="no spoken-MOSI test files.*realtime.eval.spoken_mosi"):
        load_dataset("spoken-mosi")


def test_models_train_runs_on_a_tiny_spoken_cache(tmp_path, monkeypatch, capsys):
    from models.training.train import main

    _cache(tmp_path)
    monkeypatch.setenv(SPOKEN_ENV, str(tmp_path))
    bundle = load_dataset("spoken-mosi")
    assert (len(bundle.train), len(bundle.valid), len(bundle.test)) == (88, 12, 10)
    assert bundle.dims.as_tuple() == (6, 3, 2) and not bundle.per_step
    assert "en-us-nyc@150 (valid, live)" in bundle.description
    out = tmp_path / "run"
    main(["--model", "late_fusion", "--data", "spoken-mosi", "--max-epochs", "2",
          "--set", "hidden=8", "--no-progress", "--out", str(out)])
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(metrics) >= {"acc2_non0", "mae", "corr"} and np.isfinite(metrics["mae"])
    assert checkpoint.load(out).config.name == "late_fusion"
    assert checkpoint.read_meta(out)["data"] == "spoken-mosi"


def test_validation_prefers_live_words_of_the_chosen_voice(tmp_path):
    _cache(tmp_path)
    assert [p.name for p in valid_files(tmp_path)] == ["valid__en-us-nyc-150__live.npz"]
    assert [p.name for p in valid_files(tmp_path, "en-gb-150")] == ["valid__en-gb-150__oracle.npz"]
    assert valid_files(tmp_path, "xx-150") == []
    bundle, files = train_valid_bundle(tmp_path, words="asr", valid_voice="en-gb-150")
    assert len(bundle.train) == 40 and len(bundle.valid) == 9
    assert [p.name for p in files["train"]] == ["train__en-gb-150__asr.npz"]
    with pytest.raises(DataError, match="of voice xx-150"):
        train_valid_bundle(tmp_path, valid_voice="xx-150")


def test_selection_rule_is_acc2_non0_then_mae():
    rows = [{"checkpoint": "a", "acc2_non0": 0.80, "mae": 0.90},
            {"checkpoint": "b", "acc2_non0": 0.82, "mae": 0.95},
            {"checkpoint": "c", "acc2_non0": 0.82, "mae": 0.85}]
    assert [r["checkpoint"] for r in select(rows)] == ["c", "b", "a"]


def test_the_real_cache_loads_when_built():
    """The built spoken-MOSI cache (user cache or $SPOKEN_MOSI_DIR) reads back; skips when
    it has not been built on this machine."""
    root = spoken_dir()
    if not find_files("train", root=root) or not valid_files(root):
        pytest.skip(f"no spoken-MOSI cache at {root} (python -m realtime.eval.spoken_mosi)")
    bundle, files = train_valid_bundle(root, words="oracle")
    assert len(bundle.train) % 1284 == 0 and len(bundle.valid) == 229 * len(files["valid"])
    assert bundle.dims.as_tuple() == (384, 35, 56)
    assert float(bundle.valid.labels.abs().max()) <= 3.0
