"""realtime.load: a session that falls behind cuts its face and expression rates a step at a
time, says what it cut, and restores them once calm; it never flaps on a single slow tick."""

from __future__ import annotations

import pytest

from realtime.load import LoadConfig, LoadGovernor


def feed(governor: LoadGovernor, t0_s: float, t1_s: float, latency_ms: float | None,
         hop_s: float = 0.2) -> list[tuple[float, int]]:
    """Ticks every hop from t0 to t1 (excluded); returns (time, new step) of each change."""
    changes = []
    n = round((t1_s - t0_s) / hop_s)
    for i in range(n):
        t = round(t0_s + i * hop_s, 6)
        step = governor.observe(t, latency_ms)
        if step is not None:
            changes.append((t, step))
    return changes


def test_overload_cuts_a_step_at_a_time_and_calm_restores_them():
    gov = LoadGovernor({"face": 5.0, "expression": 5.0})
    assert feed(gov, 0.0, 10.0, 80.0) == [] and gov.describe() is None
    assert gov.rates() == {"face": 5.0, "expression": 5.0}
    changes = feed(gov, 10.0, 20.0, 400.0)  # behind: judged after hold_s, then once per hold_s
    assert [s for _, s in changes] == [1, 2]
    assert 10.8 <= changes[0][0] <= 11.2  # once half the last window_s is behind
    assert changes[1][0] - changes[0][0] == pytest.approx(3.0, abs=0.21)
    assert gov.rates() == {"face": 1.25, "expression": 1.25}
    assert gov.describe() == ("face 1.25/s, expression 1.25/s (capture to prediction over "
                              "250 ms)")
    back = feed(gov, 20.0, 40.0, 60.0)  # calm: a step back every calm_s
    assert [s for _, s in back] == [1, 0]
    assert back[1][0] - back[0][0] == pytest.approx(6.0, abs=0.21)
    assert gov.describe() is None and gov.rates() == {"face": 5.0, "expression": 5.0}


def test_a_single_slow_tick_or_a_middling_latency_changes_nothing():
    gov = LoadGovernor({"face": 5.0, "expression": 5.0})
    assert feed(gov, 0.0, 5.0, 80.0) == []
    assert gov.observe(5.0, 2000.0) is None and gov.observe(5.2, None) is None
    assert feed(gov, 5.4, 30.0, 80.0) == [] and gov.step == 0
    gov2 = LoadGovernor({"face": 5.0, "expression": 5.0})
    feed(gov2, 0.0, 10.0, 400.0)
    assert gov2.step == 2
    assert feed(gov2, 10.0, 40.0, 200.0) == [] and gov2.step == 2  # neither behind nor calm


def test_missed_ticks_count_as_behind_and_every_frame_counts_as_ten_a_second():
    gov = LoadGovernor({"face": None, "expression": 5.0})
    assert feed(gov, 0.0, 4.0, None)[0][1] == 1
    assert gov.rates() == {"face": 5.0, "expression": 2.5}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="hold_s >= window_s"):
        LoadConfig(window_s=4.0, hold_s=3.0)
    with pytest.raises(ValueError, match="divisors starting at 1"):
        LoadConfig(divisors=(2.0, 4.0))


def test_at_the_last_step_speech_goes_to_the_cheaper_policy_and_comes_back():
    gov = LoadGovernor({"face": 5.0, "expression": 5.0}, speech=True)
    feed(gov, 0.0, 4.0, 400.0)
    assert gov.step == 1 and gov.asr_policy() is None  # the rates first
    feed(gov, 4.0, 8.0, 400.0)
    assert gov.step == 2 and gov.asr_policy() == "sparse"
    assert gov.describe() == ("face 1.25/s, expression 1.25/s, speech by the sparse policy "
                              "(capture to prediction over 250 ms)")
    feed(gov, 8.0, 16.0, 50.0)
    assert gov.step == 1 and gov.asr_policy() is None
    silent = LoadGovernor({"face": 5.0}, speech=False)  # no speech: nothing to change
    feed(silent, 0.0, 10.0, 400.0)
    assert silent.step == 2 and silent.asr_policy() is None
    assert "speech" not in silent.describe()
