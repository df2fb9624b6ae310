"""The dashboard's "Personal calibration" panel (Gradio) over each page's `Calibrator`.

`make_calibrator` builds the presenter view's controller on the dashboard's engine and
`feed_calibrator` subscribes it to the presenter's pipelines; `owner_factories` gives each
visitor's pipelines their own `SessionModel` and calibrator; `calibration_panel` adds the
panel (an accordion, elem_id ``calibration``) to the page being built. Every handler asks
`realtime.dashboard.page.PageController.calibrator` which calibrator the calling page acts
on (its own session's, else the presenter view's when it may), so a page never records,
lists or loads another person's. No server path is shown: files by name only. Element ids
used by tests: calib-record / calib-stop (recording), calib-label (slider), calib-up /
calib-down / calib-none (thumbs, no label), calib-save, calib-run / calib-cancel
(calibration), calib-model / calib-load / calib-refresh (the live model), calib-status
(live counts, progress; data-* attributes), calib-message (the last action's result or
error).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from pathlib import Path

import gradio as gr

from models import checkpoint
from realtime.calibration.controller import (
    DEFAULT,
    CalibrationError,
    Calibrator,
    OwnerCalibrators,
    SessionModel,
)
from realtime.calibration.recorder import THUMBS_DOWN, THUMBS_UP
from realtime.dashboard.controller import LivePipeline, PipelineFactory, SourceChoice
from realtime.dashboard.html import sentiment_css
from realtime.dashboard.page import PageController
from realtime.engine import Engine
from realtime.pipeline import Pipeline
from realtime.tick import ModelCalls

STATUS_TICK_S = 0.5
INTRO = ("Teach the model how **you** look and sound: record while you talk, label how "
         "you feel (slider or thumbs; *No label* pauses), save, calibrate, then load your "
         "personal model. Only features and labels are stored, never video, audio or words.")


def base_model_dir(model_dir: Path | None) -> Path | None:
    """The folder calibration starts from: ``model_dir``, or the base it was calibrated
    from when it is a personal model, or the shipped default (None if absent)."""
    from realtime.assets import AssetMissing, default_model_dir

    if model_dir is not None:
        try:
            base = checkpoint.read_meta(model_dir).get("calibrated_from")
        except checkpoint.CheckpointError:
            base = None
        return Path(base) if base and Path(base).is_dir() else Path(model_dir)
    try:
        return default_model_dir()
    except AssetMissing:
        return None


def make_calibrator(engine: Engine | None, model_dir: Path | None = None,
                    data_dir: Path | None = None, **kw) -> Calibrator:  # kw: Calibrator's
    """The presenter view's `Calibrator` on the dashboard's engine (None for a pipeline
    without one); ``model_dir``: the folder the engine's model came from (None: the
    default); ``kw``: `Calibrator`'s (``models``: the presenter's `SessionModel`)."""
    return Calibrator(engine, base_model_dir(model_dir), data_dir=data_dir,
                      live_dir=model_dir, **kw)


def feed_calibrator(cal: Calibrator, pipeline: Pipeline,
                    factory: PipelineFactory) -> PipelineFactory:
    """Subscribes ``cal`` to ``pipeline``'s windows; returns ``factory`` with each pipeline
    it builds (another source, a looped recording) subscribed too."""
    pipeline.subscribe(cal.on_window)

    def build(choice: SourceChoice) -> Pipeline:
        new = factory(choice)
        new.subscribe(cal.on_window)
        return new

    return build


ModelledFactory = Callable[[SourceChoice, ModelCalls], LivePipeline]
"""Builds a pipeline for a source choice, calling the given models (`SessionModel`)."""


def owner_factories(calibrators: OwnerCalibrators,
                    build: ModelledFactory) -> Callable[[str], PipelineFactory]:
    """For `realtime.dashboard.people.PersonalSessions` (``factory_for``): the factory of
    one owner's pipelines, each built by ``build`` on the owner's own `SessionModel` and
    subscribed to the owner's own calibrator only."""

    def for_owner(owner: str) -> PipelineFactory:
        cal = calibrators.get(owner)

        def factory(choice: SourceChoice) -> LivePipeline:
            pipe = build(choice, cal.models)
            pipe.subscribe(cal.on_window)
            return pipe

        return factory

    return for_owner


def engine_builder(engine: Engine) -> ModelledFactory:
    """`owner_factories`' ``build`` on ``engine``: `Pipeline(make_source(...), engine,
    models=models)`."""
    from realtime.dashboard.controller import engine_pipeline_factory

    def build(choice: SourceChoice, models: ModelCalls) -> LivePipeline:
        return engine_pipeline_factory(engine, models=models)(choice)

    return build


def presenter_models(engine: Engine | None, shared: ModelCalls | None = None
                     ) -> SessionModel | None:
    """The presenter view's `SessionModel` (None without an engine): build the presenter's
    pipelines with it so that its calibration's *Load model* reaches them, and them only."""
    return None if engine is None else SessionModel(engine, shared)


def _num(value: float | None, pattern: str = "{:.2f}") -> str:
    return "\u2014" if value is None or not math.isfinite(value) else pattern.format(value)


def calibration_html(cal: Calibrator, source_live: bool = True) -> str:
    """The live state: recording, label, counts, the last saved file, calibration progress
    and the live model. Data attributes carry the figures for tests and automation.
    ``source_live``: whether a session feeds the model (if not, recording says so)."""
    if not cal.available:
        return ('<div class="sx-card sx-calib" data-available="false">Calibration needs the '
                "live model; it is not available for this pipeline.</div>")
    rec = cal.recorder
    label = rec.label
    kept, dropped, unlabelled = len(rec), rec.dropped, rec.unlabelled
    if cal.recording:
        pill = '<span class="sx-pill sx-bad"><span class="sx-rec"></span>recording</span>'
    else:
        pill = '<span class="sx-pill">not recording</span>'
    lab = ('<span class="sx-chip"><i>label</i> none (not kept)</span>' if label is None else
           f'<span class="sx-chip"><i>label</i> <b style="color:{sentiment_css(label)}">'
           f"{label:+.1f}</b></span>")
    idle = ('<div class="sx-calm">The session is stopped: start it (Source, Start session) '
            "to record.</div>" if cal.recording and not source_live else "")
    saved = cal.last_session
    p = cal.progress
    prog = ""
    if p.state != "idle":
        pct = 100.0 * p.epoch / p.epochs if p.epochs else 0.0
        detail = f"epoch {p.epoch}/{p.epochs} \u00b7 train L1 {_num(p.l1)}"
        if p.state == "done":
            detail = (f"{p.samples} windows \u00b7 session L1 {_num(p.before)} \u2192 "
                      f"{_num(p.after)} \u00b7 {p.elapsed_s:.0f} s")
        prog = (f'<div class="sx-calib-run" data-state="{p.state}" data-epoch="{p.epoch}" '
                f'data-samples="{p.samples}" data-before="{_num(p.before, "{:.4f}")}" '
                f'data-after="{_num(p.after, "{:.4f}")}">'
                f'<div class="sx-sub"><span>calibration: <b>{escape(p.state)}</b></span>'
                f"<span>{escape(detail)}</span></div>"
                f'<div class="sx-meter-track"><span class="sx-meter-fill" '
                f'style="width:{pct:.0f}%"></span></div>'
                f'<div class="sx-muted sx-small">{escape(p.message)}</div></div>')
    return (
        f'<div class="sx-card sx-calib" data-available="true" '
        f'data-recording="{str(cal.recording).lower()}" data-kept="{kept}" '
        f'data-dropped="{dropped}" data-unlabelled="{unlabelled}" '
        f'data-label="{"" if label is None else f"{label:.2f}"}" '
        f'data-saved="{escape(saved.name if saved else "")}">'
        f'<div class="sx-status" style="justify-content:flex-start">{pill}{lab}'
        f'<span class="sx-chip"><i>live model</i> {escape(cal.model_name)}</span></div>'
        f"{idle}"
        f'<div class="sx-calib-counts">'
        f'<div class="sx-kv"><span>kept</span><b data-count="kept">{kept}</b>'
        f'<span class="sx-unit">labelled windows ({cal.unsaved} unsaved)</span></div>'
        f'<div class="sx-kv"><span>dropped</span><b data-count="dropped">{dropped}</b>'
        f'<span class="sx-unit">oldest, over {rec.max_samples}</span></div>'
        f'<div class="sx-kv"><span>no label</span><b data-count="unlabelled">{unlabelled}</b>'
        f'<span class="sx-unit">windows not kept</span></div></div>'
        + (f'<div class="sx-muted sx-small">last saved: <code data-path="session">'
           f"{escape(saved.name)}</code></div>" if saved else "")
        + f"{prog}</div>"
    )


def refused_html(message: str) -> str:
    """The panel's status when this page may not calibrate (the reason)."""
    return (f'<div class="sx-card sx-calib" data-available="false">{escape(message)}</div>')


def _err(exc: Exception) -> str:
    return f"\u26a0\ufe0f **{escape(str(exc))}**"


def calibration_panel(page: PageController) -> None:
    """Adds the panel to the `gr.Blocks` being built (call inside its ``with``). Each
    handler acts on the calibrator ``page.calibrator(request)`` gives the calling page."""
    def status_html(request) -> str:
        try:
            cal = page.calibrator(request)
        except CalibrationError as exc:
            return refused_html(str(exc))
        return calibration_html(cal, page.calibration_live(request))

    def choices(request) -> list[tuple[str, str]]:
        try:
            return page.calibrator(request).model_choices()
        except CalibrationError:
            return [("Default model", DEFAULT)]

    def live(request) -> str:
        try:
            return page.calibrator(request).live
        except CalibrationError:
            return DEFAULT

    with gr.Accordion("Personal calibration", open=False, elem_id="calibration"):
        gr.Markdown(INTRO, elem_classes="sx-calib-intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=300):
                with gr.Row():
                    record = gr.Button("\u25cf Record", variant="primary",
                                       elem_id="calib-record")
                    stop = gr.Button("Stop recording", elem_id="calib-stop")
                slider = gr.Slider(-3, 3, value=0, step=0.5, elem_id="calib-label",
                                   label="How I feel now (release to set the label)")
                with gr.Row():
                    # words, not emoji: a browser without an emoji font shows boxes
                    up = gr.Button(f"Thumbs up ({THUMBS_UP:+.0f})", elem_id="calib-up")
                    down = gr.Button(f"Thumbs down (\u2212{abs(THUMBS_DOWN):.0f})",
                                     elem_id="calib-down")
                    none = gr.Button("No label", elem_id="calib-none")
            with gr.Column(scale=5, min_width=320):
                status = gr.HTML(elem_id="calib-status")
                message = gr.Markdown(elem_id="calib-message")
            with gr.Column(scale=4, min_width=300):
                with gr.Row():
                    save = gr.Button("Save session", elem_id="calib-save")
                    run = gr.Button("Calibrate", elem_id="calib-run")
                    cancel = gr.Button("Stop calibration", elem_id="calib-cancel")
                models = gr.Dropdown([("Default model", DEFAULT)], value=DEFAULT,
                                     label="Model", elem_id="calib-model",
                                     allow_custom_value=False)
                with gr.Row():
                    load = gr.Button("Load model", elem_id="calib-load")
                    refresh = gr.Button("Refresh list", elem_id="calib-refresh")
    seen = gr.State({})  # per page (a copy each): the status HTML and model list last sent

    def act(fn):
        """A handler on the page's calibrator whose result (or CalibrationError /
        ValueError) is the message; ``fn(cal, *values)``."""
        def run_it(*args):
            *values, request = args
            try:
                text = fn(page.calibrator(request), *values)
            except (CalibrationError, ValueError) as exc:
                return _err(exc), status_html(request)
            return text, status_html(request)
        return run_it

    def labelled(value):
        def set_it(cal: Calibrator):
            text = cal.set_label(value)
            if value is not None and cal.available and not cal.recording:  # record with it
                cal.start_recording()
                return f"{text}; recording started."
            return text
        return set_it

    def saved(cal: Calibrator) -> str:
        path = cal.save_session()
        return (f"Saved {len(cal.recorder)} labelled windows (features and labels only) "
                f"as `{path.name}`")

    out = [message, status]
    ev = {"show_progress": "hidden", "api_visibility": "private"}

    def bind(button, fn, then=None):
        def handler(request: gr.Request):
            return act(fn)(request)
        event = button.click(handler, None, out, **ev)
        if then is not None:
            event.then(lambda: then, None, slider, **ev)

    bind(record, lambda cal: cal.start_recording())
    bind(stop, lambda cal: cal.stop_recording())
    bind(up, labelled(THUMBS_UP), THUMBS_UP)
    bind(down, labelled(THUMBS_DOWN), THUMBS_DOWN)
    bind(none, labelled(None))
    bind(save, saved)
    bind(run, lambda cal: cal.start_calibration())
    bind(cancel, lambda cal: cal.stop_calibration())

    def on_release(value, request: gr.Request):
        return act(lambda cal, v: labelled(float(v))(cal))(value, request)

    slider.release(on_release, slider, out, **ev)

    def on_load(choice, request: gr.Request):
        text, html = act(lambda cal, c: cal.load_model(c))(choice, request)
        return text, html, gr.update(choices=choices(request), value=live(request))

    load.click(on_load, models, [message, status, models], concurrency_limit=1, **ev)

    def on_refresh(request: gr.Request):
        return gr.update(choices=choices(request), value=live(request))

    refresh.click(on_refresh, None, models, **ev)

    def on_tick(state: dict, request: gr.Request):
        html = status_html(request)
        listed = choices(request)
        html_out = gr.skip() if state.get("html") == html else html
        models_out = (gr.skip() if state.get("choices") == listed
                      else gr.update(choices=listed, value=live(request)))
        state.update(html=html, choices=listed)
        return html_out, models_out

    gr.Timer(STATUS_TICK_S).tick(on_tick, seen, [status, models], show_progress="hidden",
                                 api_visibility="private", concurrency_limit=None)
