"""tests.helpers.recorded: a run that differs from the recorded one as runs on other CPUs do
passes; a real change of behaviour (a word, a commit many hops later, the sentiment, lines
lost) fails. Checked on the golden demo run by editing a copy."""

from __future__ import annotations

import copy

import pytest

from tests.helpers import REPO
from tests.helpers.recorded import Tolerance, commits, compare_runs, read_rows

GOLDEN = REPO / "tests" / "realtime" / "golden" / "demo_fast.jsonl"


@pytest.fixture(scope="module")
def golden() -> list[dict]:
    return read_rows(GOLDEN)


def edited(rows: list[dict], edit) -> list[dict]:
    out = copy.deepcopy(rows)
    for row in out:
        edit(row)
    return out


def at(t0: float, t1: float):
    return lambda row: t0 - 1e-6 <= row["t"] <= t1 + 1e-6


def test_the_recorded_run_matches_itself(golden):
    assert compare_runs(golden, golden) == []
    assert len(commits(golden)) == 71 and commits(golden)[:2] == [("I", 1.8), ("am", 1.8)]


def test_the_amd_run_of_issue_22_matches(golden):
    """"the worst" committed at 22.0 instead of 21.6 s, the sentiment there that of "This is"."""
    def amd(row):
        if at(21.6, 21.8)(row):
            row["words"], row["sentiment"] = ["This", "is"], 0.6
    assert compare_runs(edited(golden, amd), golden) == []


def test_a_commit_two_hops_away_passes_and_five_fails(golden):
    def later(hops):
        def edit(row):  # "wonderful." first shown at 4.0 s
            if at(4.0, 4.0 + 0.2 * (hops - 1))(row):
                row["words"] = row["words"][:-1]
        return edit
    assert compare_runs(edited(golden, later(2)), golden) == []
    [problem] = compare_runs(edited(golden, later(5)), golden)
    assert "1 words committed more than 2 hops" in problem and "wonderful." in problem
    assert compare_runs(edited(golden, later(5)), golden, Tolerance(commit_hops=5)) == []


def test_a_changed_word_fails(golden):
    def best(row):
        row["words"] = ["best" if w == "worst" else w for w in row["words"]]
    [problem] = compare_runs(edited(golden, best), golden)
    assert "transcript differs" in problem and "the best film" in problem


def test_a_lost_utterance_fails(golden):
    def lost(row):
        if row["words"][:2] == ["The", "story"]:
            row["words"] = []
    problems = compare_runs(edited(golden, lost), golden)
    assert any("transcript differs" in p for p in problems)
    assert any("lines have the recorded words" in p for p in problems)


def test_sentiment_beyond_the_tolerance_fails(golden):
    def off(row, by):
        if at(10.0, 12.0)(row):
            row["sentiment"] += by
    assert compare_runs(edited(golden, lambda r: off(r, 0.04)), golden) == []
    [problem] = compare_runs(edited(golden, lambda r: off(r, 0.3)), golden)
    assert problem.startswith("11 lines' sentiment beyond 0.05")


def test_lost_lines_fail(golden):
    assert compare_runs(golden[:-1], golden) == []  # the end may move by a hop
    assert compare_runs([*golden[:50], *golden[52:]], golden) == []  # two lines
    problems = compare_runs(golden[:-10], golden)
    assert any("10 lines unmatched" in p for p in problems)
    assert any("the last line's t moved" in p for p in problems)
    assert compare_runs([], golden)
