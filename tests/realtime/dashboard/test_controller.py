"""Session log: rolling aggregates, the alert, bounded size, exports without media; the
dashboard controller's session lifecycle, looping and browser input routing."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.dashboard.session_log import SessionLog
from realtime.personal.consent import consent_record
from tests.helpers import REPO  # noqa: E402
from tests.helpers.fakes import FakeBrowserSource, FakePipeline, make_prediction

AGREED = consent_record("the notice", "2026-12-02T10:00:00")


def _fill(log: SessionLog, values, hop_s: float = 0.2, t0_s: float = 0.0) -> None:
    for i, v in enumerate(values):
        log.append(make_prediction(t0_s + i * hop_s, float(v)))


def test_rolling_means_cover_one_and_five_minutes():
    log = SessionLog()
    # 4 minutes at -1, then 1 minute at +2 (hop 0.2 s)
    _fill(log, [-1.0] * 1200 + [2.0] * 300)
    agg = log.aggregates()
    assert agg.rows == 1500
    assert agg.mean_1min == pytest.approx(2.0)
    # the 5-minute window holds all 300 s = 1500 rows
    assert agg.mean_5min == pytest.approx((-1.0 * 1200 + 2.0 * 300) / 1500)
    assert agg.negative_share == pytest.approx(0.8, abs=0.01)
    assert agg.duration_s == pytest.approx(299.8)


def test_negative_share_is_time_weighted_and_caps_gaps():
    log = SessionLog(max_gap_s=1.0)
    log.append(make_prediction(0.0, -1.0))
    log.append(make_prediction(10.0, 1.0))  # a 10 s gap counts as 1 s
    log.append(make_prediction(11.0, 1.0))
    agg = log.aggregates()
    # -1 weighs 1 s (capped), +1 weighs 1 s, the newest weighs the mean step (1 s)
    assert agg.negative_share == pytest.approx(1.0 / 3.0)


def test_alert_needs_the_mean_to_stay_below_for_hold_seconds():
    log = SessionLog()
    _fill(log, [0.5] * 100)  # 20 s positive
    assert not log.alert(-0.5, hold_s=5.0).active
    _fill(log, [-3.0] * 200, t0_s=20.0)  # the 1-minute mean falls under -0.5 after a while
    state = log.alert(-0.5, hold_s=5.0)
    assert state.active and state.below_for_s >= 5.0 and state.mean_1min < -0.5
    assert not log.alert(-2.9, hold_s=5.0).active  # the mean is still above -2.9
    _fill(log, [3.0] * 400, t0_s=60.0)
    assert not log.alert(-0.5, hold_s=5.0).active


def test_log_is_bounded_and_counts_dropped_rows():
    log = SessionLog(max_rows=100)
    _fill(log, np.linspace(-1, 1, 250))
    assert len(log) <= 100
    assert log.dropped_rows + len(log) == 250
    assert log.rows()[-1].t_s == pytest.approx(249 * 0.2)


def test_session_time_never_goes_backwards_across_pipelines():
    log = SessionLog()
    _fill(log, [0.1] * 10)
    log.append(make_prediction(0.2, 0.3), offset_s=2.5)
    assert log.rows()[-1].t_s == pytest.approx(2.7)
    log.append(make_prediction(0.0, 0.3), offset_s=0.0)
    assert log.rows()[-1].t_s == pytest.approx(2.7)


def test_exports_parse_and_contain_no_media():
    log = SessionLog()
    log.reset(started_wall="2025-01-01T10:00:00", source="file:demo.mp4")
    masks = {"text": np.ones((5, 384), np.float32), "audio": np.ones((5, 74), np.float32)}
    log.append(make_prediction(0.2, 1.5, words=("great", 'say "hi", <b>'), masks=masks))
    p = make_prediction(0.4, -0.5, face=False)
    log.append(p)
    lines = log.to_jsonl().splitlines()
    head, *rows = [json.loads(line) for line in lines]
    assert head["type"] == "session" and head["rows"] == 2
    assert [r["type"] for r in rows] == ["prediction", "prediction"]
    assert rows[0]["sentiment"] == 1.5 and rows[0]["words"] == ["great", 'say "hi", <b>']
    assert rows[0]["latency_ms"]["total"] == 120.0 and rows[0]["pitch_hz"] == 180.0
    assert rows[1]["face_present"] is False
    assert "masks" not in rows[0]
    text = log.to_jsonl() + log.to_csv()
    assert len(text) < 5000  # a (5, 384) mask alone would be far larger
    table = list(csv.DictReader(io.StringIO(log.to_csv())))
    assert len(table) == 2
    assert float(table[0]["sentiment"]) == 1.5
    assert table[0]["words"] == 'great say "hi", <b>'
    assert float(table[1]["latency_total_ms"]) == 120.0
    assert table[1]["drops_video_queue"] == "2"
    for forbidden in ("image", "samples", "masks", "audio_b64"):
        assert forbidden not in table[0]


def test_nan_signals_export_as_null_and_empty():
    log = SessionLog()
    pred = make_prediction(0.2, 0.0)
    from dataclasses import replace

    from realtime.types import Signals
    log.append(replace(pred, signals=Signals()))
    row = json.loads(log.to_jsonl().splitlines()[1])
    assert row["pitch_hz"] is None and row["smile"] is None
    assert list(csv.DictReader(io.StringIO(log.to_csv())))[0]["pitch_hz"] == ""


def test_dashboard_session_records_every_published_prediction():
    pipe = FakePipeline()
    dash = Dashboard(pipe, SourceChoice("recording", path=__file__), sync_interval_s=0.01)
    dash.start_session()
    assert pipe.running and dash.session_active
    for i in range(30):
        pipe.store.publish(make_prediction(0.2 * (i + 1), math.sin(i / 5)))
    dash.sync()
    msg = dash.stop_session()
    assert not pipe.running and "30 predictions" in msg
    assert [round(r.t_s, 3) for r in dash.log.rows()] == [round(0.2 * (i + 1), 3)
                                                          for i in range(30)]
    # publishing after stop is not logged
    pipe.store.publish(make_prediction(7.0, 1.0))
    dash.sync()
    assert len(dash.log) == 30


def test_dashboard_loops_a_recording_and_shifts_session_time():
    built: list[FakePipeline] = []

    def factory(choice):
        p = FakePipeline()
        built.append(p)
        return p

    first = FakePipeline()
    dash = Dashboard(first, SourceChoice("recording", path=__file__, loop=True), factory,
                     sync_interval_s=3600)  # drive it by hand, not by the thread
    dash.start_session()
    for i in range(5):
        first.store.publish(make_prediction(0.2 * (i + 1), 0.5))
    first.running = False  # the recording ended
    dash._maybe_loop()
    assert len(built) == 1 and built[0].running
    built[0].store.publish(make_prediction(0.2, -0.5))
    dash.sync()
    times = [r.t_s for r in dash.log.rows()]
    assert times[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert times[5] == pytest.approx(1.0 + dash.restart_gap_s + 0.2)
    dash.close()


def test_dashboard_routes_browser_input_only_to_a_browser_source():
    browser = FakeBrowserSource()
    dash = Dashboard(FakePipeline(), SourceChoice("recording", path=__file__),
                     lambda choice: FakePipeline(source=browser))
    frame = np.zeros((48, 64, 3), np.uint8)
    assert not dash.push_frame(frame)  # the recording is playing: ignored
    dash.start_session(SourceChoice("browser"), AGREED)
    assert dash.push_frame(frame)
    assert dash.push_audio((48000, np.zeros(9600, np.int16)))
    assert not dash.push_audio((48000, np.zeros(0, np.int16)))
    assert not dash.push_frame(None)
    assert len(browser.frames) == 1 and browser.audio[0][0] == 48000
    st = dash.status()
    assert (st.browser_frames, st.browser_audio_chunks) == (1, 1)
    dash.close()


def test_source_choice_validates():
    with pytest.raises(ValueError, match="unknown source kind"):
        SourceChoice("satellite")
    with pytest.raises(ValueError, match="upload a video or audio file"):
        SourceChoice("file")


def test_transcript_keeps_words_that_left_the_window():
    log = SessionLog(max_transcript_words=5)
    spoken = "the plot was terrible and the acting was awful".split()
    for i, word in enumerate(spoken):
        window = tuple(spoken[max(0, i - 2): i + 1])  # the model only sees 3 words
        log.append(make_prediction(0.2 * (i + 1), -1.0, words=window, new_words=(word,)))
    assert log.transcript(60) == spoken[-5:]  # bounded to the newest 5
    assert log.transcript(2) == ["was", "awful"]
    table = list(csv.DictReader(io.StringIO(log.to_csv())))
    assert " ".join(r["new_words"] for r in table) == " ".join(spoken)
    assert table[-1]["words"] == "acting was awful"


def test_a_source_that_cannot_open_leaves_the_running_session_alone():
    first = FakePipeline()

    def factory(choice):
        raise OSError(f"cannot read {choice.path}")

    dash = Dashboard(first, SourceChoice("recording", path=__file__), factory,
                     sync_interval_s=0.01)
    dash.start_session()
    first.store.publish(make_prediction(0.2, 1.0))
    with pytest.raises(OSError, match="cannot read"):
        dash.start_session(SourceChoice("file", path="broken.mp4"))
    assert dash.pipeline is first and first.running and dash.session_active
    first.store.publish(make_prediction(0.4, 1.0))
    dash.sync()
    assert len(dash.log) == 2  # the log went on
    dash.close()
    assert not first.running and not dash.session_active


def test_page_drops_are_running_totals_shown_read_only():
    dash = Dashboard(FakePipeline())
    assert dict(dash.ui_drops) == {}
    dash.set_page_drops("browser_audio_lost", 2)
    dash.set_page_drops("browser_audio_lost", 5)  # a total, not an increment
    assert dict(dash.ui_drops) == {"browser_audio_lost": 5}
    with pytest.raises(TypeError):
        dash.ui_drops["browser_audio_lost"] = 0  # type: ignore[index]
    assert dash.ui_drops["browser_audio_lost"] == 5


def test_make_source_builds_the_real_sources(tmp_path):
    from realtime.dashboard.controller import source_spec
    from realtime.sources import BrowserSource, FileSource, SourceError
    from realtime.sources import make_source as make

    def make_source(choice):
        return make(source_spec(choice))

    recording = make_source(SourceChoice("recording", path=REPO / "assets" / "demo.mp4"))
    assert isinstance(recording, FileSource) and recording.has_video and recording.has_audio
    assert isinstance(make_source(SourceChoice("browser")), BrowserSource)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError):
        make_source(SourceChoice("file", path=empty))


def test_a_device_that_cannot_open_leaves_the_running_session_running():
    # defect: the old pipeline was stopped first, the new one reported running with no threads
    first = FakePipeline()
    dash = Dashboard(first, SourceChoice("recording", path=__file__),
                     lambda choice: FakePipeline(start_error="camera 0 could not be opened"),
                     sync_interval_s=0.01)
    dash.start_session()
    first.store.publish(make_prediction(0.2, 1.0))
    with pytest.raises(RuntimeError, match="camera 0 could not be opened"):
        dash.start_session(SourceChoice("devices"), AGREED)
    assert dash.pipeline is first and first.running and first.stops == 0
    st = dash.status()
    assert st.pipeline.running and st.session_active and st.error is None
    first.store.publish(make_prediction(0.4, 1.0))
    dash.sync()
    assert len(dash.log) == 2  # the session log keeps growing
    dash.close()


def test_a_failed_devices_to_devices_switch_restarts_the_previous_devices():
    first = FakePipeline()
    built: list[FakePipeline] = []

    def factory(choice):
        # the new camera fails; the previous devices (camera 0) open again
        p = FakePipeline(start_error=None if choice.camera == 0 else "camera 1 is busy")
        built.append(p)
        return p

    dash = Dashboard(first, SourceChoice("devices", camera=0), factory, sync_interval_s=0.01)
    dash.start_session(consent=AGREED)
    with pytest.raises(RuntimeError, match="camera 1 is busy"):
        dash.start_session(SourceChoice("devices", camera=1), AGREED)
    assert first.stops == 1  # freed for the second try
    assert dash.pipeline is built[-1] and built[-1].running and dash.session_active
    assert dash.choice == SourceChoice("devices", camera=0)
    dash.close()


def test_a_switch_that_fails_twice_shows_the_error_and_never_reports_running():
    first = FakePipeline()
    dash = Dashboard(first, SourceChoice("devices", camera=0),
                     lambda choice: FakePipeline(start_error="no camera"), sync_interval_s=0.01)
    dash.start_session(consent=AGREED)
    with pytest.raises(RuntimeError, match="no camera"):
        dash.start_session(SourceChoice("devices", camera=1), AGREED)
    st = dash.status()
    assert not st.pipeline.running and not st.session_active
    assert "source switch failed: no camera" in st.error


def test_a_devices_switch_that_works_on_the_second_try_stops_the_old_one_once():
    first = FakePipeline()
    tries = []

    def factory(choice):
        tries.append(choice)
        return FakePipeline(start_error="camera busy" if len(tries) == 1 else None)

    dash = Dashboard(first, SourceChoice("devices", camera=0), factory, sync_interval_s=0.01)
    dash.start_session(consent=AGREED)
    usb = SourceChoice("devices", camera=0, mic="usb")
    assert "Session started" in dash.start_session(usb, AGREED)
    assert first.stops == 1 and len(tries) == 2 and dash.pipeline.running
    assert dash.choice.mic == "usb" and dash.session_active
    dash.close()
