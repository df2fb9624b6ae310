"""Whole sessions for the many-streams benchmarks: ``benchmarks.streams --live`` replays the
bundled recording through real sessions and reports sane figures, and
``benchmarks.sessions_churn`` opens and stops sessions and leaves no thread behind. (The
figures come from running the benchmarks; these check the bookkeeping on a short run.)"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest

from benchmarks.live_sessions import UpdateCounter
from benchmarks.memory import heap_mib
from benchmarks.streams import main, positive_ints
from realtime.assets import demo_recording


class _Prediction:
    def __init__(self, at_s: float) -> None:
        self.emitted_at_s = at_s


def test_the_update_rate_is_counted_between_the_first_and_the_last_prediction():
    counter = UpdateCounter()
    assert counter.rate_hz() == 0.0
    for i in range(11):
        counter(_Prediction(3.0 + 0.2 * i))
    assert counter.n == 11 and counter.rate_hz() == pytest.approx(5.0)


def test_live_counts_are_checked():
    assert positive_ints("4, 1,2,2", "--live") == [1, 2, 4]
    with pytest.raises(ValueError, match="--live must be positive integers, got '0'"):
        positive_ints("0", "--live")


def test_live_refuses_other_backends(capsys):
    assert main(["--live", "1", "--backend", "ray"]) == 2
    assert "--live runs whole sessions in this process" in capsys.readouterr().err


def test_heap_figures_are_glibc_megabytes():
    heap = heap_mib()
    if heap is None:
        pytest.skip("not glibc")
    assert set(heap) == {"in_use", "free", "mmapped"}
    assert 1.0 < heap["in_use"] < 100_000 and heap["free"] >= 0 and heap["mmapped"] >= 0


def test_one_live_session_for_four_seconds_reports_sane_figures(tmp_path: Path, capsys):
    out = tmp_path / "live.json"
    assert main(["--live", "1", "--seconds", "4", "--no-stage-cpu", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["source"] == str(demo_recording()) and summary["hop_s"] == 0.2
    assert summary["stage_cpu_s_per_media_s_one_thread"] is None  # --no-stage-cpu
    run = summary["runs"]["1"]
    assert run["sessions"] == 1 and len(run["per_session"]) == 1
    session = run["per_session"][0]
    assert 3.0 <= session["media_s"] <= 5.0  # paced: about the 4 s asked for
    assert 0 < run["updates_per_s"]["min"] <= 5.5  # never above the 5 Hz hop (+ rounding)
    assert session["predictions"] >= 5
    lat = run["latency_ms_total"]
    assert lat["n"] == session["predictions"] and 0 <= lat["p50"] <= lat["p95"] <= lat["p99"]
    assert {"asr", "face", "acoustic", "window+model"} <= set(run["stage_wall_s_per_media_s"])
    assert all(0 <= v < 5 for v in run["stage_wall_s_per_media_s"].values())
    assert {"video_skipped", "asr_queue", "face_input"} <= set(run["drops"])
    assert run["drops_total_items"] == sum(v for k, v in run["drops"].items()
                                           if k != "asr_audio_lost_ms")
    assert 0 < run["process_cpu_s_per_media_s"] < 10
    # 16 kHz float32 audio (64,000 B/s) plus the RGB frames delivered: at most 10 a second
    # (DEFAULT_MAX_FPS), at most 640 wide (the file source's max_width)
    width, height = _frame_size(demo_recording())
    frames_per_s = (session["bytes_per_media_s"] - 64_000) / (height * width * 3)
    assert 5 <= frames_per_s <= 10.5, session["bytes_per_media_s"]
    assert run["bytes_per_media_s"] == session["bytes_per_media_s"]
    assert 100 < run["peak_rss_mib"] < 100_000
    assert run["executor"]["model"]["windows"] == session["predictions"]
    assert run["threads_joined"] is True and session["error"] is None
    assert summary["max_live_sessions"] in (0, 1)
    assert run["keeps_up"] == session["keeps_up"]
    assert '"max_live_sessions"' in capsys.readouterr().out


def _frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of the frames a file source delivers from ``path``."""
    import cv2

    from realtime.sources.image import fit_width

    cap = cv2.VideoCapture(str(path))
    try:
        size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    return fit_width(*size, 640)


def test_sessions_come_and_go_and_leave_no_thread_behind(tmp_path: Path):
    from benchmarks.sessions_churn import ChurnConfig, churn, plot, runtime_config
    from realtime.runtime import Runtime

    threads_before = threading.active_count()
    config = ChurnConfig(demo_recording(), seconds=8.0, max_sessions=2, lifetime_s=(1.0, 3.0),
                         seed=1, rss_every_s=1.0, warmup_s=2.0)
    with Runtime.open(runtime_config(config)) as runtime:
        result = churn(runtime, config)
        with pytest.raises(ValueError, match="runtime_config"):
            churn(runtime, ChurnConfig(demo_recording(), seconds=1.0, max_sessions=3))
    assert result["opened"] >= 3 and result["closed"] == result["opened"]
    assert result["not_joined"] == 0 and result["errors"] == []
    assert max(n for _, n in result["sessions_timeline"]) <= 2
    assert result["sessions_timeline"][-1][1] == 0
    # every session thread and the sampler's joined; the executors' once the runtime closed
    assert result["after_last_session"]["session_threads_left"] == []
    assert result["after_last_session"]["threads"] <= result["before_first_session"]["threads"] + 1
    assert threading.active_count() <= threads_before + 1  # + a one-off tqdm monitor
    assert len(result["rss_mib"]["samples"]) >= 6
    assert result["after_warmup_mib"] > 100 and math.isfinite(result["growth_pct"])
    plot(result, tmp_path / "churn.png")
    assert (tmp_path / "churn.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="shortest lifetime"):
        ChurnConfig(demo_recording(), seconds=1.0, lifetime_s=(3.0, 1.0))
