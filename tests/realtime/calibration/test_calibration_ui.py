"""The dashboard's personal calibration, on a replayed pipeline with a small real model:
record with labels (thumbs / slider / none), save (features and labels only), calibrate in
the background with progress and a stop path, load the personal model into the running
pipeline, the status panel says which model is live, and each user error is a message that
loses nothing."""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

import app
from models import checkpoint
from models.data.sessions import SESSION_KEYS, read_session
from realtime.calibration.controller import DEFAULT, CalibrationError, Calibrator, SessionModel
from realtime.calibration.job import read_personal
from realtime.clock import ReplayClock, perf_s
from realtime.dashboard.calibration_panel import base_model_dir, calibration_html
from realtime.dashboard.controller import Dashboard
from realtime.dashboard.panels import RefreshMeter, ViewSettings, fast_panels
from realtime.pipeline import Pipeline, WindowSubscriber
from realtime.sources import FileSource
from tests.helpers.fakes import with_stages
from tests.realtime.test_pipeline import fake_engine


class Live:
    """The engine (a small real model) and whichever replayed pipeline is current; every
    new pipeline sends its windows to ``subscribers``."""

    def __init__(self, base: Path, av: Path) -> None:
        self.engine = replace(fake_engine(checkpoint.load(base)), model_name="mmlatch")
        self.models = SessionModel(self.engine)  # the owner's model, as the dashboard builds
        self.av = av
        self.subscribers: list[WindowSubscriber] = []
        self.pipeline = self.new_pipeline()

    def new_pipeline(self) -> Pipeline:
        return Pipeline(FileSource(self.av, realtime=False, clock=ReplayClock()), self.engine,
                        on_window=self.subscribers, models=self.models)

    def replay(self) -> int:
        self.pipeline = self.new_pipeline()  # a fresh clock from 0 each time
        return self.pipeline.run_to_end()


def wait_for(cal: Calibrator, timeout_s: float = 180.0):
    end_s = perf_s() + timeout_s
    while cal.progress.running and perf_s() < end_s:
        threading.Event().wait(0.2)
    return cal.progress


@pytest.fixture
def live(base_dir, av_file):
    return Live(base_dir, av_file)


@pytest.fixture
def cal(live, base_dir, tmp_path):
    c = Calibrator(live.engine, base_dir, data_dir=tmp_path / "data", epochs=3,
                   models=live.models)
    live.subscribers.append(c.on_window)  # as the dashboard's pipelines do
    yield c
    c.close()


def test_records_only_while_recording_and_labelled_and_never_changes_predictions(live, cal):
    plain = live.replay()
    before = [p.sentiment for p in live.pipeline.store.history()]
    assert plain > 5 and len(cal.recorder) == 0  # not recording: nothing seen
    cal.start_recording()
    live.replay()
    assert len(cal.recorder) == 0 and cal.recorder.unlabelled == plain  # no label: none kept
    assert [p.sentiment for p in live.pipeline.store.history()] == before  # tap is invisible
    with pytest.raises(CalibrationError, match="no labelled windows"):
        cal.save_session()
    cal.set_label(2.0)
    live.replay()
    first = len(cal.recorder)
    assert 4 <= first <= plain  # at most one per 0.5 s of a 3 s file
    cal.set_label(-1.5)
    live.replay()  # a new pipeline: its clock starts again at 0, the recorder continues
    session = cal.recorder.session()
    assert len(session) > first and np.all(np.diff(session.t_s) >= 0.5 - 1e-9)
    assert set(session.labels.tolist()) == {2.0, -1.5}
    html = calibration_html(cal)
    assert f'data-kept="{len(session)}"' in html and 'data-recording="true"' in html
    assert 'data-label="-1.50"' in html
    cal.stop_recording()
    n = len(cal.recorder)
    live.replay()
    assert len(cal.recorder) == n  # stopped: nothing more


def test_saved_session_holds_features_and_labels_only(live, cal, tmp_path):
    cal.start_recording()
    cal.set_label(1.0)
    live.replay()
    path = cal.save_session()
    assert path.parent == tmp_path / "data" / "calibration" and path.suffix == ".npz"
    html = calibration_html(cal)  # the file's name, never its server path
    assert path.name in html and str(path.parent) not in html
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == set(SESSION_KEYS)
        dtypes = {k: z[k].dtype for k in z.files}
        shapes = {k: z[k].shape for k in z.files}
        meta = str(z["meta"])
    assert {k: str(v) for k, v in dtypes.items() if k != "meta"} == {
        "text": "float32", "audio": "float32", "video": "float32", "offsets": "int64",
        "labels": "float32", "t_s": "float64", "model_sentiment": "float32",
        "face_valence": "float32", "expression": "float32"}
    n = len(cal.recorder)  # one number per window beside the features; 7 for the expression
    assert shapes["model_sentiment"] == shapes["face_valence"] == (n,)
    assert shapes["expression"] == (n, 7)
    assert dtypes["meta"].kind == "U" and shapes["meta"] == ()  # one JSON string
    assert '"format"' in meta and '"dims"' in meta and "hello" not in meta  # no words
    # per-step feature rows of the model's sizes: no frames (H x W x 3), no waveforms
    assert shapes["text"][1:] == (4,) and shapes["audio"][1:] == (3,)
    assert shapes["video"][1:] == (5,)
    assert shapes["text"][0] == shapes["audio"][0] < 40 * len(cal.recorder)
    assert read_session(path).labels.tolist() == [1.0] * len(cal.recorder)
    # a second start after a save begins a new session; unsaved windows would be kept
    cal.stop_recording()
    assert "Recording" in cal.start_recording() and len(cal.recorder) == 0


def test_calibrate_in_the_background_then_load_it_live(live, cal, base_dir, tmp_path):
    cal.start_recording()
    for label in (2.0, -2.0, 1.0):
        cal.set_label(label)
        live.replay()
    cal.stop_recording()
    with pytest.raises(CalibrationError, match="No saved session"):
        cal.start_calibration()
    session = cal.save_session()
    n = len(cal.recorder)
    cal.min_samples = n + 1
    with pytest.raises(CalibrationError, match=f"Too few samples.*{n} labelled"):
        cal.start_calibration()
    cal.min_samples = 4

    msg = cal.start_calibration()
    assert f"{n} labelled windows" in msg and cal.progress.running
    with pytest.raises(CalibrationError, match="already running"):
        cal.start_calibration()
    done = wait_for(cal)
    assert done.state == "done", done
    assert done.samples == n and done.epoch == done.epochs == 3
    assert done.before is not None and done.after is not None and done.before >= 0
    assert done.model_dir == session.with_name("personal-" + session.stem[len("session-"):])
    assert done.elapsed_s > 0 and f'data-samples="{n}"' in calibration_html(cal)
    assert 'data-state="done"' in calibration_html(cal)
    personal = read_personal(done.model_dir)
    assert personal is not None and personal.samples == n
    choices = dict((v, k) for k, v in cal.model_choices())
    assert DEFAULT in choices and done.model_dir.name in choices
    assert f"{n} windows" in choices[done.model_dir.name]
    assert not any("/" in v for v in choices)  # names, never server paths

    # load it into the owner's model: their pipeline's status and predictions name it; the
    # engine (every other session's model) is unchanged
    assert done.model_dir.name in cal.load_model(done.model_dir.name)
    assert done.model_dir.name in live.pipeline.status().model_name
    assert live.engine.model_name == "mmlatch"
    live.replay()
    assert done.model_dir.name in live.pipeline.store.latest().model_name
    dash = Dashboard(live.pipeline)
    status = fast_panels(dash, ViewSettings(), RefreshMeter())["status"]
    assert done.model_dir.name in status
    moved = [p.sentiment for p in live.pipeline.store.history()]
    # a corrupt model folder: a message, the live model unchanged
    bad = tmp_path / "data" / "calibration" / "personal-broken"
    shutil.copytree(done.model_dir, bad)
    (bad / "model.safetensors").write_bytes(b"not a model")
    with pytest.raises(CalibrationError, match="Could not load.*unchanged") as err:
        cal.load_model(bad.name)
    assert str(bad.parent) not in str(err.value)
    assert done.model_dir.name in cal.model_name
    for outside in (str(tmp_path / "nowhere"), str(done.model_dir), "../calibration"):
        with pytest.raises(CalibrationError, match="Not one of your personal models"):
            cal.load_model(outside)  # a path, even to one's own model: refused
    # back to the default model: its predictions again
    assert cal.load_model(DEFAULT) == "Live model: mmlatch"
    live.replay()
    base = [p.sentiment for p in live.pipeline.store.history()]
    assert base != moved and all(-3 <= v <= 3 for v in base)
    assert checkpoint.load(base_dir).config == checkpoint.load(done.model_dir).config


def test_calibration_stops_cleanly_and_leaves_no_model(live, cal):
    cal.start_recording()
    cal.set_label(2.0)
    live.replay()
    cal.set_label(-2.0)
    live.replay()
    cal.save_session()
    cal.min_samples, cal.epochs = 4, 100_000
    cal.start_calibration()
    end_s = perf_s() + 120
    while cal.progress.epoch < 1 and cal.progress.running and perf_s() < end_s:
        threading.Event().wait(0.1)
    assert cal.progress.running and cal.progress.epoch >= 1, cal.progress
    assert "stopped" in cal.stop_calibration()
    assert cal.progress.state == "stopped"
    assert cal.personal_models() == []
    assert not [p for p in cal.folder.iterdir() if p.is_dir()]  # no partial model folder
    assert cal.stop_calibration() == "No calibration is running."


def test_without_an_engine_the_panel_says_so_and_actions_are_refused(tmp_path):
    from tests.helpers.fakes import FakePipeline

    demo = app.build_demo(FakePipeline(), data_dir=tmp_path)
    try:
        cal = demo.calibrator
        assert not cal.available and 'data-available="false"' in calibration_html(cal)
        with pytest.raises(CalibrationError, match="needs the live model"):
            cal.start_recording()
    finally:
        app.close_demo(demo)


def test_started_on_a_personal_model_it_names_it_and_calibrates_from_its_base(
        base_dir, av_file, tmp_path):
    """``python app.py --model DIR`` with a personal model from anywhere."""
    model = checkpoint.load(base_dir)
    personal = checkpoint.save(model, tmp_path / "elsewhere" / "mine", meta={
        "calibrated_from": str(base_dir), "session_samples": 9})
    assert base_model_dir(personal) == base_dir
    assert base_model_dir(base_dir) == base_dir
    assert read_personal(base_dir) is None and read_personal(personal).samples == 9
    live = Live(personal, av_file)
    cal = Calibrator(live.engine, base_model_dir(personal), data_dir=tmp_path / "data",
                     live_dir=personal)
    assert live.engine.model_name == "mmlatch \u00b7 mine"
    # the process's model (the one it started with) is the default; calibration starts
    # from its base
    assert cal.model_choices() == [("Default model (mmlatch \u00b7 mine)", DEFAULT)]
    assert cal.load_model(DEFAULT) == "Live model: mmlatch \u00b7 mine" and cal.live == DEFAULT
    assert cal.base_dir == base_dir


def _handler(demo, elem_id: str, event: str = "click"):
    """The function the page calls for ``event`` on the component ``elem_id``."""
    comp = next(b for b in demo.page.blocks.values() if getattr(b, "elem_id", None) == elem_id)
    return next(f.fn for f in demo.page.fns.values() if (comp._id, event) in f.targets)


@dataclass
class Request:
    username: str | None = None
    session_hash: str | None = "tab-1"


def test_page_handlers_label_save_refuse_and_load(live, base_dir, tmp_path):
    demo = app.build_demo(live.pipeline, model_dir=base_dir, data_dir=tmp_path / "data",
                          presenter=live.models)
    cal = demo.calibrator
    page = Request()  # a page without a session of its own: the presenter view's calibration
    try:
        msg, html = _handler(demo, "calib-up")(page)  # a label starts recording
        assert msg == "Label +2.0; recording started." and 'data-recording="true"' in html
        live.pipeline.run_to_end()
        tick = next(f.fn for f in demo.page.fns.values()
                    if any(e == "tick" for _, e in f.targets) and f.outputs
                    and f.outputs[0].elem_id == "calib-status")
        html, _ = tick({}, page)
        assert "The session is stopped" in html  # replayed here, not a running session
        kept = len(cal.recorder)
        assert kept >= 4 and f'data-kept="{kept}"' in html
        unchanged = tick({"html": html, "choices": cal.model_choices()}, page)
        assert not any(isinstance(x, str) for x in unchanged), unchanged  # skipped: no resend
        msg, _ = _handler(demo, "calib-label", "release")(-0.5, page)
        assert cal.recorder.label == -0.5 and "-0.5" in msg
        msg, _ = _handler(demo, "calib-none")(page)
        assert cal.recorder.label is None and "No label" in msg
        msg, html = _handler(demo, "calib-save")(page)
        assert f"Saved {kept} labelled windows" in msg and cal.last_session.name in msg
        assert str(cal.folder) not in msg + html  # the name only, never the server path
        assert cal.last_session.is_file() and cal.last_session.name in html
        cal.min_samples = kept + 5
        msg, _ = _handler(demo, "calib-run")(page)
        assert msg.startswith("\u26a0") and "Too few samples" in msg and not cal.progress.running
        assert "No calibration is running" in _handler(demo, "calib-cancel")(page)[0]

        personal = checkpoint.save(checkpoint.load(base_dir),
                                   cal.folder / "personal-2026-01-01T00-00-00",
                                   meta={"calibrated_from": str(base_dir), "session_samples": 40,
                                         "session_l1_before": 1.5, "session_l1_after": 0.5})
        update = _handler(demo, "calib-refresh")(page)
        assert (f"{personal.name} \u00b7 40 windows \u00b7 L1 1.50\u21920.50", personal.name) in \
            update["choices"]
        msg, html, update = _handler(demo, "calib-load")(personal.name, page)
        assert msg == f"Live model: mmlatch \u00b7 {personal.name}" and update["value"] == \
            personal.name
        status = fast_panels(demo.dashboard, ViewSettings(), RefreshMeter())["status"]
        assert personal.name in status and personal.name in html
        broken = cal.folder / "personal-broken"
        broken.mkdir()
        (broken / "config.json").write_text("{not json")
        msg, _, update = _handler(demo, "calib-load")(broken.name, page)
        assert msg.startswith("\u26a0") and "Not one of your personal models" in msg
        assert "unchanged" in msg
        assert update["value"] == personal.name and personal.name in cal.model_name
        assert live.engine.model_name == "mmlatch"  # the shared model never changes
    finally:
        app.close_demo(demo)


def test_calibration_fits_the_face_weight_and_the_loaded_personal_model_uses_it(
        base_dir, av_file, tmp_path):
    """A session where a planted expression (the face valence) predicts the labels beyond the
    model: `python -m models.calibrate` fits W near the planted 2.0 and stores it; loading
    the personal model makes the live pipeline fuse with that W; the default model goes
    back to the app's --face-weight."""
    from models.data.sessions import Session, write_session
    from models.expression import EXPRESSIONS, face_valence
    from models.training.calibrate import main, predict_session
    from tests.realtime.test_pipeline import FakeExpression, FakeFaceWithCrops

    rng = np.random.default_rng(3)
    n, planted = 60, 2.0
    feats = [tuple(rng.normal(0, 0.3, (4, d)).astype(np.float32) for _ in range(n))
             for d in (4, 3, 5)]
    happy, sad = EXPRESSIONS.index("happy"), EXPRESSIONS.index("sad")
    expression = np.full((n, 7), np.nan, np.float32)
    faces = rng.random(n) < 0.75  # a quarter of the windows without a face
    p_happy = rng.uniform(0, 1, faces.sum())
    expression[faces] = 0.0
    expression[faces, happy], expression[faces, sad] = p_happy, 1 - p_happy
    valence = np.full(n, np.nan, np.float32)
    valence[faces] = face_valence(expression[faces])
    base = checkpoint.load(base_dir)
    unlabelled = Session(*feats, np.zeros(n, np.float32), np.arange(n, dtype=float))
    model = predict_session(base, unlabelled)
    labels = np.clip(model + planted * np.nan_to_num(valence), -3, 3)
    session = write_session(tmp_path / "session.npz", Session(
        *feats, labels, np.arange(n, dtype=float), model_sentiment=model,
        face_valence=valence, expression=expression))

    data = tmp_path / "data"
    out = data / "calibration" / "personal-planted"
    assert main(["--session", str(session), "--base", str(base_dir), "--out", str(out),
                 "--epochs", "2"]) == 0
    meta = checkpoint.read_meta(out)
    weight = meta["face_weight"]
    assert weight == pytest.approx(planted, abs=0.3) and meta["face_weight_windows"] == \
        faces.sum()
    assert meta["session_l1_with_face"] < meta["session_l1_after"]

    engine = with_stages(replace(fake_engine(checkpoint.load(base_dir)), model_name="mmlatch",
                                 face_weight=0.5),  # the app's --face-weight
                         new_face=FakeFaceWithCrops, new_expression=FakeExpression)
    models = SessionModel(engine)
    cal = Calibrator(engine, base_dir, data_dir=data, models=models)

    def fused() -> list:
        pipe = Pipeline(FileSource(av_file, realtime=False, clock=ReplayClock()), engine,
                        models=models)
        pipe.run_to_end()
        return [p for p in pipe.store.history() if p.expression is not None]

    assert cal.load_model(out.name) == (f"Live model: mmlatch \u00b7 {out.name} "
                                        f"(face weight {weight:+.2f})")
    assert models.face_weight == weight and engine.face_weight == 0.5  # the engine's stays
    with_face = fused()
    assert with_face and all(p.face_weight == weight for p in with_face)
    for p in with_face:  # FakeExpression's valence is 0.7
        assert p.sentiment == pytest.approx(np.clip(p.model_sentiment + weight * 0.7, -3, 3))
    assert cal.load_model(DEFAULT).startswith("Live model: mmlatch (face weight +0.50)")
    assert engine.face_weight == 0.5 and all(p.face_weight == 0.5 for p in fused())
