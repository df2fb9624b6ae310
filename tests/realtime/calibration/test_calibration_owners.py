"""#25 item 3: calibration and the live model belong to their owner, through the page's
handlers (`PageController.calibrator`, as every panel button asks it) with two visitors A and
B on their own sessions, an anonymous page, and the presenter view, all on one engine.

The review's defects, each reproduced here:
(a) a personal model loaded by one page changed the engine's model, so every other session
    (another visitor's own, the presenter's) ran on it (face weight +0.15 shown), and any
    page (a raw client) could load any folder by its path;
(b) a visitor streaming their own webcam who pressed Record recorded the presenter's
    windows, not their own;
(c) the saved file's server path was shown to the page.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from models import checkpoint
from realtime.calibration.controller import (
    DEFAULT,
    CalibrationError,
    Calibrator,
    OwnerCalibrators,
    SessionModel,
    owner_folder,
)
from realtime.clock import ReplayClock
from realtime.dashboard.calibration_panel import (
    calibration_html,
    feed_calibrator,
    owner_factories,
)
from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.dashboard.mic_chunks import ChunkStore
from realtime.dashboard.page import PageController
from realtime.dashboard.people import PersonalSessions
from realtime.personal.consent import ConsentTerms
from realtime.pipeline import Pipeline
from realtime.sources import FileSource
from tests.realtime.test_pipeline import fake_engine


@dataclass
class Request:
    username: str | None = None
    session_hash: str | None = None


A, B, ANON = Request(session_hash="tab-a"), Request(session_hash="tab-b"), Request(
    session_hash="tab-anon")


class Replayed(Pipeline):
    """A pipeline whose start replays its file to the end in the caller's thread, in data
    order (`Pipeline.run_to_end`): the same predictions every run."""

    def start(self) -> None:
        self.run_to_end()



@dataclass
class Product:
    page: PageController
    engine: object
    presenter: Calibrator
    data: Path


@pytest.fixture
def product(tmp_path, base_dir, av_file):
    """The page wired as `realtime.dashboard.demo.build_demo` wires it, every session
    replaying ``av_file`` as fast as it can (a visitor's "browser" session included)."""
    engine = replace(fake_engine(checkpoint.load(base_dir)), model_name="mmlatch")
    data = tmp_path / "data"

    def build(choice: SourceChoice, models) -> Pipeline:
        return Replayed(FileSource(av_file, realtime=False, clock=ReplayClock()), engine,
                        models=models)

    presenter_models = SessionModel(engine)
    presenter = Calibrator(engine, base_dir, data_dir=data, models=presenter_models)
    pipeline = build(None, presenter_models)
    factory = feed_calibrator(presenter, pipeline, lambda c: build(c, presenter_models))
    dashboard = Dashboard(pipeline, SourceChoice("file", path=av_file), factory)
    calibrators = OwnerCalibrators(engine, base_dir, data)
    exports = tmp_path / "cache" / "exports"
    people = PersonalSessions(factory, export_root=exports / "people",
                              factory_for=owner_factories(calibrators, build))
    (tmp_path / "cache").mkdir()
    page = PageController(dashboard, people, exports / "presenter",
                          ChunkStore(tmp_path / "cache"), ConsentTerms(7, None),
                          sweep_wait_s=0.0, presenter_calibrator=presenter,
                          calibrators=calibrators)
    yield Product(page, engine, presenter, data)
    people.close_all()
    calibrators.close_all()
    dashboard.close()


def start_own(product: Product, request: Request) -> Pipeline:
    """The visitor starts (again) their own browser session; returns its pipeline, run to
    its end."""
    started = product.page.on_start("browser", None, 0, None, False, True, request)
    assert "Session started" in started.message, started.message
    return product.page.views.personal(request).dashboard.pipeline


def run_presenter(product: Product) -> Pipeline:
    product.page.presenter.start_session()
    return product.page.presenter.pipeline


def personal_model(cal: Calibrator, base_dir: Path, name: str, weight: float) -> Path:
    """A personal model in ``cal``'s own folder, as calibration saves one (its W in meta)."""
    model = checkpoint.load(base_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3)
    return checkpoint.save(model, cal.folder / name, meta={
        "calibrated_from": str(base_dir), "session_samples": 20, "face_weight": weight})


def test_a_personal_model_runs_only_in_its_owners_sessions(product, base_dir):
    page = product.page
    start_own(product, A)
    start_own(product, B)
    mine = personal_model(page.calibrator(A), base_dir, "personal-a", 0.15)
    assert page.calibrator(A).load_model("personal-a") == (
        "Live model: mmlatch \u00b7 personal-a (face weight +0.15)")

    a, b, shown = start_own(product, A), start_own(product, B), run_presenter(product)
    assert a.store.history()
    for p in a.store.history():
        assert p.model_name == "mmlatch \u00b7 personal-a" and p.face_weight == 0.15
    assert a.status().model_name == "mmlatch \u00b7 personal-a"
    for pipe in (b, shown):  # another person's own session, the presenter's: the default
        assert pipe.store.history()
        assert pipe.status().model_name == "mmlatch"
        for p in pipe.store.history():
            assert p.model_name == "mmlatch" and p.face_weight == 0.0
    assert [p.sentiment for p in b.store.history()] != [p.sentiment for p in a.store.history()]
    assert product.engine.model_name == "mmlatch" and product.engine.face_weight == 0.0

    # nobody else lists it or can load it, by name or by its server path (a raw client)
    for other in (B, ANON):
        cal = page.calibrator(other)
        assert cal is not page.calibrator(A)
        assert [v for _, v in cal.model_choices()] == [DEFAULT]
        for choice in ("personal-a", str(mine), f"../{mine.parent.name}/personal-a"):
            with pytest.raises(CalibrationError, match="Not one of your personal models"):
                cal.load_model(choice)
    b_again = start_own(product, B)
    assert {p.model_name for p in b_again.store.history()} == {"mmlatch"}

    # back to the default: A's session runs the shared model again
    assert page.calibrator(A).load_model(DEFAULT) == "Live model: mmlatch"
    assert {p.model_name for p in start_own(product, A).store.history()} == {"mmlatch"}


def test_record_keeps_the_pressing_visitors_own_windows(product):
    page = product.page
    start_own(product, A)
    start_own(product, B)
    cal_b = page.calibrator(B)
    cal_b.set_label(1.0)
    cal_b.start_recording()  # B presses Record ...
    run_presenter(product)  # ... while the presenter's stream runs: none of it is B's
    assert len(cal_b.recorder) == 0 and cal_b.recorder.unlabelled == 0
    assert len(product.presenter.recorder) == 0
    start_own(product, A)  # another visitor's stream is not B's either
    assert len(cal_b.recorder) == 0
    b = start_own(product, B)
    kept = len(cal_b.recorder)
    assert 4 <= kept <= len(b.store.history())  # at most one per 0.5 s of B's 3 s
    assert len(page.calibrator(A).recorder) == 0 and not page.calibrator(A).recording
    # B withdraws: B's unsaved windows are forgotten with the rest of B's data
    page.on_withdraw(B)
    assert page.calibrators.peek("tab:tab-b") is None


def test_no_page_output_names_a_server_path(product):
    page = product.page
    start_own(product, B)
    cal = page.calibrator(B)
    cal.set_label(-1.0)
    cal.start_recording()
    start_own(product, B)
    saved = cal.save_session()
    # B's files are in B's own folder (the hash of B's key, 0700), never in another's
    assert saved.parent == owner_folder(product.data / "calibration", "tab:tab-b")
    assert "tab-b" not in str(saved) and stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    assert page.calibrator(ANON).sessions() == []  # the presenter view's: not B's
    html = calibration_html(cal)
    assert saved.name in html and str(product.data) not in html and "/" not in \
        html.split('data-saved="')[1].split('"')[0]
    texts = [cal.start_recording(), cal.stop_recording(), *(label for label, _ in
                                                            cal.model_choices())]
    for value in (v for _, v in cal.model_choices()):
        assert "/" not in value
    cal.min_samples = 10_000
    with pytest.raises(CalibrationError) as err:
        cal.start_calibration()
    texts.append(str(err.value))
    with pytest.raises(CalibrationError) as err:
        cal.load_model("personal-nothing")
    texts.append(str(err.value))
    for text in texts:
        assert str(product.data) not in text, text


def test_the_presenters_calibration_is_only_for_the_page_that_captures_there(product):
    """While the presenter view captures a person (this machine's camera, no login), only
    the page that started it records there or loads into it; on a recording, any page
    without a session of its own may."""
    page = product.page
    assert page.calibrator(ANON) is product.presenter  # a recording the server plays
    started = page.on_start("devices", None, 0, None, False, True, A)
    assert "Session started" in started.message, started.message
    assert page.calibrator(A) is product.presenter
    with pytest.raises(CalibrationError, match="Not your session"):
        page.calibrator(ANON)
    page.on_withdraw(A)
    assert page.calibrator(ANON) is product.presenter
