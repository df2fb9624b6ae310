"""benchmarks.viewers' pure parts: the figures from an exported session log (latency
percentiles, gaps, loops of the recording), the profile summary and the arguments. The run
itself (an app and ten browsers for minutes) is a benchmark, not a test."""

from __future__ import annotations

import argparse
import json
import math
import os

import pytest

from benchmarks import viewers


def _row(t_s: float, emitted_s: float, total_ms: float | None) -> dict:
    latency = {} if total_ms is None else {"total": total_ms, "audio_total": 1.0}
    return {"type": "prediction", "t_s": t_s, "emitted_at_s": emitted_s, "latency_ms": latency}


def _export(rows: list[dict]) -> str:
    header = {"type": "session", "rows": len(rows)}
    return "\n".join(json.dumps(r) for r in [header, *rows]) + "\n"


def test_the_log_gives_latency_percentiles_gaps_and_loops():
    # one pipeline emits at 0.2 s steps with a 1.1 s stall, then the recording loops
    # (a new pipeline's clock starts again near 0) and emits 3 more
    emitted = [10.0, 10.2, 10.4, 11.5, 11.7, 0.3, 0.5, 0.75]
    totals = [100.0, 110.0, 120.0, 900.0, 130.0, 140.0, None, 150.0]
    rows = viewers.parse_log(_export([_row(i * 0.25, e, ms) for i, (e, ms)
                                      in enumerate(zip(emitted, totals, strict=True))]))
    assert len(rows) == 8  # the header is no prediction
    f = viewers.log_figures(rows)
    assert f.rows == 8 and f.pipeline_restarts == 1
    assert f.longest_gap_s == pytest.approx(1.1)  # the loop (11.7 -> 0.3) is no gap
    assert f.latency_p50_ms == pytest.approx(130.0)  # of 7 values; the row without one skipped
    assert f.latency_max_ms == 900.0 and 150.0 < f.latency_p95_ms < 900.0
    # 6 gaps over 1.7 + 0.45 s of emitting
    assert f.updates_per_s == pytest.approx(6 / 2.15)
    assert f.as_dict()["longest_gap_s"] == 1.1


def test_rows_after_a_moment_and_an_empty_window():
    rows = [_row(t, t, 100.0) for t in (1.0, 2.0, 3.0)]
    assert [r["t_s"] for r in viewers.rows_after(rows, 1.0)] == [2.0, 3.0]
    empty = viewers.log_figures(viewers.rows_after(rows, 3.0))
    assert empty.rows == 0 and math.isnan(empty.latency_p95_ms)
    assert empty.as_dict()["latency_p95_ms"] is None  # JSON has no NaN


def test_profile_summary_folds_thread_numbers_and_finds_the_watched_functions():
    collapsed = "\n".join([
        "thread (11): Thread-1 (run);Server.run (uvicorn/server.py:86);"
        "_bind_refresh.<locals>.on_tick (layout.py:148);fast_panels (panels.py:90) 6",
        "thread (12): Thread-7 (run);Server.run (uvicorn/server.py:86);"
        "Blocks.postprocess_data (gradio/blocks.py:1) 2",
        "thread (13): pipeline:tick;Pipeline._spawn.<locals>.run (pipeline.py:1);"
        "Pipeline._tick (pipeline.py:2) 2",
        "not a stack line",
    ])
    s = viewers.summarize_profile(collapsed)
    assert s["samples"] == 10
    assert s["threads"]["Thread-N (run)"]["share"] == 0.8
    assert s["threads"]["Thread-N (run)"]["self"] == {"fast_panels (panels.py:90)": 0.6,
                                                      "Blocks.postprocess_data "
                                                      "(gradio/blocks.py:1)": 0.2}
    watched = s["watched"]
    assert watched["_bind_refresh.<locals>.on_tick"] == 0.6 and watched["fast_panels"] == 0.6
    assert watched["postprocess_data"] == 0.2
    assert watched["Pipeline._spawn.<locals>.run"] == 0.2
    assert watched["calibration_panel.<locals>.on_tick"] == 0.0


def test_arguments(tmp_path):
    assert viewers._viewer_list("0, 10") == [0, 10]
    for bad in ("ten", "-1", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            viewers._viewer_list(bad)
    assert viewers.parse_variant("current").root == viewers.REPO
    (tmp_path / "app.py").write_text("")
    v = viewers.parse_variant(f"before={tmp_path}")
    assert (v.name, v.root) == ("before", tmp_path.resolve())
    with pytest.raises(argparse.ArgumentTypeError, match="app.py"):
        viewers.parse_variant(f"x={tmp_path / 'nowhere'}")


def test_process_figures_of_this_process():
    before = viewers.cpu_s(os.getpid())
    sum(i * i for i in range(300_000))
    assert viewers.cpu_s(os.getpid()) >= before
    assert 10 < viewers.rss_mib(os.getpid()) < 100_000
    busy, total = viewers.machine_busy_s()
    assert 0 <= busy <= total
    assert os.getpid() in viewers.descendants(os.getppid())


def test_page_events_are_the_main_pages_timers_and_load_events():
    def comp(i, kind, **props):
        return {"id": i, "type": kind, "props": props}

    config = {
        "components": [comp(0, "form"), comp(1, "state"), comp(2, "slider", value=-1.0),
                       comp(3, "timer", value=0.18), comp(4, "timer", value=0.5),
                       comp(5, "button"), comp(6, "timer", value=1.0)],
        "dependencies": [
            {"id": 0, "targets": [[3, "tick"]], "inputs": [1, 2], "queue": False,
             "trigger_mode": "multiple", "backend_fn": True},
            {"id": 1, "targets": [[4, "tick"]], "inputs": [1], "queue": True,
             "trigger_mode": "once", "backend_fn": True},
            {"id": 2, "targets": [[0, "load"]], "inputs": [1, 2], "queue": True,
             "trigger_mode": "once", "backend_fn": True},
            {"id": 3, "targets": [[5, "click"]], "inputs": [], "queue": True,
             "backend_fn": True},
            {"id": 4, "targets": [[6, "tick"]], "inputs": [], "queue": True,
             "backend_fn": True},  # the operator page's timer
        ],
        "page": {"": {"dependencies": [0, 1, 2, 3]}, "operator": {"dependencies": [4]}},
    }
    events = {e.fn_index: e for e in viewers.page_events(config)}
    assert sorted(events) == [0, 1, 2]
    assert events[0] == viewers.PageEvent(0, 3, (None, -1.0), False, 0.18, True)
    assert events[1].queue and events[1].every_s == 0.5 and not events[1].multiple
    assert events[2].every_s is None and events[2].data == (None, -1.0)
