"""The dashboard's formatting and pictures: sentiment text and colour, the timeline SVG,
the masks heatmaps."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
from PIL import Image

from realtime.dashboard.html import (
    LEFT,
    RIGHT,
    W,
    _path,
    latency_percentiles,
    mask_png,
    mask_scale,
    masks_html,
    sentiment_rgb,
    sentiment_text,
    stage_label,
    timeline_svg,
    transcript_html,
)
from realtime.dashboard.session_log import SessionLog
from tests.helpers.fakes import make_prediction


def test_sentiment_text_has_sign_and_two_decimals():
    assert sentiment_text(1.234) == "+1.23"
    assert sentiment_text(-0.4) == "-0.40"
    assert sentiment_text(-0.001) == "+0.00"
    assert sentiment_text(float("nan")) == "\u2014"


def test_sentiment_colour_runs_red_grey_green():
    red, grey, green = sentiment_rgb(-3), sentiment_rgb(0), sentiment_rgb(3)
    assert red[0] > 200 and red[1] < 100
    assert green[1] > 180 and green[0] < 60
    assert max(grey) - min(grey) < 40  # grey: channels close together
    assert sentiment_rgb(-9) == red and sentiment_rgb(9) == green
    mid = sentiment_rgb(1.5)
    assert grey[1] < mid[1] < green[1] or green[1] < mid[1] < grey[1]


def test_latency_percentiles_put_total_first_and_skip_nan():
    rows = [{"asr": 10.0, "total": 100.0}, {"total": 300.0, "asr": float("nan")},
            {"total": 200.0, "asr": 30.0}]
    pct = latency_percentiles(rows)
    assert list(pct)[0] == "total"
    assert pct["total"][0] == pytest.approx(200.0)
    assert pct["asr"][0] == pytest.approx(20.0)
    assert stage_label("audio_capture_to_features") == "audio capture \u2192 features"


def _xs(svg: str, cls: str) -> list[float]:
    d = re.search(rf'class="{cls}" d="([^"]*)"', svg)[1]
    return [float(x) for x in re.findall(r"[ML]([\d.]+),", d)]


def test_timeline_fills_the_width_for_a_young_session_and_scrolls_later():
    log = SessionLog()
    for i in range(100):  # 20 s
        log.append(make_prediction(0.2 * (i + 1), math.sin(i / 8)))
    svg = timeline_svg(log.rows(), span_s=120.0)
    xs = _xs(svg, "sx-line")
    assert xs[0] == pytest.approx(W - RIGHT - (W - RIGHT - LEFT) * 19.8 / 30.0, abs=1.0)
    assert xs[-1] == pytest.approx(W - RIGHT, abs=0.5)
    for i in range(100, 1000):  # 200 s: only the last 120 s are drawn
        log.append(make_prediction(0.2 * (i + 1), 0.5))
    xs = _xs(timeline_svg(log.rows(), span_s=120.0), "sx-line")
    assert len(xs) == pytest.approx(600, abs=2)
    assert min(xs) >= LEFT - 0.5


def test_path_breaks_at_missing_values():
    d = _path([(0, 1.0), (1, math.nan), (2, 3.0), (3, 4.0)])
    assert d == "M0.0,1.0M2.0,3.0L3.0,4.0"


def test_masks_share_one_stretched_scale():
    masks = {"text": np.full((4, 384), 0.45, np.float32),
             "audio": np.full((4, 35), 0.55, np.float32)}
    assert mask_scale(masks) == pytest.approx((0.45, 0.55))
    assert mask_scale({"video": np.full((2, 3), 0.5, np.float32)}) == (0.0, 1.0)
    dark = np.asarray(Image.open(io.BytesIO(mask_png(masks["text"], 0.45, 0.55))))
    bright = np.asarray(Image.open(io.BytesIO(mask_png(masks["audio"], 0.45, 0.55))))
    assert dark.shape == (32, 4, 3) and bright.shape == (32, 4, 3)  # bins x steps
    assert bright.mean() > dark.mean() + 100
    html = masks_html(masks, 3.0)
    assert ">0.45<" in html and ">0.55<" in html and "4 steps" in html
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        mask_png(np.zeros((0, 3), np.float32))


def test_transcript_escapes_and_caps_tentative_words():
    html = transcript_html(["I", "<b>love</b>"], ["what", "of", "the"] * 10)
    assert "&lt;b&gt;love&lt;/b&gt;" in html and "<b>love" not in html
    assert html.count('class="sx-tentative">') == 12 + 1  # 12 words + the legend
    assert "listening" in transcript_html([], [])


def test_the_operator_table_says_which_sessions_run_degraded_and_never_a_reading():
    from realtime.dashboard.html import health_table
    from realtime.serving.sessions import SessionHealth

    rows = [SessionHealth("a1", "browser", 12.0, 4.9, 120.0, 0, None, True),
            SessionHealth("b2", "file", 30.0, 2.1, 420.0, 3, None, True,
                          degraded="face and expression at a quarter rate, sparse ASR"),
            SessionHealth("c3", "file", 5.0, 0.0, None, 0, "the file ended early", False)]
    html = health_table(rows)
    assert html.count("<tr data-session=") == 3 and 'data-sessions="3"' in html
    assert "<td>running</td>" in html and "<td>stopped</td>" in html
    assert "degraded: face and expression at a quarter rate, sparse ASR" in html
    assert "sentiment" not in html.lower()
