"""Calibration session files broken in every way we could make them (generated here):
`python -m models.calibrate --session F` exits 2 with one line and saves nothing; none
gives a traceback, and poison (NaN features or labels, labels out of range, bad offsets)
never reaches training."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from models import checkpoint
from models.base import InputDims
from models.data.sessions import FORMAT, Session, SessionError, read_session, write_session
from models.registry import create
from models.training.calibrate import main

DIMS = InputDims(4, 3, 5)
N = 10


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    steps = np.array([2, 3, 1, 2, 2, 3, 1, 2, 2, 2])
    total = int(steps.sum())
    return {
        "text": rng.normal(size=(total, DIMS.text)).astype(np.float32),
        "audio": rng.normal(size=(total, DIMS.audio)).astype(np.float32),
        "video": rng.normal(size=(total, DIMS.video)).astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(steps)]).astype(np.int64),
        "labels": rng.uniform(-3, 3, N).astype(np.float32),
        "t_s": np.arange(N, dtype=np.float64),
        "model_sentiment": rng.uniform(-3, 3, N).astype(np.float32),
        "face_valence": np.where(np.arange(N) % 3, 0.5, np.nan).astype(np.float32),
        "expression": np.full((N, 7), 1 / 7, np.float32),
        "meta": np.asarray(json.dumps({"format": FORMAT, "dims": list(DIMS.as_tuple())})),
    }


def _set(key, value):
    return lambda a: a.__setitem__(key, value)


def _poke(key, index, value):
    def edit(a):
        a[key] = a[key].copy()
        a[key][index] = value
    return edit


EDITS = {
    "no-labels": lambda a: a.pop("labels"),
    "no-meta": lambda a: a.pop("meta"),
    "meta-not-dict": _set("meta", np.asarray(json.dumps([1, 2, 3]))),
    "meta-not-json": _set("meta", np.asarray("{format")),
    "meta-number": _set("meta", np.asarray(3.0)),
    "meta-format-3": _set("meta", np.asarray(json.dumps({"format": 3, "dims": [4, 3, 5]}))),
    "format-2-without-faces": lambda a: a.pop("face_valence"),
    "face-valence-2": _poke("face_valence", 1, 2.0),
    "model-sentiment-inf": _poke("model_sentiment", 0, np.inf),
    "expression-6-classes": lambda a: a.__setitem__("expression", a["expression"][:, :6]),
    "meta-dims-wrong": _set("meta", np.asarray(json.dumps({"format": 1, "dims": [4, 3, 6]}))),
    "meta-dims-text": _set("meta", np.asarray(json.dumps({"format": 1, "dims": "4,3,5"}))),
    "text-rank-1": lambda a: a.__setitem__("text", a["text"].reshape(-1)),
    "audio-rank-3": lambda a: a.__setitem__("audio", a["audio"][None]),
    "video-fewer-steps": lambda a: a.__setitem__("video", a["video"][:-1]),
    "text-int": lambda a: a.__setitem__("text", a["text"].astype(np.int32)),
    "text-nan": _poke("text", (0, 0), np.nan),
    "audio-inf": _poke("audio", (3, 1), np.inf),
    "label-nan": _poke("labels", 2, np.nan),
    "label-1e30": _poke("labels", 2, 1e30),
    "label-4": _poke("labels", 0, 4.0),
    "labels-2d": lambda a: a.__setitem__("labels", a["labels"][:, None]),
    "labels-empty": lambda a: a.update(labels=a["labels"][:0], t_s=a["t_s"][:0],
                                       offsets=a["offsets"][:1]),
    "t-nan": _poke("t_s", 1, np.nan),
    "t-short": lambda a: a.__setitem__("t_s", a["t_s"][:-1]),
    "offsets-decrease": _poke("offsets", 3, 1),
    "offsets-out-of-bounds": _poke("offsets", -1, 10_000),
    "offsets-not-from-0": _poke("offsets", 0, 1),
    "offsets-float": lambda a: a.__setitem__("offsets", a["offsets"].astype(np.float64)),
    "offsets-empty-sample": _poke("offsets", 1, 0),
    "labels-string": _set("labels", np.asarray(["a"] * N)),
}


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return checkpoint.save(create("mmlatch", DIMS, hidden=8, head_hidden=6),
                           tmp_path_factory.mktemp("base"))


def _calibrate(session, base_dir, out, capsys) -> str:
    code = main(["--session", str(session), "--base", str(base_dir), "--out", str(out),
                 "--epochs", "2", "--min-samples", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("calibrate: ") and err.count("\n") == 1, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("version", [FORMAT, 1])
def test_the_unspoiled_session_calibrates(tmp_path, base_dir, capsys, version):
    arrays = _arrays()
    if version == 1:  # the first format: no face arrays, still read
        for key in ("model_sentiment", "face_valence", "expression"):
            arrays.pop(key)
        arrays["meta"] = np.asarray(json.dumps({"format": 1, "dims": list(DIMS.as_tuple())}))
    session = _write(tmp_path / "ok.npz", arrays)
    out = tmp_path / "out"
    assert main(["--session", str(session), "--base", str(base_dir), "--out", str(out),
                 "--epochs", "2", "--min-samples", "1"]) == 0
    assert checkpoint.load(out) is not None


@pytest.mark.parametrize("name", list(EDITS))
def test_a_malformed_session_exits_2_in_one_line(tmp_path, base_dir, capsys, name):
    arrays = _arrays()
    EDITS[name](arrays)
    session = _write(tmp_path / "s.npz", arrays)
    _calibrate(session, base_dir, tmp_path / "out", capsys)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_a_truncated_session_file(tmp_path, base_dir, capsys, fraction):
    whole = _write(tmp_path / "whole.npz", _arrays()).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole[: int(len(whole) * fraction)])
    _calibrate(cut, base_dir, tmp_path / "out", capsys)


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes(tmp_path, base_dir, capsys, seed):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(seed).bytes(2048))
    _calibrate(junk, base_dir, tmp_path / "out", capsys)


def test_a_zip_of_something_else_and_a_pickled_array(tmp_path, base_dir, capsys):
    other = tmp_path / "other.npz"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "hello")
    _calibrate(other, base_dir, tmp_path / "out", capsys)
    arrays = _arrays()
    arrays["labels"] = np.array([{"x": 1}] * N, dtype=object)
    pickled = _write(tmp_path / "pickled.npz", arrays)
    _calibrate(pickled, base_dir, tmp_path / "out", capsys)


def test_read_session_round_trips_and_names_the_problem(tmp_path):
    arrays = _arrays()
    session = read_session(_write(tmp_path / "s.npz", arrays))
    assert len(session) == N and session.dims == DIMS
    again = read_session(write_session(tmp_path / "w.npz", Session(
        session.text, session.audio, session.video, session.labels, session.t_s)))
    np.testing.assert_array_equal(again.labels, session.labels)
    EDITS["offsets-decrease"](arrays)
    with pytest.raises(SessionError, match="offsets must rise from 0"):
        read_session(_write(tmp_path / "bad.npz", arrays))
