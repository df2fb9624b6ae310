"""build_demo and the command line: panels and their elem_ids, what each panel shows for
given predictions, the exposure rules, and the exported logs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import gradio as gr
import numpy as np
import pytest

import app
from models.env import OFFLINE_ENV  # noqa: E402
from realtime.calibration.controller import Calibrator
from realtime.dashboard import page, server
from realtime.dashboard.calibration_panel import STATUS_TICK_S
from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.dashboard.panels import (
    RefreshMeter,
    ViewSettings,
    export_log,
    fast_panels,
    slow_panels,
)
from tests.helpers import REPO  # noqa: E402
from tests.helpers.fakes import FakePipeline, make_prediction

PANELS = ("sentiment", "timeline", "transcript", "signals", "masks", "latency", "status")


@pytest.fixture
def demo():
    pipe = FakePipeline()
    built = app.build_demo(pipe, SourceChoice("recording", path=app.DEMO_RECORDING))
    yield built
    app.close_demo(built)


def _elem_ids(blocks: gr.Blocks) -> dict[str, gr.components.Component]:
    return {b.elem_id: b for b in blocks.blocks.values() if getattr(b, "elem_id", None)}


def test_build_demo_has_every_panel_and_a_5hz_timer(demo):
    assert isinstance(demo.page, gr.Blocks)
    assert isinstance(demo.dashboard, Dashboard) and isinstance(demo.calibrator, Calibrator)
    ids = _elem_ids(demo.page)
    for name in PANELS:
        assert name in ids, name
        assert isinstance(ids[name], gr.HTML)
    timers = [b for b in demo.page.blocks.values() if isinstance(b, gr.Timer)]
    # the panels' timer, the calibration panel's (slower) one, the operator page's
    assert sorted(t.value for t in timers) == sorted([page.FAST_TICK_S, STATUS_TICK_S,
                                                      page.OPERATOR_TICK_S])
    for name in ("consent", "consent-agree", "withdraw", "delete-data", "operator"):
        assert name in ids, name
    assert ids["consent-agree"].value is False  # nobody has agreed before they tick it
    assert page.FAST_TICK_S <= 0.2 < page.SLOW_TICK_S  # >= 5 Hz; plots less often
    assert isinstance(ids["webcam"], gr.Image) and ids["webcam"].streaming
    assert isinstance(ids["mic"], gr.Audio) and ids["mic"].streaming
    assert ids["player"].visible  # the recording is played with its video visible


def test_panels_show_the_latest_prediction(demo):
    dash = demo.dashboard
    dash.start_session()
    masks = {"text": np.random.default_rng(0).random((6, 384), dtype=np.float32),
             "audio": np.full((6, 74), 0.5, np.float32), "video": np.zeros((6, 20), np.float32)}
    for i, v in enumerate([0.4, -1.256, 2.5]):
        dash.pipeline.store.publish(make_prediction(0.2 * (i + 1), v,
                                                    words=("I", "love", "<script>"),
                                                    new_words=(("early",), ("I", "love"),
                                                               ("<script>",))[i],
                                                    masks=masks if i == 2 else None,
                                                    latency_total_ms=100.0 + 50 * i))
    dash.sync()
    meter = RefreshMeter()
    meter.tick(0.0)
    meter.tick(0.2)
    fast = fast_panels(dash, ViewSettings(), meter)
    assert 'data-value="+2.50"' in fast["sentiment"] and ">+2.50<" in fast["sentiment"]
    assert "rgb(" in fast["sentiment"] and "strongly positive" in fast["sentiment"]
    assert "&lt;script&gt;" in fast["transcript"] and "<script>" not in fast["transcript"]
    assert 'class="sx-tentative">again<' in fast["transcript"]
    assert 'class="sx-committed">love<' in fast["transcript"]
    assert 'class="sx-committed">early<' in fast["transcript"]  # from the session log
    assert 'data-face-present="true"' in fast["signals"] and ">180<" in fast["signals"]
    assert ">150<" in fast["latency"]  # p50 of 100, 150, 200 ms
    assert 'data-rate="ui">5.0<' in fast["latency"]
    assert "mmlatch-test" in fast["status"] and "CPU" in fast["status"]
    assert "Triton</i> off" in fast["status"] and 'data-running="true"' in fast["status"]
    assert 'data-media-t="0.60"' in fast["status"]
    slow = slow_panels(dash, ViewSettings())
    assert slow["timeline"].count("<path") >= 3 and "sx-line" in slow["timeline"]
    for modality in ("text", "audio", "video"):
        assert f'data-modality="{modality}"' in slow["masks"]
    assert slow["masks"].count("data:image/png;base64,") == 3


def test_panels_without_predictions_show_no_numbers(demo):
    fast = fast_panels(demo.dashboard, ViewSettings(), RefreshMeter())
    assert 'data-value=""' in fast["sentiment"] and "waiting" in fast["sentiment"]
    assert "no latencies yet" in fast["latency"]
    slow = slow_panels(demo.dashboard, ViewSettings())
    assert "no predictions yet" in slow["timeline"]
    assert "exposes no masks" in slow["masks"]


def test_exported_logs_parse(demo, tmp_path):
    dash = demo.dashboard
    dash.start_session()
    for i in range(12):
        dash.pipeline.store.publish(make_prediction(0.2 * (i + 1), -0.1 * i))
    jsonl = export_log(dash, "jsonl", tmp_path)
    table = export_log(dash, "csv", tmp_path)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows[0]["type"] == "session" and len(rows) == 13
    assert rows[-1]["sentiment"] == pytest.approx(-1.1)
    parsed = list(csv.DictReader(io.StringIO(table.read_text())))
    assert len(parsed) == 12 and parsed[0]["words"] == "hello world"
    assert jsonl.stat().st_size < 20_000  # predictions and signals only
    with pytest.raises(ValueError, match="csv or jsonl"):
        export_log(dash, "mp4", tmp_path)


def test_page_state_says_when_the_slow_panels_are_due():
    state = page.PageState()
    assert state.slow_due(10.0)  # the first tick draws them
    assert not state.slow_due(10.0 + page.SLOW_TICK_S / 2)
    assert state.slow_due(10.0 + page.SLOW_TICK_S)
    assert not state.slow_due(10.0 + page.SLOW_TICK_S * 1.5)


def test_page_state_sends_each_panel_new_or_as_shown_never_a_skip():
    # a gr.skip() output costs Gradio a new component per tick per page (0.6 ms, GIL held)
    state = page.PageState()
    first = state.outputs({"a": "<b>1</b>", "b": "x"}, ["a", "b", "c"])
    assert first == ["<b>1</b>", "x", ""]  # "c" not computed yet: empty
    second = state.outputs({"b": "y", "c": "z"}, ["a", "b", "c"])
    assert second == ["<b>1</b>", "y", "z"]  # "a" not computed this time: as shown
    assert all(isinstance(v, str) for v in first + second)


@pytest.mark.parametrize(
    ("host", "share", "auth", "refused"),
    [("127.0.0.1", False, None, False), ("localhost", False, None, False),
     ("0.0.0.0", False, None, True), ("192.168.1.5", False, None, True),
     ("127.0.0.1", True, None, True), ("0.0.0.0", False, ("u", "password"), False),
     ("127.0.0.1", True, ("u", "password"), False)],
)
def test_exposure_needs_auth(host, share, auth, refused):
    if refused:
        with pytest.raises(SystemExit, match="Refusing to start"):
            server.check_exposure(host, share, auth)
    else:
        server.check_exposure(host, share, auth)


def test_parse_auth():
    assert server.parse_auth("ann:s3cr:et!") == [("ann", "s3cr:et!")]
    assert server.parse_auth(None) is None and server.parse_auth("") is None
    for bad in ("ann", ":pw", "ann:"):
        with pytest.raises(ValueError, match="USER:PASS"):
            server.parse_auth(bad)


def _run_app(*args: str, env_extra: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if k != server.AUTH_ENV}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(REPO / "app.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_refuses_public_host_without_auth():
    proc = _run_app("--host", "0.0.0.0", "--port", "1")
    assert proc.returncode != 0
    assert "Refusing to start" in proc.stderr and "SENTIMENT_AUTH" in proc.stderr
    proc = _run_app("--share", "--auth", "nocolon")
    assert proc.returncode != 0 and "USER:PASS" in proc.stderr


def test_cli_source_must_exist():
    proc = _run_app("--source", "/nonexistent/talk.mp4")
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_importing_app_changes_nothing_process_wide():
    code = ("import os, sys; before = dict(os.environ); import app; "
            "print(dict(os.environ) == before, 'gradio' in sys.modules, 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.stdout.split() == ["True", "False", "False"], out.stderr


def test_main_turns_analytics_off_before_gradio_is_imported():
    # app.main applies the process settings once, before anything imports Gradio (which
    # reads GRADIO_ANALYTICS_ENABLED at import); the refused host ends the run early
    code = ("import os, sys; os.environ['GRADIO_ANALYTICS_ENABLED'] = 'True'; import app; "
            "import realtime.runtime as rt; seen = []; apply = rt.apply_process_settings\n"
            "def spy(*a):\n    seen.append('gradio' in sys.modules); apply(*a)\n"
            "rt.apply_process_settings = spy\n"
            "try:\n    app.main(['--host', '0.0.0.0', '--port', '1'])\n"
            "except SystemExit:\n    pass\n"
            "import gradio.analytics as a\n"
            "print(seen, 'gradio' in sys.modules, a.analytics_enabled(), "
            "os.environ['HF_HUB_OFFLINE'])")
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.stdout.strip() == "[False] True False 1", out.stderr


def test_initial_choice_defaults_to_the_bundled_recording():
    choice = server.initial_choice(server.parse_args([]))
    assert choice.kind == "recording" and choice.path == app.DEMO_RECORDING and choice.loop
    dev = server.initial_choice(server.parse_args(["--camera", "1", "--mic", "USB"]))
    assert (dev.kind, dev.camera, dev.mic) == ("devices", 1, "USB")
    assert server.initial_choice(server.parse_args(["--browser"])).kind == "browser"
    args = server.parse_args([])
    assert (args.host, args.port, args.log_level) == ("127.0.0.1", 7860, "WARNING")
    assert server.parse_args(["--log-level", "info"]).log_level == "INFO"


def test_signals_hold_a_momentary_gap_but_not_a_missing_face(demo):
    from dataclasses import replace

    from realtime.dashboard.panels import held_signals
    from realtime.types import Signals

    dash = demo.dashboard
    dash.start_session()
    store = dash.pipeline.store
    store.publish(make_prediction(0.2, 0.1))  # pitch 180 Hz, smile 0.6, a face
    gap = make_prediction(0.4, 0.1)
    store.publish(replace(gap, signals=Signals(face_present=True)))
    dash.sync()
    held = held_signals(dash, store.latest())
    assert (held.pitch_hz, held.energy_db, held.smile) == (180.0, -22.5, 0.6)
    no_face = replace(gap, t_end_s=0.6, signals=Signals(pitch_hz=150.0, face_present=False))
    store.publish(no_face)
    dash.sync()
    held = held_signals(dash, store.latest())
    assert held.pitch_hz == 150.0 and held.energy_db == -22.5
    assert np.isnan(held.smile) and not held.face_present
    late = replace(no_face, t_end_s=5.0, signals=Signals())
    store.publish(late)
    dash.sync()
    assert np.isnan(held_signals(dash, store.latest()).pitch_hz)  # silence > 1 s shows
