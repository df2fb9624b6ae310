"""The dashboard's "Personal calibration" panel (Gradio) over a `Calibrator`.

`make_calibrator` builds the controller on the dashboard's engine and `feed_calibrator`
subscribes it to the dashboard's pipelines; `calibration_panel` adds the panel (an
accordion, elem_id ``calibration``) to the page being built. Element ids used by tests:
calib-record / calib-stop (recording), calib-label (slider), calib-up / calib-down /
calib-none (thumbs, no label), calib-save, calib-run / calib-cancel (calibration),
calib-model / calib-load / calib-refresh (the live model), calib-status (live counts,
progress; data-* attributes), calib-message (the last action's result or error).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from pathlib import Path

from models import checkpoint
from realtime.calibration.controller import CalibrationError, Calibrator
from realtime.calibration.recorder import THUMBS_DOWN, THUMBS_UP
from realtime.dashboard.controller import PipelineFactory, SourceChoice
from realtime.dashboard.html import sentiment_css
from realtime.engine import Engine
from realtime.pipeline import Pipeline

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
    """A `Calibrator` on the dashboard's engine (None for a pipeline without one);
    ``model_dir``: the folder the engine's model came from (None: the default)."""
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
        f'data-saved="{escape(str(saved or ""))}">'
        f'<div class="sx-status" style="justify-content:flex-start">{pill}{lab}'
        f'<span class="sx-chip"><i>live model</i> {escape(cal.engine.model_name)}</span></div>'
        f"{idle}"
        f'<div class="sx-calib-counts">'
        f'<div class="sx-kv"><span>kept</span><b data-count="kept">{kept}</b>'
        f'<span class="sx-unit">labelled windows ({cal.unsaved} unsaved)</span></div>'
        f'<div class="sx-kv"><span>dropped</span><b data-count="dropped">{dropped}</b>'
        f'<span class="sx-unit">oldest, over {rec.max_samples}</span></div>'
        f'<div class="sx-kv"><span>no label</span><b data-count="unlabelled">{unlabelled}</b>'
        f'<span class="sx-unit">windows not kept</span></div></div>'
        + (f'<div class="sx-muted sx-small">last saved: <code data-path="session">'
           f"{escape(str(saved))}</code></div>" if saved else "")
        + f"{prog}</div>"
    )


def _ok(text: str) -> str:
    return text


def _err(exc: Exception) -> str:
    return f"\u26a0\ufe0f **{escape(str(exc))}**"


def calibration_panel(cal: Calibrator, source_live: Callable[[], bool]) -> None:
    """Adds the panel to the `gr.Blocks` being built (call inside its ``with``).
    ``source_live``: whether a session is feeding the model now (asked at each refresh)."""

    def status_html() -> str:
        return calibration_html(cal, source_live())

    import gradio as gr

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
                status = gr.HTML(status_html(), elem_id="calib-status")
                message = gr.Markdown(elem_id="calib-message")
            with gr.Column(scale=4, min_width=300):
                with gr.Row():
                    save = gr.Button("Save session", elem_id="calib-save")
                    run = gr.Button("Calibrate", elem_id="calib-run")
                    cancel = gr.Button("Stop calibration", elem_id="calib-cancel")
                models = gr.Dropdown(cal.model_choices(), value=cal.live, label="Model",
                                     elem_id="calib-model", allow_custom_value=False)
                with gr.Row():
                    load = gr.Button("Load model", elem_id="calib-load")
                    refresh = gr.Button("Refresh list", elem_id="calib-refresh")
    seen = gr.State({})  # per page (a copy each): the status HTML and model list last sent

    def act(fn):
        """A handler whose result (or CalibrationError/ValueError) is the message."""
        def run_it(*args):
            try:
                text = fn(*args)
            except (CalibrationError, ValueError) as exc:
                return _err(exc), status_html()
            return _ok(text), status_html()
        return run_it

    def labelled(value):
        def set_it():
            text = cal.set_label(value)
            if value is not None and cal.available and not cal.recording:  # record with it
                cal.start_recording()
                return f"{text}; recording started."
            return text
        return set_it

    out = [message, status]
    ev = {"show_progress": "hidden", "api_visibility": "private"}
    record.click(act(cal.start_recording), None, out, **ev)
    stop.click(act(cal.stop_recording), None, out, **ev)
    up.click(act(labelled(THUMBS_UP)), None, out, **ev).then(
        lambda: THUMBS_UP, None, slider, **ev)
    down.click(act(labelled(THUMBS_DOWN)), None, out, **ev).then(
        lambda: THUMBS_DOWN, None, slider, **ev)
    none.click(act(labelled(None)), None, out, **ev)
    slider.release(act(lambda v: labelled(float(v))()), slider, out, **ev)
    save.click(act(lambda: f"Saved {len(cal.recorder)} labelled windows (features and "
                           f"labels only) to `{cal.save_session()}`"), None, out, **ev)
    run.click(act(lambda: cal.start_calibration()), None, out, **ev)
    cancel.click(act(cal.stop_calibration), None, out, **ev)

    def on_load(choice):
        text, html = act(cal.load_model)(choice)
        return text, html, gr.update(choices=cal.model_choices(), value=cal.live)

    load.click(on_load, models, [message, status, models], concurrency_limit=1, **ev)
    refresh.click(lambda: gr.update(choices=cal.model_choices(), value=cal.live), None,
                  models, **ev)

    def on_tick(state: dict):
        html = status_html()
        choices = cal.model_choices()
        html_out = gr.skip() if state.get("html") == html else html
        models_out = (gr.skip() if state.get("choices") == choices
                      else gr.update(choices=choices))
        state.update(html=html, choices=choices)
        return html_out, models_out

    gr.Timer(STATUS_TICK_S).tick(on_tick, seen, [status, models], show_progress="hidden",
                                 api_visibility="private", concurrency_limit=None)
