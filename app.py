"""Live multimodal sentiment dashboard (Gradio).

    python app.py [--source PATH | --camera N [--mic NAME] | --browser] [--host H]
                  [--port P] [--auth-file F] [--allowed-host NAME] [--share] [--model DIR]
                  [--log-level L]

Default: the bundled recording (assets/demo.mp4) on http://127.0.0.1:7860. The page reads
only the pipeline's prediction store (through `realtime.dashboard.controller.Dashboard`); no model
work happens in a web handler. Binding anything but loopback, or sharing, needs --auth or
SENTIMENT_AUTH=user:pass (or --auth-file, a file holding USER:PASS; --auth USER:PASS works but
is visible in `ps`); passwords have at least 8 characters. Requests whose Host header is not
the bound address (or a name given with --allowed-host) are refused, and failed logins are
throttled (`realtime.dashboard.http_guard`). Exports live in a temporary folder deleted at
exit. Analytics are off; the page loads nothing from the internet.
The "Personal calibration" panel (`realtime.calibration.panel`) records labelled feature
windows, calibrates a personal model in a subprocess and switches the live model.

People: capture of a person (the browser's webcam and microphone, or this machine's) starts
only after they agree to the consent notice (`elem_id="consent"`; the agreement goes in the
session log). A visitor streaming their own browser gets a session of their own
(`realtime.dashboard.people`): only their page (with --auth: only their login) sees it and
exports it; the shared presenter view (the bundled recording, a file, this machine's camera)
stays as it is for demos. "Withdraw consent" stops the capture and deletes the session's
data; "Delete my data" deletes it at once. Consented session logs are written to the user
data folder and deleted after --retention-days (default 7) by a job that runs at start and
daily. The operator page (/operator) lists sessions with their health only.
"""

from __future__ import annotations

from models.env import apply_offline_env

apply_offline_env()  # before gradio or transformers is imported

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402  (handlers' gr.Request hints resolve at module level)

from models.env import add_log_level, configure_logging  # noqa: E402
from realtime.calibration.controller import Calibrator  # noqa: E402
from realtime.calibration.panel import (  # noqa: E402
    calibration_panel,
    feed_calibrator,
    make_calibrator,
)
from realtime.calibration.recorder import user_data_dir  # noqa: E402
from realtime.clock import perf_s, wall_time_iso  # noqa: E402
from realtime.dashboard import http_guard  # noqa: E402
from realtime.dashboard.consent import (  # noqa: E402
    ConsentTerms,
    consent_record,
    consent_text,
    needs_consent,
)
from realtime.dashboard.controller import (  # noqa: E402
    SOURCE_KINDS,
    SOURCE_LABELS,
    Dashboard,
    LivePipeline,
    PipelineFactory,
    SourceChoice,
    engine_pipeline_factory,
)
from realtime.dashboard.html import health_table  # noqa: E402
from realtime.dashboard.mic_chunks import ChunkStore  # noqa: E402
from realtime.dashboard.panels import (  # noqa: E402
    FAST_PANELS,
    SLOW_PANELS,
    RefreshMeter,
    SharedPanels,
    ViewSettings,
    export_log,
    fast_panels,
    slow_panels,
)
from realtime.dashboard.people import PageViews, PersonalSessions, session_health  # noqa: E402
from realtime.dashboard.retention import (  # noqa: E402
    DEFAULT_RETENTION_DAYS,
    SESSION_LOG_DIR,
    RetentionJob,
    personal_data_rules,
)
from realtime.dashboard.style import CSS, HEAD, theme  # noqa: E402
from realtime.serving.backend import add_serve_arguments, check_serve_arguments  # noqa: E402

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent
DEMO_RECORDING = REPO / "assets" / "demo.mp4"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "SENTIMENT_AUTH"
MIN_PASSWORD_LEN = 8
EXPORT_PREFIX = "sentiment-export-"
CHECKPOINT_ENV = "SENTIMENT_CHECKPOINT"
MAX_PAGES = 64  # browser sessions the server keeps at once (Gradio's default: 10,000)
PRUNE_EVERY_S = 10.0  # how often a live page's tick frees the sessions of closed pages
FAST_TICK_S = 0.18  # 5.6 Hz asked, so jitter and a busy CPU still leave >= 5 Hz
SLOW_TICK_S = 0.5
OPERATOR_TICK_S = 1.0
# Gradio's queue keeps a record of each event (up to 10,000) for its monitoring page (off
# here) and, after every event, summarises all of them in a pandas DataFrame (6.7 ms of CPU
# per event at 10,000 records, holding the GIL the pipeline needs). Few records, and the
# summary never recomputed: read by Gradio when its queue is made (`queue_settings`).
QUEUE_ENV = {"GRADIO_ANALYTICS_MAX_EVENTS": "64",
             "GRADIO_ANALYTICS_CACHE_FREQUENCY": str(2**62)}


class PageState:
    """Per browser tab: its refresh meter, when the slow panels are due, and the HTML it
    shows."""

    def __init__(self) -> None:
        self.meter = RefreshMeter()
        self._slow_due_s = 0.0
        self.shown: dict[str, str] = {}

    def slow_due(self, now_s: float) -> bool:
        """Whether the slow panels are due at ``now_s``; when they are, the next time is
        set `SLOW_TICK_S` later."""
        if now_s < self._slow_due_s:
            return False
        self._slow_due_s = now_s + SLOW_TICK_S
        return True

    def outputs(self, panels: dict[str, str], order: Sequence[str]) -> list[str]:
        """The HTML of the panels named in ``order``: as computed this time, else what the
        page already shows (an unchanged value changes nothing on the page). Never a
        ``gr.skip()``: Gradio builds a new component for each skipped output (0.6 ms of
        CPU, holding the GIL), where the same string again costs it nothing."""
        for name in order:
            html = panels.get(name)
            if html is not None:
                self.shown[name] = html
        return [self.shown.get(name, "") for name in order]


def prune_closed_pages(blocks: gr.Blocks) -> int:
    """Frees at once what the server keeps for pages that were closed; returns how many.

    Gradio keeps each browser session (a copy of the page's whole config, about 200 KiB,
    plus its `PageState`) after its page has closed, until 10,000 sessions have piled up;
    it only marks a closed one (``is_closed``). `MAX_PAGES` bounds the sessions kept."""
    holder = getattr(blocks, "state_holder", None)
    data = getattr(holder, "session_data", None)
    if data is None:
        return 0
    closed = [sid for sid, session in list(data.items()) if getattr(session, "is_closed", False)]
    for sid in closed:
        data.pop(sid, None)
        holder.time_last_used.pop(sid, None)
    if closed:
        log.debug("freed the sessions of %d closed pages", len(closed))
    return len(closed)


def _settings(threshold, hold_s, span_min, valence_thr=-0.3, arousal_thr=1.0) -> ViewSettings:
    return ViewSettings(threshold=float(threshold), hold_s=float(hold_s),
                        span_s=float(span_min) * 60.0, valence_threshold=float(valence_thr),
                        arousal_threshold=float(arousal_thr))


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


def build_ui(dashboard: Dashboard, people: PersonalSessions, export_dir: Path,
             calibrator: Calibrator | None = None, terms: ConsentTerms | None = None
             ) -> gr.Blocks:
    """The page (a ``gr.Blocks``) for the presenter's ``dashboard`` and the visitors'
    own sessions (``people``); see `build_demo`."""
    from gradio.utils import get_upload_folder

    terms = terms or ConsentTerms(DEFAULT_RETENTION_DAYS, None)
    notice = consent_text(terms)
    choice = dashboard.choice
    kind = choice.kind if choice is not None else "recording"

    views = PageViews(dashboard, export_dir, people, per_user=terms.per_user)
    personal, view = views.personal, views.view
    player_path = choice.path if choice is not None and choice.replays_file else None
    recording = DEMO_RECORDING if DEMO_RECORDING.exists() else None
    kinds = [k for k in SOURCE_KINDS if k != "recording" or recording is not None]

    # uploads and exports older than an hour are removed every 10 minutes (and all at exit)
    with gr.Blocks(title="Live sentiment", analytics_enabled=False,
                   delete_cache=(600, 3600)) as demo:
        page = gr.State(PageState)
        with gr.Row(equal_height=True, elem_classes="sx-top"):
            gr.HTML('<div class="sx-header"><h1>Live sentiment</h1><span>face \u00b7 voice '
                    "\u00b7 words \u2192 sentiment in [\u22123, +3]</span></div>", scale=2)
            status = gr.HTML(elem_id="status", scale=3)
        with gr.Row(equal_height=True):
            with gr.Column(scale=4, min_width=320):
                sentiment = gr.HTML(elem_id="sentiment")
                player = gr.Video(value=str(player_path) if player_path else None,
                                  elem_id="player", label="Recording", interactive=False,
                                  autoplay=False, visible=player_path is not None,
                                  height=240)
                with gr.Group(visible=False) as browser_box:  # shown once consented
                    webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy",
                                      label="Webcam", elem_id="webcam", height=220)
                    # each chunk arrives as an uploaded file that on_audio reads and deletes
                    mic = gr.Audio(sources=["microphone"], streaming=True, type="filepath",
                                   label="Microphone", elem_id="mic")
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
            with gr.Column(scale=5, min_width=320):
                source = gr.Radio([(SOURCE_LABELS[k], k) for k in kinds], value=kind,
                                  label="Source", elem_id="source")
                upload = gr.File(label="Video or audio file", file_types=["video", "audio"],
                                 type="filepath", visible=kind == "file", elem_id="upload")
                with gr.Row(visible=kind == "devices") as device_row:
                    camera = gr.Number(value=choice.camera if choice and choice.camera
                                       is not None else 0, precision=0, label="Camera index")
                    mic_name = gr.Textbox(value=(choice.mic or "") if choice else "",
                                          label="Microphone (name, empty = default)")
                loop = gr.Checkbox(value=bool(choice.loop) if choice else True,
                                   label="Loop the recording", elem_id="loop",
                                   visible=kind in ("recording", "file"))
                with gr.Group(visible=needs_consent(kind), elem_id="consent") as consent_box:
                    gr.Markdown(notice, elem_id="consent-text")
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
            with gr.Column(scale=4, min_width=300):
                aggregates = gr.HTML(elem_id="aggregates")
                with gr.Row():
                    threshold = gr.Slider(-3, 3, value=-1.0, step=0.1, elem_id="threshold",
                                          label="Alert threshold (1-min mean)")
                    hold = gr.Slider(2, 120, value=10, step=1, label="for (s)")
                with gr.Row():
                    valence_thr = gr.Slider(-1, 1, value=-0.3, step=0.05,
                                            elem_id="valence-threshold",
                                            label="Face valence alert (1-min mean below)")
                    arousal_thr = gr.Slider(-3, 3, value=1.0, step=0.1,
                                            elem_id="arousal-threshold",
                                            label="Voice arousal (heuristic, not validated) "
                                                  "alert (1-min mean above)")
            with gr.Column(scale=3, min_width=240):
                span = gr.Slider(0.5, 10, value=2, step=0.5, label="Timeline (minutes)")
                with gr.Row():
                    csv_btn = gr.Button("Export CSV", elem_id="export-csv")
                    jsonl_btn = gr.Button("Export JSONL", elem_id="export-jsonl")
                exported = gr.File(label="Session log (no video or audio)",
                                   elem_id="export", interactive=False, visible=False)
        if calibrator is not None:
            calibration_panel(calibrator, lambda: dashboard.session_active)

        fast_out = [sentiment, transcript, signals, latency, status, aggregates, expression]
        slow_out = [timeline, masks]
        assert [c.elem_id for c in fast_out] == list(FAST_PANELS)
        assert [c.elem_id for c in slow_out] == list(SLOW_PANELS)

        prune_due_s = [0.0]  # when the next tick frees closed pages' sessions
        shared = SharedPanels()  # pages showing the same session share its panels

        async def on_tick(state: PageState, thr, hold_s, span_min, valence_t, arousal_t,
                          request: gr.Request):
            """Every FAST_TICK_S: the fast panels; the timeline and masks every SLOW_TICK_S,
            of this page's own session, else the presenter's. Async: it runs on the server's
            event loop (a few ms; never waits for a switch)."""
            now_s = perf_s()
            if now_s >= prune_due_s[0]:
                prune_due_s[0] = now_s + PRUNE_EVERY_S
                prune_closed_pages(demo)
            settings = _settings(thr, hold_s, span_min, valence_t, arousal_t)
            state.meter.tick(now_s)
            shown, _ = view(request)
            panels = fast_panels(shown, settings, state.meter, shared)
            if state.slow_due(now_s):
                panels.update(slow_panels(shown, settings, shared))
            return state.outputs(panels, [*FAST_PANELS, *SLOW_PANELS])

        tick_in = [page, threshold, hold, span, valence_thr, arousal_thr]
        tick_out = [*fast_out, *slow_out]
        timer = gr.Timer(FAST_TICK_S)
        # One timer (one event per tick). "multiple": the page asks every tick even while
        # an answer is on its way, so a slow round trip (a busy CPU) does not halve the
        # refresh rate; answers are cheap and read-only. The page state is changed in place.
        # queue=False: one plain POST per tick instead of a queue join plus an event stream
        # and the queue's bookkeeping (half the requests; benchmarks/viewers.py).
        # postprocess=False: the panels are HTML strings, sent as they are.
        timer.tick(on_tick, tick_in, tick_out, show_progress="hidden", trigger_mode="multiple",
                   api_visibility="private", concurrency_limit=None, queue=False,
                   postprocess=False)
        demo.load(on_tick, tick_in, tick_out, show_progress="hidden")

        def on_source(k):
            return (gr.update(visible=k == "file"), gr.update(visible=k == "devices"),
                    gr.update(visible=k in ("recording", "file")),
                    gr.update(visible=needs_consent(k)))

        source.change(on_source, source, [upload, device_row, loop, consent_box],
                      show_progress="hidden")

        def on_start(k, file_path, cam, mic_text, loop_on, agreed, request: gr.Request):
            """Capture of a person only with consent; the browser's own capture as this
            page's personal session; anything else in the shared presenter view."""
            consent = None
            if needs_consent(k):
                if not agreed:
                    return ("**Consent first:** read the notice above and tick *I agree*; "
                            "nothing is captured until you do.", gr.skip(), gr.skip())
                consent = consent_record(notice, wall_time_iso())
            who = views.owner(request)
            try:
                if k == "browser" or (k == "devices" and terms.per_user):
                    # a person's own session: with logins, this machine's camera too
                    if who is None:
                        raise RuntimeError("this page cannot hold a session of its own")
                    mine = people.open(who, SourceChoice(
                        k, camera=int(cam or 0), mic=(mic_text or "").strip() or None),
                        consent)
                    what = ("your browser's webcam and microphone. Allow the camera and "
                            "press record below" if k == "browser" else
                            "this machine's camera and microphone")
                    return (f"Session started (session {mine.id}; only you see it): {what}.",
                            gr.update(value=None, visible=False),
                            gr.update(visible=k == "browser"))
                path = (recording if k == "recording" else
                        Path(file_path) if k == "file" and file_path else None)
                new = SourceChoice(kind=k, path=path, camera=int(cam or 0),
                                   mic=(mic_text or "").strip() or None,
                                   loop=bool(loop_on) and k in ("recording", "file"))
                msg = dashboard.start_session(new, consent)
            except Exception as exc:  # noqa: BLE001 - shown to the user, nothing is lost
                log.warning("could not start a %s session: %s: %s", k, type(exc).__name__, exc)
                return f"**Could not start:** {type(exc).__name__}: {exc}", gr.skip(), gr.skip()
            if who is not None:
                people.close(who)  # this page now follows the presenter view
            has_video = getattr(dashboard.pipeline.source, "has_video", False)
            video = (gr.update(value=str(path), visible=True) if path is not None and has_video
                     else gr.update(value=None, visible=False))
            return msg, video, gr.update(visible=False)

        start.click(on_start, [source, upload, camera, mic_name, loop, agree],
                    [message, player, browser_box], concurrency_limit=1)

        def on_stop(request: gr.Request) -> str:
            shown, _ = view(request)
            return shown.stop_session()

        stop.click(on_stop, None, message, concurrency_limit=1)

        def on_withdraw(request: gr.Request):
            """Stops this page's capture of a person and deletes what it kept."""
            who = views.owner(request)
            if personal(request) is not None:
                msg = people.withdraw(who)
            elif dashboard.consent is not None:
                msg = dashboard.withdraw()
                shutil.rmtree(export_dir, ignore_errors=True)
            else:
                msg = "No capture of a person is running here; nothing personal is kept"
            return msg, False, gr.update(visible=False), gr.update(value=None, visible=False)

        withdraw.click(on_withdraw, None, [message, agree, browser_box, exported],
                       concurrency_limit=1)

        def on_delete(request: gr.Request):
            who = views.owner(request)
            if personal(request) is not None:
                msg = people.delete_data(who)
            else:
                msg = dashboard.delete_data()
                shutil.rmtree(export_dir, ignore_errors=True)
            return msg, gr.update(value=None, visible=False)

        delete.click(on_delete, None, [message, exported], concurrency_limit=1)

        def on_export(fmt: str, request: gr.Request):
            shown, folder = view(request)
            return gr.update(value=str(export_log(shown, fmt, folder)), visible=True)

        def export_csv(request: gr.Request):
            return on_export("csv", request)

        def export_jsonl(request: gr.Request):
            return on_export("jsonl", request)

        csv_btn.click(export_csv, None, exported)
        jsonl_btn.click(export_jsonl, None, exported)

        def on_frame(image, request: gr.Request) -> None:
            mine = personal(request)  # only this page's own session takes its camera
            if mine is not None:
                mine.dashboard.push_frame(image)

        chunks = ChunkStore(get_upload_folder())

        def replayed() -> Path | None:
            choice = dashboard.choice
            return choice.path if choice is not None and choice.kind == "file" else None

        def on_audio(payload, request: gr.Request) -> None:
            """The raw upload (no preprocessing, so Gradio makes no second copy), read and
            deleted at once; it reaches only this page's own session."""
            path = payload.get("path") if isinstance(payload, dict) else None
            if path:
                audio = chunks.take(path, keep=replayed())
                mine = personal(request)
                if mine is not None:
                    mine.dashboard.push_audio(audio)
                    mine.dashboard.set_page_drops("browser_audio_lost", chunks.dropped)

        def on_mic_stop(request: gr.Request) -> None:
            """Chunks of this recording left unhandled go within 2 s (two sweeps: only
            files present at both, so another page's chunk in flight is spared)."""
            for _ in range(2):
                threading.Event().wait(1.0)
                chunks.sweep(keep=replayed())
            mine = personal(request)
            if mine is not None:
                mine.dashboard.set_page_drops("browser_audio_lost", chunks.dropped)

        def on_unload(request: gr.Request) -> None:
            """A closed tab ends its session (with --auth the login's session stays until
            it is idle; its log file stays until retention)."""
            who = views.owner(request)
            if not terms.per_user and who is not None:
                people.close(who)

        demo.unload(on_unload)

        webcam.stream(on_frame, webcam, None, stream_every=0.2, show_progress="hidden",
                      concurrency_limit=None, time_limit=None, api_visibility="private")
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
                   concurrency_limit=None, time_limit=None, api_visibility="private",
                   preprocess=False)
        mic.stop_recording(on_mic_stop, None, None, show_progress="hidden",
                           api_visibility="private")

    with demo.route("Operator", "/operator", show_in_navbar=False):
        gr.HTML('<div class="sx-header"><h1>Sessions</h1><span>health only: no sentiment, '
                "words or signals of anyone</span></div>")
        table = gr.HTML(elem_id="operator")

        def on_operator() -> str:
            rows = people.health()
            shown = dashboard.choice.kind if dashboard.choice is not None else "none"
            return health_table([session_health("presenter", shown, dashboard), *rows])

        gr.Timer(OPERATOR_TICK_S).tick(on_operator, None, table, show_progress="hidden",
                                       api_visibility="private")
    return demo


@dataclass(frozen=True)
class Demo:
    """The dashboard page and its controllers: ``dashboard`` (call ``start_session()`` to
    start) and ``calibrator`` (the "Personal calibration" panel's)."""

    page: gr.Blocks
    dashboard: Dashboard
    calibrator: Calibrator
    export_dir: Path
    people: PersonalSessions
    retention: RetentionJob


def build_demo(pipeline: LivePipeline, choice: SourceChoice | None = None,
               pipeline_factory: PipelineFactory | None = None,
               model_dir: Path | None = None, data_dir: Path | None = None,
               default_face_weight: float | None = None,
               personal_factory: PipelineFactory | None = None,
               options: PeopleOptions | None = None) -> Demo:
    """The dashboard page for a `realtime.pipeline.Pipeline`, with its controllers.

    ``choice`` says what the pipeline listens to (for the player and for looping);
    ``pipeline_factory`` builds the pipeline for another source (default: a new
    `Pipeline` on ``pipeline.engine``). ``model_dir``: the folder the engine's model came
    from (None: the default); ``data_dir``: where calibration keeps its files (None: the
    user data folder, `realtime.calibration.recorder.user_data_dir`);
    ``default_face_weight``: the face weight W that goes with the default model when the
    calibration panel loads it back (None: the engine's W if its model is the default,
    else 0). ``personal_factory``: builds each visitor's own browser session (default:
    ``pipeline_factory`` without calibration; the app passes one on the shared batching
    executor); ``options``: their limits and data retention (`PeopleOptions`). The
    retention job runs at once (and daily). Call `close_demo` when done.
    """
    options = options or PeopleOptions()
    data_dir = data_dir or user_data_dir()
    engine = getattr(pipeline, "engine", None)
    if pipeline_factory is None and engine is not None:
        pipeline_factory = engine_pipeline_factory(engine)
    personal_factory = personal_factory or pipeline_factory
    calibrator = make_calibrator(engine, model_dir, data_dir,
                                 default_face_weight=default_face_weight)
    if calibrator.available:  # every presenter pipeline sends its windows to calibration
        pipeline_factory = feed_calibrator(calibrator, pipeline, pipeline_factory)
    log_dir = data_dir / SESSION_LOG_DIR if options.retention_days > 0 else None
    dashboard = Dashboard(pipeline, choice, pipeline_factory, log_dir=log_dir)
    export_dir = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX))
    people = PersonalSessions(personal_factory, export_root=export_dir / "people",
                              log_dir=log_dir, max_sessions=options.max_sessions,
                              idle_timeout_s=options.idle_timeout_s)
    people.start_reaper()
    retention = RetentionJob(personal_data_rules(data_dir), options.retention_days).start()
    terms = ConsentTerms(options.retention_days, log_dir, per_user=options.per_user)
    page = build_ui(dashboard, people, export_dir, calibrator=calibrator, terms=terms)
    return Demo(page, dashboard, calibrator, export_dir, people, retention)


def close_demo(demo: Demo) -> None:
    """Stops every session, recording, calibration run and the retention job; deletes the
    exports."""
    try:
        demo.retention.stop()
        demo.people.close_all()
        demo.calibrator.close()
        demo.dashboard.close()
    finally:
        shutil.rmtree(demo.export_dir, ignore_errors=True)


# -- command line ------------------------------------------------------------------------
def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` -> (user, pass); None/empty -> None; anything else is an error."""
    if not value:
        return None
    user, sep, password = value.strip().partition(":")
    if not sep or not user or not password:
        raise ValueError("auth must be USER:PASS with both parts non-empty")
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LEN} characters")
    return user, password


def auth_value(args: argparse.Namespace) -> str | None:
    """USER:PASS from --auth-file, else ${AUTH_ENV}, else --auth (with a warning: the command
    line is visible to every user of the machine in `ps`)."""
    if args.auth_file is not None:
        try:
            return args.auth_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {args.auth_file}: {exc}") from None
    if os.environ.get(AUTH_ENV):
        return os.environ[AUTH_ENV]
    if args.auth:
        log.warning("--auth on the command line is visible to other users in `ps`; "
                    "prefer %s=USER:PASS or --auth-file FILE", AUTH_ENV)
    return args.auth


def check_exposure(host: str, share: bool, auth: tuple[str, str] | None) -> None:
    """Refuses to serve beyond this machine without a login."""
    if (host not in LOOPBACK or share) and auth is None:
        where = "--share" if share else f"--host {host}"
        raise SystemExit(
            f"Refusing to start: {where} exposes the dashboard beyond this machine; "
            f"give --auth USER:PASS or set {AUTH_ENV}=USER:PASS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Live multimodal sentiment dashboard")
    p.add_argument("--source", type=Path, help="a video or audio file to replay live "
                   "(default: the bundled recording assets/demo.mp4)")
    p.add_argument("--browser", action="store_true",
                   help="start on the page's own webcam and microphone")
    p.add_argument("--camera", type=int, help="this machine's camera index")
    p.add_argument("--mic", help="this machine's microphone name (with --camera or alone)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help=f"USER:PASS (visible in `ps`: prefer {AUTH_ENV} or "
                   "--auth-file)")
    p.add_argument("--auth-file", type=Path, help="a file holding USER:PASS")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for this Host name (repeatable)")
    p.add_argument("--share", action="store_true", help="a public Gradio link (needs auth)")
    p.add_argument("--model", "--checkpoint", dest="checkpoint", type=Path,
                   default=os.environ.get(CHECKPOINT_ENV) or None,
                   help=f"model folder, e.g. a personal model (default: ${CHECKPOINT_ENV}, "
                   "else assets/model)")
    p.add_argument("--no-loop", action="store_true", help="play a recording once")
    p.add_argument("--face-weight", type=float, default=None, metavar="W",
                   help="add W * face valence (in [-1, 1]) to the shown sentiment while a face "
                        "is in view, with the default model (default 0: the model's "
                        "sentiment) and at start with a --checkpoint personal model (default: "
                        "the W its calibration fitted); a personal model loaded in the "
                        "calibration panel brings its own W")
    p.add_argument("--max-sessions", type=int, default=default_max_sessions(),
                   help="most visitors streaming their own capture at once (default: one "
                        "per CPU core, here %(default)s; each runs speech recognition and "
                        "face tracking)")
    p.add_argument("--idle-timeout-s", type=float, default=PeopleOptions.idle_timeout_s,
                   help="close a visitor's session after this long without input "
                        "(default %(default)s)")
    p.add_argument("--retention-days", type=int, default=DEFAULT_RETENTION_DAYS,
                   help="delete consented session logs and calibration sessions older "
                        "than this, at start and daily (default %(default)s; 0: never "
                        "write session logs to disk)")
    add_serve_arguments(p)
    add_log_level(p)
    args = p.parse_args(argv)
    check_serve_arguments(p, args)
    if args.max_sessions < 1:
        p.error(f"--max-sessions must be >= 1, got {args.max_sessions}")
    if not (math.isfinite(args.idle_timeout_s) and args.idle_timeout_s > 0):
        p.error(f"--idle-timeout-s must be > 0, got {args.idle_timeout_s}")
    if args.retention_days < 0:
        p.error(f"--retention-days must be >= 0, got {args.retention_days}")
    if args.face_weight is not None and not (math.isfinite(args.face_weight)
                                             and abs(args.face_weight) <= 6):
        p.error(f"--face-weight must be a number in [-6, 6], got {args.face_weight}")
    return args


def initial_choice(args: argparse.Namespace) -> SourceChoice:
    if args.browser:
        return SourceChoice("browser")
    if args.camera is not None or args.mic is not None:
        return SourceChoice("devices", camera=args.camera, mic=args.mic)
    if args.source is not None:
        if not args.source.exists():
            raise SystemExit(f"--source {args.source}: no such file")
        return SourceChoice("file", path=args.source, loop=not args.no_loop)
    if not DEMO_RECORDING.exists():
        raise SystemExit(f"the bundled recording {DEMO_RECORDING} is missing; "
                         "give --source PATH or --camera N")
    return SourceChoice("recording", path=DEMO_RECORDING, loop=not args.no_loop)


def launch(demo: Demo, args: argparse.Namespace, auth: tuple[str, str] | None,
           block: bool = True) -> None:
    """Serves the page as ``args`` say, behind `realtime.dashboard.http_guard`;
    ``block=False`` returns once the server is up (tests; close with demo.page.close())."""
    with queue_settings():
        demo.page.queue(default_concurrency_limit=4)
    demo.page.launch(server_name=args.host, server_port=args.port, share=args.share,
                     auth=auth, ssr_mode=False, theme=theme(), css=CSS, head=HEAD,
                     footer_links=[], show_error=True, quiet=False, enable_monitoring=False,
                     prevent_thread_lock=not block, state_session_capacity=MAX_PAGES,
                     app_kwargs={"middleware": http_guard.middleware(guard_config(args))})


@contextlib.contextmanager
def queue_settings():
    """`QUEUE_ENV` in the environment while Gradio's queue is made (unless the user set
    them), then the environment as it was: nothing else in the process sees them."""
    added = {k: v for k, v in QUEUE_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def guard_config(args: argparse.Namespace) -> http_guard.GuardConfig:
    return http_guard.GuardConfig(bound_host=args.host, allowed_hosts=tuple(args.allowed_host),
                                  share=args.share)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop the pipeline and the server like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    signal.signal(signal.SIGTERM, _interrupt)
    private_tmp = None
    if not os.environ.get("GRADIO_TEMP_DIR"):  # uploads and chunks: ours, gone at exit
        private_tmp = tempfile.mkdtemp(prefix="sentiment-gradio-")
        os.environ["GRADIO_TEMP_DIR"] = private_tmp
    try:
        return _serve(args)
    except KeyboardInterrupt:
        return 130
    finally:
        if private_tmp is not None:
            shutil.rmtree(private_tmp, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    try:
        auth = parse_auth(auth_value(args))
    except ValueError as exc:
        raise SystemExit(f"--auth/--auth-file/{AUTH_ENV}: {exc}") from None
    check_exposure(args.host, args.share, auth)
    choice = initial_choice(args)

    from realtime.engine import EngineError
    from realtime.runtime import ProcessSettings, Runtime, RuntimeConfig, apply_process_settings
    from realtime.serving.backend import ServingError
    from realtime.sources import SourceError

    apply_process_settings(ProcessSettings())
    log.info("loading models (once)")
    runtime = None
    try:
        # visitors' own sessions: the model and word encoder batched across all of them
        runtime = Runtime.open(RuntimeConfig(
            checkpoint_dir=args.checkpoint, face_weight=args.face_weight, serve=args.serve,
            ray_address=args.ray_address, shared_models=True,
            max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout_s))
        engine = runtime.engine
        factory = engine_pipeline_factory(
            engine, models=None if runtime.served is None else runtime.served.models)
        personal_factory = engine_pipeline_factory(engine, models=runtime.models)
        pipeline = factory(choice)
    except (EngineError, ServingError, SourceError, FileNotFoundError, ValueError) as exc:
        if runtime is not None:
            runtime.close()
        raise SystemExit(f"Cannot start: {exc}") from None
    options = PeopleOptions(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout_s,
                            retention_days=args.retention_days, per_user=auth is not None)
    demo = build_demo(pipeline, choice, factory, model_dir=args.checkpoint,
                      default_face_weight=engine.face_weight,
                      personal_factory=personal_factory, options=options)
    try:
        if not needs_consent(choice.kind):  # a person is captured only once they agree
            demo.dashboard.start_session()
        launch(demo, args, auth)
    except KeyboardInterrupt:
        pass
    finally:
        close_demo(demo)
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
