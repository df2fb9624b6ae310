"""The dashboard with its controllers: `build_demo` makes the presenter's `Dashboard`, the
visitors' `PersonalSessions`, the calibration controllers (the presenter view's, and one per
visitor on a model of their own), the retention job, the page's
`PageController` and its page (`realtime.dashboard.layout`); `close_demo` stops them."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from realtime.assets import demo_recording
from realtime.calibration.controller import Calibrator, OwnerCalibrators, SessionModel
from realtime.dashboard.calibration_panel import (
    base_model_dir,
    engine_builder,
    feed_calibrator,
    make_calibrator,
    owner_factories,
    presenter_models,
)
from realtime.dashboard.controller import (
    Dashboard,
    LivePipeline,
    PipelineFactory,
    SourceChoice,
    engine_pipeline_factory,
)
from realtime.dashboard.gradio6_internals import cache_folder, upload_folder
from realtime.dashboard.layout import build_page
from realtime.dashboard.mic_chunks import ChunkStore
from realtime.dashboard.page import PageController
from realtime.dashboard.people import PersonalSessions
from realtime.personal.consent import ConsentTerms
from realtime.personal.retention import (
    DEFAULT_RETENTION_DAYS,
    RetentionJob,
    personal_data_rules,
)
from realtime.personal.storage import SESSION_LOG_DIR, user_data_dir
from realtime.serving.sessions import SessionManager
from realtime.tick import ModelCalls

DEMO_RECORDING = demo_recording()
EXPORT_PREFIX = "sentiment-export-"
PRESENTER_EXPORTS = "presenter"  # export_dir/presenter: the presenter view's exports
PEOPLE_EXPORTS = "people"  # export_dir/people/<session id>: each visitor's own


def default_max_sessions() -> int:
    """One visitor's live session per CPU core: one uses about half a core here (speech
    recognition, face tracking, the model; `python -m benchmarks.streams --live`) and its
    page's traffic the rest; two speaking at once on 2 cores already lose microphone chunks
    under load."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PeopleOptions:
    """Per-person sessions and their data: at most ``max_sessions`` at once, closed after
    ``idle_timeout_s`` without input; consented logs kept ``retention_days`` (0: never
    written to disk); ``per_user``: sessions belong to the login (--auth), else to the tab."""

    max_sessions: int = field(default_factory=default_max_sessions)
    idle_timeout_s: float = 120.0
    retention_days: int = DEFAULT_RETENTION_DAYS
    per_user: bool = False


@dataclass(frozen=True)
class Demo:
    """The dashboard page and its controllers: ``dashboard`` (call ``start_session()`` to
    start) and ``calibrator`` (the presenter view's personal calibration; each visitor's is
    in ``calibrators``); ``export_dir``: every
    export (the presenter's in `PRESENTER_EXPORTS`, each visitor's in
    `PEOPLE_EXPORTS`/<session id>), inside Gradio's cache folder, deleted by `close_demo`."""

    page: gr.Blocks
    dashboard: Dashboard
    calibrator: Calibrator
    export_dir: Path
    people: PersonalSessions
    retention: RetentionJob
    calibrators: OwnerCalibrators


def build_demo(pipeline: LivePipeline, choice: SourceChoice | None = None,
               pipeline_factory: PipelineFactory | None = None,
               model_dir: Path | None = None, data_dir: Path | None = None,
               personal_factory: PipelineFactory | None = None,
               options: PeopleOptions | None = None,
               registry: SessionManager | None = None,
               presenter: SessionModel | None = None,
               personal_models: ModelCalls | None = None) -> Demo:
    """The dashboard page for a `realtime.pipeline.Pipeline`, with its controllers.

    ``choice`` says what the pipeline listens to (for the player and for looping);
    ``pipeline_factory`` builds the pipeline for another source (default: a new
    `Pipeline` on ``pipeline.engine``). ``model_dir``: the folder the engine's model came
    from (None: the default); ``data_dir``: where calibration keeps its files (None: the
    user data folder, `realtime.personal.storage.user_data_dir`).
    ``presenter``: the presenter view's `SessionModel`, which ``pipeline`` and the
    pipelines ``pipeline_factory`` builds were built with (None: a new one on the engine,
    used by the default ``pipeline_factory`` only): the presenter's calibration loads its
    personal models into it, never into the engine. Each visitor's session runs on a
    `SessionModel` of its own over ``personal_models`` (the shared batching executor;
    None: the engine), with a calibrator of its own (`OwnerCalibrators`), unless
    ``personal_factory`` is given: it then builds every visitor's session (no calibration
    for them). ``options``: their limits and data retention (`PeopleOptions`);
    ``registry``: the session registry the visitors' sessions join (the runtime's,
    `realtime.runtime.Runtime.sessions`, which reaps them; None: one of their own, with a
    reaper thread of its own). The
    retention job runs at once (and daily). Call `close_demo` when done.
    """
    options = options or PeopleOptions()
    data_dir = data_dir or user_data_dir()
    engine = getattr(pipeline, "engine", None)
    if presenter is None:
        presenter = presenter_models(engine)
    if pipeline_factory is None and engine is not None:
        pipeline_factory = engine_pipeline_factory(engine, models=presenter)
    calibrator = make_calibrator(engine, model_dir, data_dir, models=presenter)
    calibrators = OwnerCalibrators(engine, base_model_dir(model_dir), data_dir,
                                   shared=personal_models)
    factory_for = None
    if personal_factory is None and engine is not None:  # each visitor: own model, own calib.
        factory_for = owner_factories(calibrators, engine_builder(engine))
    personal_factory = personal_factory or pipeline_factory
    if calibrator.available:  # every presenter pipeline sends its windows to calibration
        pipeline_factory = feed_calibrator(calibrator, pipeline, pipeline_factory)
    log_dir = data_dir / SESSION_LOG_DIR if options.retention_days > 0 else None
    dashboard = Dashboard(pipeline, choice, pipeline_factory, log_dir=log_dir)
    # inside Gradio's cache: the page serves each export where it is (no copy to delete)
    export_dir = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX, dir=cache_folder()))
    people = PersonalSessions(personal_factory, export_root=export_dir / PEOPLE_EXPORTS,
                              log_dir=log_dir, registry=registry,
                              max_sessions=options.max_sessions,
                              idle_timeout_s=options.idle_timeout_s, factory_for=factory_for)
    if registry is None:  # a runtime's registry reaps with its own thread
        people.start_reaper()
    retention = RetentionJob(personal_data_rules(data_dir), options.retention_days).start()
    terms = ConsentTerms(options.retention_days, log_dir, per_user=options.per_user)
    controller = PageController(
        dashboard, people, export_dir / PRESENTER_EXPORTS, ChunkStore(upload_folder()), terms,
        recording=DEMO_RECORDING if DEMO_RECORDING.exists() else None,
        presenter_calibrator=calibrator,
        calibrators=calibrators if factory_for is not None else None)
    page = build_page(controller)
    return Demo(page, dashboard, calibrator, export_dir, people, retention, calibrators)


def close_demo(demo: Demo) -> None:
    """Stops every session, recording, calibration run and the retention job; deletes the
    exports."""
    try:
        demo.retention.stop()
        demo.people.close_all()
        demo.calibrators.close_all()
        demo.calibrator.close()
        demo.dashboard.close()
    finally:
        shutil.rmtree(demo.export_dir, ignore_errors=True)
