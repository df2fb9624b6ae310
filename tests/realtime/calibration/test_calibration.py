"""Personal calibration: the session recorder, the session file, and a planted face signal
that the calibrated model must pick up and the shipped default model must not."""

from __future__ import annotations

import re
import stat
import sys

import numpy as np
import pytest
import torch

from models import checkpoint
from models.data.sessions import SESSION_KEYS, Session, SessionError, read_session, write_session
from models.metrics import compute
from models.training.calibrate import calibrate, is_branch_parameter, main, predict_session
from realtime.assets import default_model_dir
from realtime.calibration.recorder import SessionRecorder, label_from_thumbs


class FakeClock:
    def __init__(self) -> None:
        self.t_s = 0.0

    def now_s(self) -> float:
        return self.t_s


def _window(steps: int = 3, dims=(4, 3, 5), value: float = 1.0):
    return tuple(np.full((steps, d), value, np.float32) for d in dims)


def test_recorder_keeps_only_labelled_windows_spaced_and_bounded(tmp_path):
    clock = FakeClock()
    rec = SessionRecorder(max_samples=3, min_interval_s=0.5)
    assert not rec.add(*_window(), clock.now_s())  # no label yet
    rec.set_label(5.0)  # clipped
    assert rec.label == 3.0
    assert rec.add(*_window(), clock.now_s())
    clock.t_s = 0.2
    assert not rec.add(*_window(), clock.now_s())  # too soon
    for i in range(4):
        clock.t_s = 1.0 + i
        rec.set_label(label_from_thumbs(i % 2 == 0))
        assert rec.add(*_window(value=float(i)), clock.now_s())
    assert len(rec) == 3 and rec.dropped == 2
    rec.set_label(None)
    clock.t_s = 10.0
    assert not rec.add(*_window(), clock.now_s())
    with pytest.raises(ValueError, match="finite"):
        rec.set_label(float("nan"))
    path = rec.save(tmp_path / "s.npz")
    back = read_session(path)
    np.testing.assert_array_equal(back.labels, [-2.0, 2.0, -2.0])
    np.testing.assert_array_equal(back.t_s, [2.0, 3.0, 4.0])
    assert back.audio[0][0, 0] == 1.0
    with np.load(path) as z:  # features only: no samples, frames or words
        assert set(z.files) == set(SESSION_KEYS)


def test_recorder_counts_unlabelled_windows_and_survives_a_clock_restart(tmp_path):
    clock = FakeClock()
    rec = SessionRecorder(min_interval_s=0.5)
    clock.t_s = 5.0
    assert not rec.add(*_window(), clock.now_s()) and rec.unlabelled == 1
    rec.set_label(1.0)
    assert rec.add(*_window(), clock.now_s())
    clock.t_s = 0.1  # a new pipeline: its clock starts again
    assert rec.add(*_window(), clock.now_s())
    clock.t_s = 0.3
    assert not rec.add(*_window(), clock.now_s())  # spacing still holds on the shifted time
    clock.t_s = 0.7
    assert rec.add(*_window(), clock.now_s())
    np.testing.assert_allclose(rec.session().t_s, [5.0, 5.5, 6.1])
    rec.clear()
    assert len(rec) == 0 and rec.unlabelled == 0 and rec.label == 1.0
    clock.t_s = 0.0
    assert rec.add(*_window(), clock.now_s()) and rec.session().t_s.tolist() == [0.0]


def test_user_data_dir_follows_the_environment(tmp_path, monkeypatch):
    from realtime.personal.storage import DATA_ENV, user_data_dir

    monkeypatch.setenv(DATA_ENV, str(tmp_path / "mine"))
    assert user_data_dir() == tmp_path / "mine"
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert user_data_dir() == tmp_path / "xdg" / "live-sentiment-monitor"
    assert not user_data_dir().exists()  # never created by asking


def test_a_saved_session_is_private_to_this_user(tmp_path):
    from realtime.calibration.controller import Calibrator
    from realtime.personal.storage import CALIBRATION_DIR, SESSION_PREFIX

    (tmp_path / CALIBRATION_DIR).mkdir(mode=0o755)  # there already, readable by others
    cal = Calibrator(None, None, data_dir=tmp_path)
    cal.set_label(1.0)
    assert cal.recorder.add(*_window(), 0.0)
    saved = cal.save_session()
    assert saved.parent == tmp_path / CALIBRATION_DIR and saved.name.startswith(SESSION_PREFIX)
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_cli_refuses_too_few_samples(tmp_path, capsys):
    small = Session(*(tuple(np.ones((2, d), np.float32) for _ in range(3)) for d in (4, 3, 5)),
                    np.ones(3, np.float32), np.arange(3.0))
    session = write_session(tmp_path / "s.npz", small)
    assert main(["--session", str(session), "--out", str(tmp_path / "out")]) == 2
    assert re.search("only 3 labelled windows.*at least 8", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_session_errors(tmp_path):
    with pytest.raises(SessionError, match="no labelled windows"):
        SessionRecorder().save(tmp_path / "empty.npz")
    with pytest.raises(SessionError, match="not found"):
        read_session(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    with pytest.raises(SessionError, match="not a valid session"):
        read_session(bad)


def test_branch_parameters():
    assert is_branch_parameter("encoders.audio.lstm.weight")
    assert is_branch_parameter("projections.text_from_video.net.weight")
    assert is_branch_parameter("projections.audio_from_text.net.weight")
    assert not is_branch_parameter("encoders.text.lstm.weight")
    assert not is_branch_parameter("head.net.0.weight")


def _planted_session(n: int, seed: int) -> Session:
    """Neutral words, a random voice, a face whose smile alone carries the label."""
    from models.text_encoder import WordEncoder
    from realtime.extract.acoustic import ACOUSTIC_DIM
    from realtime.extract.face import FACE_DIM, FACE_PRESENT_INDEX, SMILE_INDEX, SMILE_RIGHT_INDEX

    rng = np.random.default_rng(seed)
    text_rows = WordEncoder.load().encode("so then i went to the store".split())
    text, audio, video, labels = [], [], [], []
    for _ in range(n):
        positive = rng.random() < 0.5
        steps = len(text_rows)
        face = np.clip(rng.beta(0.6, 3.0, (steps, FACE_DIM)), 0, 1).astype(np.float32)
        face[:, 52:55] = rng.normal(0, 0.1, (steps, 3))
        face[:, FACE_PRESENT_INDEX] = 1.0
        smile = rng.uniform(0.6, 0.9) if positive else rng.uniform(0.0, 0.1)
        face[:, [SMILE_INDEX, SMILE_RIGHT_INDEX]] = smile
        voice = rng.normal(0, 1, (steps, ACOUSTIC_DIM)).astype(np.float32)
        text.append(text_rows.copy())
        audio.append(voice)
        video.append(face)
        labels.append(2.0 if positive else -2.0)
    return Session(tuple(text), tuple(audio), tuple(video), np.array(labels, np.float32),
                   np.arange(n, dtype=np.float64))


@pytest.mark.slow
def test_calibration_picks_up_a_planted_face_signal(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    base = checkpoint.load(default_model_dir())
    train, held_out = _planted_session(64, seed=1), _planted_session(48, seed=2)

    before = compute(predict_session(base, held_out), held_out.labels)
    assert before.acc2_non0 <= 0.7 and abs(before.corr) < 0.5, before  # base ignores faces

    tuned = calibrate(base, train, epochs=18, seed=0)
    after = compute(predict_session(tuned, held_out), held_out.labels)
    assert after.acc2_non0 >= 0.9 and after.corr >= 0.8, after
    # only the voice and face branches moved
    moved = {n for (n, p0), (_, p1) in zip(base.named_parameters(), tuned.named_parameters(),
                                           strict=True) if not torch.equal(p0, p1)}
    assert moved and all(is_branch_parameter(n) for n in moved), sorted(moved)

    # the CLI writes a personal checkpoint that loads like any other
    session_path = write_session(tmp_path / "session.npz", train)
    out = tmp_path / "personal"
    assert main(["--session", str(session_path), "--out", str(out), "--epochs", "2"]) == 0
    personal = checkpoint.load(out)
    assert checkpoint.read_meta(out)["session_samples"] == 64
    assert personal.config == base.config


def test_the_calibrator_records_what_the_live_model_sees(tmp_path):
    """Subscribed to a pipeline, the calibrator keeps exactly the windows the model was given
    (with the label and the window's time), and predictions are those without it."""
    from realtime.calibration.controller import Calibrator
    from realtime.clock import ReplayClock
    from realtime.pipeline import Pipeline
    from realtime.sources import FileSource
    from tests.helpers import media
    from tests.realtime.test_pipeline import MeanModel, fake_engine

    model = MeanModel()  # keeps each input it is given
    engine = fake_engine(model)
    clip = media.face_video(tmp_path, seconds=2.0, fps=10, with_audio_text="hello there")

    def replay(*subscribers) -> Pipeline:
        pipe = Pipeline(FileSource(clip, realtime=False, clock=ReplayClock()), engine,
                        on_window=subscribers)
        pipe.run_to_end()
        return pipe

    plain = [p.sentiment for p in replay().store.history()]
    cal = Calibrator(engine, None, data_dir=tmp_path / "data")
    cal.recorder.min_interval_s = 0.0
    cal.set_label(1.5)
    cal.start_recording()
    model.inputs.clear()
    pipe = replay(cal.on_window)
    assert [p.sentiment for p in pipe.store.history()] == plain  # recording changes nothing
    session = cal.recorder.session()
    assert len(session) == len(model.inputs) == len(plain) and set(session.labels) == {1.5}
    np.testing.assert_allclose(session.t_s, [p.t_end_s for p in pipe.store.history()])
    for i, seen in enumerate(model.inputs):
        for recorded, given in zip((session.text[i], session.audio[i], session.video[i]), seen,
                                   strict=True):
            np.testing.assert_array_equal(recorded, given)
    cal.stop_recording()
    replay(cal.on_window)
    assert len(cal.recorder) == len(session)  # not recording: nothing kept


def test_the_session_keeps_the_model_sentiment_face_valence_and_expression(tmp_path):
    rec = SessionRecorder(min_interval_s=0.0)
    rec.set_label(1.0)
    happy = (0.0, 0.0, 0.0, 0.9, 0.05, 0.0, 0.05)
    assert rec.add(*_window(), 0.0, model_sentiment=0.5, face_valence=0.85, expression=happy)
    assert rec.add(*_window(), 1.0, model_sentiment=-0.25)  # no face in view
    with pytest.raises(ValueError, match="7 probabilities"):
        rec.add(*_window(), 2.0, expression=(0.5, 0.5))
    back = read_session(rec.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.model_sentiment, [0.5, -0.25])
    assert back.face_valence[0] == pytest.approx(0.85) and np.isnan(back.face_valence[1])
    np.testing.assert_allclose(back.expression[0], happy, atol=1e-7)
    assert back.expression.shape == (2, 7) and np.isnan(back.expression[1]).all()


def test_a_format_1_session_still_reads_with_no_face_and_fits_no_face_weight(tmp_path):
    """Sessions saved before the face arrays existed: readable, NaN there, W = 0."""
    import json

    from models.data.sessions import REQUIRED_KEYS, pack_steps

    rng = np.random.default_rng(0)
    n = 10
    arrays = pack_steps(*([rng.normal(size=(3, d)).astype(np.float32) for _ in range(n)]
                          for d in (4, 3, 5)))
    arrays.update(labels=np.linspace(-2, 2, n).astype(np.float32), t_s=np.arange(n, dtype=float),
                  meta=np.asarray(json.dumps({"format": 1, "dims": [4, 3, 5]})))
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    with np.load(old) as z:
        assert set(z.files) == set(REQUIRED_KEYS)
    session = read_session(old)
    assert len(session) == n and np.isnan(session.face_valence).all()
    assert np.isnan(session.model_sentiment).all() and session.expression.shape == (n, 7)
    torch.manual_seed(0)
    from models.base import InputDims
    from models.registry import create

    base = checkpoint.save(create("mmlatch", InputDims(4, 3, 5), hidden=4, head_hidden=4).eval(),
                           tmp_path / "base")
    assert main(["--session", str(old), "--base", str(base), "--out", str(tmp_path / "p"),
                 "--epochs", "1"]) == 0
    meta = checkpoint.read_meta(tmp_path / "p")
    assert meta["face_weight"] == 0.0 and meta["face_weight_windows"] == 0


def test_a_stored_face_weight_is_checked():
    from models.training.calibrate import fitted_face_weight

    assert fitted_face_weight({}) is None
    assert fitted_face_weight({"face_weight": 1.25}) == 1.25
    for bad in (float("nan"), 7.0, "2", True):
        with pytest.raises(ValueError, match="face_weight must be a number in"):
            fitted_face_weight({"face_weight": bad})
