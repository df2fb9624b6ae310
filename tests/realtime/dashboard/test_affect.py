"""The face valence, expression and voice arousal in the session log (stress share, alerts,
CSV / JSONL columns) and in the dashboard's HTML (the expression panel, the affect
aggregates)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace

import pytest

from models.expression import EXPRESSIONS
from realtime.dashboard.html import affect_aggregates_html, expression_html
from realtime.dashboard.session_log import STRESS_AROUSAL, SessionLog
from realtime.extract.arousal import LABEL as AROUSAL_LABEL
from tests.helpers.fakes import make_prediction

HAPPY = (0.01, 0.0, 0.01, 0.9, 0.03, 0.02, 0.03)
NAN = float("nan")


def affect(t_s: float, sentiment: float, valence: float = NAN, arousal: float = NAN,
           expression=None, model: float | None = None):
    return replace(make_prediction(t_s, sentiment), face_valence=valence,
                   voice_arousal=arousal, expression=expression,
                   model_sentiment=sentiment if model is None else model,
                   arousal_warming_up=not math.isfinite(arousal))


def fill(log: SessionLog, rows, t0_s: float = 0.0, hop_s: float = 0.2) -> None:
    for i, (sentiment, valence, arousal) in enumerate(rows):
        log.append(affect(t0_s + i * hop_s, sentiment, valence, arousal))


def test_stress_share_counts_high_arousal_with_negative_sentiment_only():
    log = SessionLog()
    # 10 s each (hop 0.2 s): calm negative, stressed, aroused but positive, stressed again
    fill(log, [(-1.0, NAN, 0.0)] * 50 + [(-1.0, NAN, STRESS_AROUSAL + 0.5)] * 50
         + [(1.0, NAN, 2.5)] * 50 + [(-0.5, NAN, STRESS_AROUSAL)] * 50)
    agg = log.aggregates()
    assert agg.stress_share == pytest.approx(0.5, abs=0.01)  # 20 s of 40
    assert agg.negative_share == pytest.approx(0.75, abs=0.01)
    empty = SessionLog().aggregates()
    assert math.isnan(empty.stress_share)


def test_face_valence_and_arousal_means_skip_frames_without_them():
    log = SessionLog()
    fill(log, [(0.0, 0.5, NAN), (0.0, NAN, NAN), (0.0, -0.1, 2.0), (0.0, NAN, 1.0)])
    agg = log.aggregates()
    assert agg.valence_1min == pytest.approx(0.2)
    assert agg.arousal_1min == pytest.approx(1.5)
    rows = log.rows()
    assert math.isnan(rows[0].arousal_1min) and rows[1].valence_1min == pytest.approx(0.5)


def test_alerts_on_face_valence_below_and_arousal_above_their_thresholds():
    log = SessionLog()
    fill(log, [(0.0, 0.4, 0.0)] * 50)  # 10 s happy and calm
    assert not log.alert(-0.3, hold_s=5.0, field="valence_1min").active
    assert not log.alert(1.0, hold_s=5.0, field="arousal_1min", above=True).active
    fill(log, [(0.0, -1.0, 3.0)] * 300, t0_s=10.0)  # 60 s sad and aroused
    valence = log.alert(-0.3, hold_s=5.0, field="valence_1min")
    assert valence.active and valence.below_for_s >= 5.0 and valence.mean_1min < -0.3
    arousal = log.alert(1.0, hold_s=5.0, field="arousal_1min", above=True)
    assert arousal.active and arousal.mean_1min > 1.0
    assert not log.alert(1.0, hold_s=5.0, field="arousal_1min").active  # "below" is not met
    with pytest.raises(ValueError, match="alert field must be one of"):
        log.alert(0.0, field="smile")


def test_csv_and_jsonl_carry_the_expression_valence_and_arousal():
    log = SessionLog()
    log.append(affect(0.2, 0.8, valence=0.86, arousal=1.25, expression=HAPPY, model=0.5))
    log.append(affect(0.4, -0.2))  # no face, arousal warming up
    table = list(csv.DictReader(io.StringIO(log.to_csv())))
    for column in ("model_sentiment", "face_valence", "valence_1min", "voice_arousal",
                   "arousal_1min", *(f"expression_{e}" for e in EXPRESSIONS)):
        assert column in table[0], column
    first, second = table
    assert float(first["model_sentiment"]) == 0.5 and float(first["sentiment"]) == 0.8
    assert float(first["face_valence"]) == pytest.approx(0.86)
    assert float(first["voice_arousal"]) == 1.25
    assert [float(first[f"expression_{e}"]) for e in EXPRESSIONS] == pytest.approx(HAPPY)
    assert second["expression_happy"] == "" and second["face_valence"] in ("", "nan")
    lines = [json.loads(line) for line in log.to_jsonl().splitlines()]
    head, row, empty = lines
    assert "heuristic, not validated" in head["units"]["voice_arousal"]
    assert head["units"]["expression"].endswith(", ".join(EXPRESSIONS))
    assert row["expression"] == pytest.approx(list(HAPPY))
    assert row["face_valence"] == pytest.approx(0.86) and row["voice_arousal"] == 1.25
    assert empty["expression"] is None and empty["face_valence"] is None


def test_expression_panel_shows_bars_the_dominant_class_and_contributions():
    html = expression_html(HAPPY, model_sentiment=0.5, face_valence=0.83, face_weight=1.5,
                           voice_arousal=-0.42, arousal_warming_up=False)
    assert 'data-expression-dominant="happy"' in html
    for name in EXPRESSIONS:
        assert name in html
    assert "+0.50" in html and "+0.83" in html and "weight 1.5" in html
    assert AROUSAL_LABEL in html and "-0.42" in html
    assert html.count('class="sx-meter"') == len(EXPRESSIONS)
    assert 'style="width:90%"' in html  # the happy bar, 0.9

    none = expression_html(None, model_sentiment=-1.0, face_valence=NAN, face_weight=0.0,
                           voice_arousal=NAN, arousal_warming_up=True)
    assert 'data-expression-dominant="none"' in none and "no face" in none
    assert "warming up" in none and "-1.00" in none


def test_affect_aggregates_show_means_stress_share_and_one_banner_per_alert():
    html = affect_aggregates_html(-0.4, 1.2, 0.25, [("valence", True, "face valence low"),
                                                    ("arousal", False, "arousal high")])
    assert "-0.40" in html and "+1.20" in html
    assert 'data-stress-share="25%"' in html
    assert 'data-alert-valence="on">\u26a0 face valence low</div>' in html
    assert 'data-alert-arousal="off">arousal high</div>' in html
    assert AROUSAL_LABEL in html
    blank = affect_aggregates_html(NAN, NAN, NAN, [])
    assert 'data-stress-share="\u2014"' in blank and "data-alert" not in blank
