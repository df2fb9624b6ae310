"""Word error rate against a known script (tests, the latency benchmark, the spoken-MOSI
replay)."""

from __future__ import annotations

import re


def normalize_words(text: str) -> list[str]:
    """Lower-case words with punctuation removed ("Don't stop!" -> ["dont", "stop"])."""
    text = re.sub(r"['\u2019]", "", text.lower())
    return re.sub(r"[\W_]+", " ", text).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / words in the reference.

    Words are compared after `normalize_words`. An empty reference gives 0.0 for an empty
    hypothesis and otherwise the number of inserted words (as if the reference had one word).
    """
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    previous = list(range(len(hyp) + 1))  # distance from ref[:0] to hyp[:j]
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution / match
            )
        previous = current
    return previous[-1] / max(len(ref), 1)
