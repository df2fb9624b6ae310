"""realtime.extract.arousal: voice arousal (heuristic, not validated) against the session
baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.extract.arousal import LABEL, VoiceArousal
from realtime.types import FeatureFrames, Word

HOP_S = 0.2


def speech(t0_s: float, seconds: float, pitch_hz: float, energy_db: float, rng,
           spread_hz: float = 10.0) -> FeatureFrames:
    """10 ms frames [energy_db, pitch_hz] with a little jitter."""
    t = t0_s + 0.01 * np.arange(int(seconds * 100))
    pitch = pitch_hz + spread_hz * rng.standard_normal(len(t))
    energy = energy_db + rng.standard_normal(len(t))
    return FeatureFrames(t, np.stack([energy, pitch], 1).astype(np.float32), 0.0, 0.0)


def run(tracker: VoiceArousal, t0_s: float, seconds: float, words_per_s: float, **voice):
    rng = np.random.default_rng(int(t0_s))
    readings = []
    for k in range(int(seconds / HOP_S)):
        start = t0_s + k * HOP_S
        tracker.insert_frames(speech(start, HOP_S, rng=rng, **voice))
        n = int(round(words_per_s * HOP_S * (k + 1))) - int(round(words_per_s * HOP_S * k))
        tracker.insert_words([Word(start, start + HOP_S * (i + 1) / max(n, 1), "w", True)
                              for i in range(n)])
        readings.append(tracker.update(start + HOP_S))
    return readings


def test_calm_baseline_then_loud_fast_high_voice_reads_high_arousal():
    tracker = VoiceArousal(pitch_hz_index=1, energy_db_index=0, warmup_readings=25)
    calm = run(tracker, 0.0, 20.0, 2.0, pitch_hz=120, energy_db=-30)
    assert all(r.warming_up and math.isnan(r.value) for r in calm[:24])
    settled = [r.value for r in calm[40:]]
    assert not any(r.warming_up for r in calm[40:])
    assert abs(np.mean(settled)) < 0.6  # the speaker's own baseline reads about 0
    excited = run(tracker, 20.0, 3.0, 4.0, pitch_hz=190, energy_db=-18, spread_hz=40)
    assert excited[-1].value > 1.5  # louder, higher, wider, faster: well above baseline
    quiet = run(tracker, 23.0, 4.0, 1.0, pitch_hz=100, energy_db=-42)
    assert quiet[-1].value < -0.5


def test_silence_gives_nan_and_leaves_the_baseline_alone():
    tracker = VoiceArousal(pitch_hz_index=1, energy_db_index=0, warmup_readings=5)
    run(tracker, 0.0, 2.0, 2.0, pitch_hz=120, energy_db=-30)
    before = tracker.update(2.0).readings
    silent = FeatureFrames(2.0 + 0.01 * np.arange(400), np.zeros((400, 2), np.float32), 0, 0)
    tracker.insert_frames(silent)
    r = tracker.update(6.0)
    assert math.isnan(r.value) and r.readings == before


def test_the_label_says_it_is_a_heuristic_and_bad_settings_are_refused():
    assert LABEL == "voice arousal (heuristic, not validated)"
    with pytest.raises(ValueError, match="warmup_readings"):
        VoiceArousal(0, 1, warmup_readings=1)
