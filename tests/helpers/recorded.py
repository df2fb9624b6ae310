"""A `--fast` replay now against one recorded earlier (a golden JSON-lines file), with what
may differ between machines stated.

The same recording replayed with --fast is deterministic on one machine but not across CPUs:
int8 Whisper, the VAD and features near a threshold can commit a word a hop earlier or later
(an AMD EPYC with AVX-512 committed "the worst" at 22.0 s where the golden file, made on an
Intel Xeon with AVX2, has 21.6 s). `compare_runs` allows exactly that and no more:

- lines: matched by ``t``; at most ``Tolerance.line_slack`` lines of either run unmatched,
  and the last ``t`` within one hop of the recorded one;
- words: the committed transcript (every utterance's final words, in order) equal;
- commit times: each word first appears within ``Tolerance.commit_hops`` hops of its
  recorded time;
- sentiment: within ``Tolerance.sentiment`` at every matched line whose words are equal, and
  such lines at least ``Tolerance.min_compared`` of the recorded ones (so the check is not
  emptied by a run whose words all moved).

Rows are dicts with at least ``t`` (s), ``sentiment`` and ``words`` (the current utterance's
committed words), as `python -m realtime --jsonl` writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from statistics import median


@dataclass(frozen=True)
class Tolerance:
    """What a run on another machine may change. sentiment: on the [-3, 3] scale; the
    cross-CPU runs seen differed by <= 1e-4 where the words were equal."""

    line_slack: int = 2
    commit_hops: int = 2
    sentiment: float = 0.05
    min_compared: float = 0.9


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def hop_s(rows: list[dict]) -> float:
    """The usual step between consecutive lines' ``t``."""
    steps = [b["t"] - a["t"] for a, b in zip(rows, rows[1:], strict=False)]
    return median(steps) if steps else 0.0


def commits(rows: list[dict]) -> list[tuple[str, float]]:
    """The committed transcript, (word, t of the first line showing it), in order. An
    utterance ends where a line's words stop extending the previous line's."""
    out: list[tuple[str, float]] = []
    current: list[str] = []
    for row in rows:
        words = list(row["words"])
        if words[: len(current)] != current:  # a new utterance (or none)
            current = []
        out += [(w, row["t"]) for w in words[len(current):]]
        current = words
    return out


def compare_runs(now: list[dict], recorded: list[dict],
                 tol: Tolerance | None = None) -> list[str]:
    """The differences beyond ``tol`` (default `Tolerance()`), one sentence each; empty when
    the runs agree."""
    tol = tol or Tolerance()
    problems: list[str] = []
    hop = hop_s(recorded)
    by_t = {round(r["t"], 3): r for r in now}
    ref_t = {round(r["t"], 3) for r in recorded}
    unmatched = len(ref_t.symmetric_difference(by_t))
    if unmatched > tol.line_slack:
        problems.append(f"{unmatched} lines unmatched by t (allowed {tol.line_slack}): "
                        f"{len(now)} lines now, {len(recorded)} recorded")
    if not now or abs(now[-1]["t"] - recorded[-1]["t"]) > hop + 1e-6:
        problems.append(f"the last line's t moved: now {now[-1]['t'] if now else None}, "
                        f"recorded {recorded[-1]['t']}")
    got, want = commits(now), commits(recorded)
    if [w for w, _ in got] != [w for w, _ in want]:
        problems.append(f"transcript differs:\n  now      {' '.join(w for w, _ in got)}\n"
                        f"  recorded {' '.join(w for w, _ in want)}")
    else:
        late = [(w, t0, t1) for (w, t1), (_, t0) in zip(got, want, strict=True)
                if abs(t1 - t0) > tol.commit_hops * hop + 1e-6]
        if late:
            problems.append(f"{len(late)} words committed more than {tol.commit_hops} hops "
                            f"from the recorded time (word, recorded t, t now): {late[:5]}")
    same = [(ref, by_t[round(ref["t"], 3)]) for ref in recorded
            if round(ref["t"], 3) in by_t and by_t[round(ref["t"], 3)]["words"] == ref["words"]]
    if len(same) < tol.min_compared * len(recorded):
        problems.append(f"only {len(same)} of {len(recorded)} lines have the recorded words")
    off = [(ref["t"], ref["sentiment"], row["sentiment"]) for ref, row in same
           if abs(row["sentiment"] - ref["sentiment"]) > tol.sentiment]
    if off:
        problems.append(f"{len(off)} lines' sentiment beyond {tol.sentiment} of the recorded "
                        f"one (t, recorded, now): {off[:5]}")
    return problems
