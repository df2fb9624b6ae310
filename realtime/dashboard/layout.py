"""The dashboard page as a ``gr.Blocks``: its components (and their ``elem_id``s) and the
events bound to `realtime.dashboard.page.PageController`'s methods. The only module of the
page with Gradio components; what each handler does is in `page`.

Every event is kept out of the API description Gradio embeds in the page (also for
visitors who have not logged in): the refresh and capture events are private, the buttons'
are undocumented (callable, as the page calls them, but not described), and no handler
here has a docstring for Gradio to publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from realtime.dashboard.calibration_panel import calibration_panel
from realtime.dashboard.gradio6_internals import prune_closed_pages
from realtime.dashboard.page import (
    FAST_TICK_S,
    OPERATOR_TICK_S,
    PageController,
    PageSetup,
    PageState,
    PlayerView,
    view_settings,
)
from realtime.dashboard.panels import FAST_PANELS, SLOW_PANELS
from realtime.personal.consent import needs_consent

HIDDEN = {"api_visibility": "private", "api_description": False}
UNDOCUMENTED = {"api_visibility": "undocumented", "api_description": False}


def _player(view: PlayerView | None):
    if view is None:
        return gr.skip()
    return gr.update(value=str(view.path) if view.path is not None else None,
                     visible=view.visible)


def _shown(visible: bool | None):
    return gr.skip() if visible is None else gr.update(visible=visible)


@dataclass
class _Media:
    sentiment: gr.HTML
    player: gr.Video
    browser_box: gr.Group
    webcam: gr.Image
    mic: gr.Audio


@dataclass
class _Controls:
    source: gr.Radio
    upload: gr.File
    device_row: gr.Row
    camera: gr.Number
    mic_name: gr.Textbox
    loop: gr.Checkbox
    consent_box: gr.Group
    agree: gr.Checkbox
    start: gr.Button
    stop: gr.Button
    withdraw: gr.Button
    delete: gr.Button
    message: gr.Markdown


@dataclass
class _Alerts:
    aggregates: gr.HTML
    threshold: gr.Slider
    hold: gr.Slider
    valence_thr: gr.Slider
    arousal_thr: gr.Slider


@dataclass
class _Exports:
    span: gr.Slider
    csv_btn: gr.Button
    jsonl_btn: gr.Button
    exported: gr.File


@dataclass
class _Page:
    """The main page's components that its events read or write, by region."""

    state: gr.State
    status: gr.HTML
    timeline: gr.HTML
    transcript: gr.HTML
    signals: gr.HTML
    expression: gr.HTML
    masks: gr.HTML
    latency: gr.HTML
    media: _Media
    controls: _Controls
    alerts: _Alerts
    exports: _Exports


def build_page(page: PageController) -> gr.Blocks:
    """The page (with the "Personal calibration" panel) and
    the operator's page (/operator)."""
    # uploads and exports older than an hour are removed every 10 minutes (and all at exit)
    with gr.Blocks(title="Live sentiment", analytics_enabled=False,
                   delete_cache=(600, 3600)) as demo:
        c = _components(page.setup())
        calibration_panel(page)
        _bind_refresh(demo, page, c)
        _bind_session(page, c)
        _bind_capture(demo, page, c)
    with demo.route("Operator", "/operator", show_in_navbar=False):
        gr.HTML('<div class="sx-header"><h1>Sessions</h1><span>health only: no sentiment, '
                "words or signals of anyone</span></div>")
        table = gr.HTML(elem_id="operator")
        gr.Timer(OPERATOR_TICK_S).tick(page.operator_html, None, table,
                                       show_progress="hidden", **HIDDEN)
    return demo


def _components(setup: PageSetup) -> _Page:
    """The main page's components, row by row, inside the open ``gr.Blocks``."""
    state = gr.State(PageState())  # copied for each browser tab
    with gr.Row(equal_height=True, elem_classes="sx-top"):
        gr.HTML('<div class="sx-header"><h1>Live sentiment</h1><span>face \u00b7 voice '
                "\u00b7 words \u2192 sentiment in [\u22123, +3]</span></div>", scale=2)
        status = gr.HTML(elem_id="status", scale=3)
    with gr.Row(equal_height=True):
        media = _media_column(setup)
        with gr.Column(scale=8, min_width=480):
            timeline = gr.HTML(elem_id="timeline")
            transcript = gr.HTML(elem_id="transcript")
    with gr.Row(equal_height=True):
        with gr.Column(scale=4, min_width=300):
            signals = gr.HTML(elem_id="signals")
            expression = gr.HTML(elem_id="expression")
        with gr.Column(scale=5, min_width=320):
            masks = gr.HTML(elem_id="masks")
        with gr.Column(scale=3, min_width=260):
            latency = gr.HTML(elem_id="latency")
    with gr.Row(equal_height=False):
        controls = _session_column(setup)
        alerts = _alerts_column()
        exports = _exports_column()
    return _Page(state, status, timeline, transcript, signals, expression, masks, latency,
                 media, controls, alerts, exports)


def _media_column(setup: PageSetup) -> _Media:
    """The sentiment, the recording's player and the browser's webcam and microphone."""
    with gr.Column(scale=4, min_width=320):
        sentiment = gr.HTML(elem_id="sentiment")
        player_path = setup.player_path
        player = gr.Video(value=str(player_path) if player_path else None,
                          elem_id="player", label="Recording", interactive=False,
                          autoplay=False, visible=player_path is not None, height=240)
        with gr.Group(visible=False) as browser_box:  # shown once consented
            webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy",
                              label="Webcam", elem_id="webcam", height=220)
            # each chunk arrives as an uploaded file that on_audio reads and deletes
            mic = gr.Audio(sources=["microphone"], streaming=True, type="filepath",
                           label="Microphone", elem_id="mic")
    return _Media(sentiment, player, browser_box, webcam, mic)


def _session_column(setup: PageSetup) -> _Controls:
    """The source, the consent notice, start/stop, withdraw/delete and the message."""
    kind = setup.kind
    with gr.Column(scale=5, min_width=320):
        source = gr.Radio(list(setup.kinds), value=kind, label="Source", elem_id="source")
        upload = gr.File(label="Video or audio file", file_types=["video", "audio"],
                         type="filepath", visible=kind == "file", elem_id="upload")
        with gr.Row(visible=kind == "devices") as device_row:
            camera = gr.Number(value=setup.camera, precision=0, label="Camera index")
            mic_name = gr.Textbox(value=setup.mic, label="Microphone (name, empty = default)")
        loop = gr.Checkbox(value=setup.loop, label="Loop the recording",
                           elem_id="loop", visible=kind in ("recording", "file"))
        with gr.Group(visible=needs_consent(kind), elem_id="consent") as consent_box:
            gr.Markdown(setup.notice, elem_id="consent-text")
            agree = gr.Checkbox(False, elem_id="consent-agree",
                                label="I have read this and agree to be captured")
        with gr.Row():
            start = gr.Button("Start session", variant="primary", elem_id="start")
            stop = gr.Button("Stop", elem_id="stop")
        with gr.Row():
            withdraw = gr.Button("Withdraw consent", elem_id="withdraw", size="sm")
            delete = gr.Button("Delete my data", elem_id="delete-data", size="sm",
                               variant="stop")
        message = gr.Markdown(elem_id="message")
    return _Controls(source, upload, device_row, camera, mic_name, loop, consent_box, agree,
                     start, stop, withdraw, delete, message)


def _alerts_column() -> _Alerts:
    """The rolling means and the alert thresholds."""
    with gr.Column(scale=4, min_width=300):
        aggregates = gr.HTML(elem_id="aggregates")
        with gr.Row():
            threshold = gr.Slider(-3, 3, value=-1.0, step=0.1, elem_id="threshold",
                                  label="Alert threshold (1-min mean)")
            hold = gr.Slider(2, 120, value=10, step=1, label="for (s)")
        with gr.Row():
            valence_thr = gr.Slider(-1, 1, value=-0.3, step=0.05, elem_id="valence-threshold",
                                    label="Face valence alert (1-min mean below)")
            arousal_thr = gr.Slider(-3, 3, value=1.0, step=0.1, elem_id="arousal-threshold",
                                    label="Voice arousal (heuristic, not validated) "
                                          "alert (1-min mean above)")
    return _Alerts(aggregates, threshold, hold, valence_thr, arousal_thr)


def _exports_column() -> _Exports:
    """The timeline's span and the session log's exports."""
    with gr.Column(scale=3, min_width=240):
        span = gr.Slider(0.5, 10, value=2, step=0.5, label="Timeline (minutes)")
        with gr.Row():
            csv_btn = gr.Button("Export CSV", elem_id="export-csv")
            jsonl_btn = gr.Button("Export JSONL", elem_id="export-jsonl")
        exported = gr.File(label="Session log (no video or audio)",
                           elem_id="export", interactive=False, visible=False)
    return _Exports(span, csv_btn, jsonl_btn, exported)


def _bind_refresh(demo: gr.Blocks, page: PageController, c: _Page) -> None:
    """The panels' refresh: one timer and the page's load, both `PageController.on_tick`."""
    alerts = c.alerts
    fast_out = [c.media.sentiment, c.transcript, c.signals, c.latency, c.status,
                alerts.aggregates, c.expression]
    slow_out = [c.timeline, c.masks]
    assert [x.elem_id for x in fast_out] == list(FAST_PANELS)
    assert [x.elem_id for x in slow_out] == list(SLOW_PANELS)
    free_closed_pages = partial(prune_closed_pages, demo)

    async def on_tick(page_state: PageState, thr, hold_s, span_min, valence_t, arousal_t,
                      request: gr.Request):
        # async: it runs on the server's event loop (a few ms; never waits for a switch)
        return page.on_tick(page_state,
                            view_settings(thr, hold_s, span_min, valence_t, arousal_t),
                            request, free_closed_pages)

    tick_in = [c.state, alerts.threshold, alerts.hold, c.exports.span, alerts.valence_thr,
               alerts.arousal_thr]
    tick_out = [*fast_out, *slow_out]
    timer = gr.Timer(FAST_TICK_S)
    # One timer (one event per tick). "multiple": the page asks every tick even while
    # an answer is on its way, so a slow round trip (a busy CPU) does not halve the
    # refresh rate; answers are cheap and read-only. The page state is changed in place.
    # queue=False: one plain POST per tick instead of a queue join plus an event stream
    # and the queue's bookkeeping (half the requests; benchmarks/viewers.py).
    # postprocess=False: the panels are HTML strings, sent as they are.
    timer.tick(on_tick, tick_in, tick_out, show_progress="hidden", trigger_mode="multiple",
               concurrency_limit=None, queue=False, postprocess=False, **HIDDEN)
    demo.load(on_tick, tick_in, tick_out, show_progress="hidden", **HIDDEN)


def _bind_session(page: PageController, c: _Page) -> None:
    """The buttons: source choice, start, stop, withdraw, delete, exports."""
    ctl, exported = c.controls, c.exports.exported

    def on_source(k):
        shown = page.on_source(k)
        return (gr.update(visible=shown.upload), gr.update(visible=shown.devices),
                gr.update(visible=shown.loop), gr.update(visible=shown.consent))

    ctl.source.change(on_source, ctl.source, [ctl.upload, ctl.device_row, ctl.loop,
                                              ctl.consent_box],
                      show_progress="hidden", **UNDOCUMENTED)

    def on_start(k, file_path, cam, mic_text, loop_on, agreed, request: gr.Request):
        result = page.on_start(k, file_path, cam, mic_text, loop_on, agreed, request)
        return result.message, _player(result.player), _shown(result.browser_box)

    ctl.start.click(on_start, [ctl.source, ctl.upload, ctl.camera, ctl.mic_name, ctl.loop,
                               ctl.agree],
                    [ctl.message, c.media.player, c.media.browser_box], concurrency_limit=1,
                    **UNDOCUMENTED)

    def on_stop(request: gr.Request) -> str:
        return page.on_stop(request)

    ctl.stop.click(on_stop, None, ctl.message, concurrency_limit=1, **UNDOCUMENTED)

    def on_withdraw(request: gr.Request):
        return (page.on_withdraw(request), False, gr.update(visible=False),
                gr.update(value=None, visible=False))

    ctl.withdraw.click(on_withdraw, None, [ctl.message, ctl.agree, c.media.browser_box,
                                           exported],
                       concurrency_limit=1, **UNDOCUMENTED)

    def on_delete(request: gr.Request):
        return page.on_delete(request), gr.update(value=None, visible=False)

    ctl.delete.click(on_delete, None, [ctl.message, exported], concurrency_limit=1,
                     **UNDOCUMENTED)

    def export_csv(request: gr.Request):
        return gr.update(value=str(page.on_export("csv", request)), visible=True)

    def export_jsonl(request: gr.Request):
        return gr.update(value=str(page.on_export("jsonl", request)), visible=True)

    c.exports.csv_btn.click(export_csv, None, exported, **UNDOCUMENTED)
    c.exports.jsonl_btn.click(export_jsonl, None, exported, **UNDOCUMENTED)


def _bind_capture(demo: gr.Blocks, page: PageController, c: _Page) -> None:
    """The browser's frames and microphone chunks, and a closed tab."""
    webcam, mic = c.media.webcam, c.media.mic

    def on_frame(image, request: gr.Request) -> None:
        page.on_frame(image, request)

    def on_audio(payload, request: gr.Request) -> None:
        # the raw upload (no preprocessing, so Gradio makes no second copy)
        page.on_audio(payload.get("path") if isinstance(payload, dict) else None, request)

    def on_mic_stop(request: gr.Request) -> None:
        page.on_mic_stop(request)

    def on_unload(request: gr.Request) -> None:
        page.on_unload(request)

    demo.unload(on_unload)

    webcam.stream(on_frame, webcam, None, stream_every=0.2, show_progress="hidden",
                  concurrency_limit=None, time_limit=None, **HIDDEN)
    # A stream holds its queue slot for as long as its page records, so with Gradio's
    # default limit of 1 a second person's microphone waited for the first one's to
    # stop (forever, when that page never sent its stop). Each page streams on its own;
    # the handler takes milliseconds and a page without a session of its own drops.
    # Chunks of 0.5 s, not 0.2 s: Gradio keeps only the newest chunk a stream posted
    # until its loop takes it, and with a busy loop beside tests/test_e2e_people.py 0.2 s
    # chunks lost 277 of 442 (the words came out as "Okay... Okay..."); 0.5 s ones were
    # heard whole even beside two busy loops. The cost: up to 0.5 s more before a word
    # reaches speech recognition.
    mic.stream(on_audio, mic, None, stream_every=0.5, show_progress="hidden",
               concurrency_limit=None, time_limit=None, preprocess=False, **HIDDEN)
    mic.stop_recording(on_mic_stop, None, None, show_progress="hidden", **HIDDEN)
