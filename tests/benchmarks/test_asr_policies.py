"""benchmarks.asr_policies: the simulated clock counts each pass's compute, and the options
are checked."""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks.asr_policies import parse_args, simulate
from realtime.extract.asr import ASR_POLICIES
from realtime.extract.whisper_batch import RecognizedSegment, RecognizedWord
from tests.helpers import media


class SlowScript:
    """Says "hello" for whatever it hears, after ``cost_s`` of compute."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s

    def transcribe(self, audio, *, prompt, beam_size, min_window_s, min_tail_s):
        time.sleep(self.cost_s)
        end = len(audio) / 16000
        return [RecognizedSegment((RecognizedWord(0.1, min(0.5, end), " hello", 0.9),),
                                  no_speech_prob=0.0, avg_logprob=-0.1)]


def test_each_pass_s_compute_delays_the_commits():
    speech = media.speech_samples("hello there, how are you today my friend", 16000)
    audio = np.concatenate([speech, np.zeros(16000, np.float32)])
    fast = simulate(SlowScript(0.0), ASR_POLICIES["pause"], audio, "hello")
    slow = simulate(SlowScript(0.3), ASR_POLICIES["pause"], audio, "hello")
    assert fast["words"] == slow["words"] and fast["words"].startswith("hello")
    assert slow["passes"] == fast["passes"] >= 1
    # the commit waits for the passes before it: at least one 0.3 s pass more
    assert slow["commit_s_p50"] >= fast["commit_s_p50"] + 0.29


def test_unknown_policy_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["--policies", "pause,fastest"])
    assert info.value.code == 2 and "unknown ASR policy 'fastest'" in capsys.readouterr().err
