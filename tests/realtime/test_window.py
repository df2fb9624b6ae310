"""The word-aligned window: exact per-word averages on synthetic frames at known times."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.types import FeatureFrames, Word
from realtime.window import WindowConfig, WordWindow

TEXT, AUDIO, VIDEO, FACE = 4, 2, 3, 2  # FACE: the face_present column of the video rows


class CountingEncoder:
    """Test double for the MiniLM featurizer: row i = [len(word), i, 0, 0]."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, words):
        self.calls += 1
        out = np.zeros((len(words), TEXT), np.float32)
        for i, w in enumerate(words):
            out[i, 0], out[i, 1] = len(w.text), i
        return out


def frames(times, values, captured_at_s=None) -> FeatureFrames:
    t = np.asarray(times, np.float64)
    v = np.asarray(values, np.float32).reshape(len(t), -1)
    cap = float(t.max()) if captured_at_s is None else captured_at_s
    return FeatureFrames(t_s=t, values=v, computed_at_s=cap, captured_at_s=cap)


def word(t0, t1, text="hi"):
    return Word(t0, t1, text, committed=True)


def make(**cfg) -> tuple[WordWindow, CountingEncoder]:
    enc = CountingEncoder()
    return WordWindow(enc, TEXT, AUDIO, VIDEO, face_present_index=FACE,
                      config=WindowConfig(**cfg)), enc


def test_per_word_means_are_exact_with_start_inclusive_end_exclusive():
    win, _ = make()
    # audio frames every 0.1 s from 0.0 to 2.0, value = [t*10, 1]
    t = np.round(np.arange(0, 2.01, 0.1), 10)
    win.add_audio(frames(t, np.stack([t * 10, np.ones_like(t)], 1)))
    # face frames at 0.25, 0.5 (word 1) and 1.0 (exactly word 2's start)
    win.add_video(frames([0.25, 0.5, 1.0], [[1, 2, 1], [3, 4, 1], [5, 6, 1]]))
    win.add_words([word(0.0, 1.0, "one"), word(1.0, 1.5, "three")], captured_at_s=1.5)
    w = win.build(1.5)
    assert w is not None and w.steps == 3  # two words + the tail [1.5, 1.5]
    # word 1 = [0, 1): audio frames 0.0..0.9 -> t*10 mean = 4.5; 1.0 belongs to word 2
    np.testing.assert_array_equal(w.audio[0], np.array([4.5, 1.0], np.float32))
    # word 2 = [1.0, 1.5): frames 1.0..1.4 -> mean 12.0
    np.testing.assert_array_equal(w.audio[1], np.array([12.0, 1.0], np.float32))
    np.testing.assert_array_equal(w.video[0], np.array([2, 3, 1], np.float32))
    np.testing.assert_array_equal(w.video[1], np.array([5, 6, 1], np.float32))
    np.testing.assert_array_equal(w.audio[2], np.array([15.0, 1.0], np.float32))
    np.testing.assert_array_equal(w.video[2], np.zeros(VIDEO, np.float32))
    np.testing.assert_array_equal(w.text[:, 0], [3, 5, 0])
    assert [x.text for x in w.words] == ["one", "three"]


def test_tail_step_covers_frames_after_the_last_word_including_t_end():
    win, _ = make()
    win.add_words([word(0.0, 1.0)], captured_at_s=1.2)
    win.add_audio(frames([0.5, 1.0, 1.2, 1.4, 1.6], [[1, 0], [2, 0], [3, 0], [4, 0], [9, 9]]))
    w = win.build(1.4)
    assert w.steps == 2
    np.testing.assert_array_equal(w.audio[0], [1, 0])
    np.testing.assert_array_equal(w.audio[1], [3, 0])  # 1.0, 1.2, 1.4 (1.6 is after t_end)
    np.testing.assert_array_equal(w.text[1], np.zeros(TEXT))
    # no face frames anywhere: zeros and face_present False
    np.testing.assert_array_equal(w.video, np.zeros((2, VIDEO)))
    assert w.face_present is False


def test_tail_is_capped_by_max_tail_s():
    win, _ = make(max_tail_s=1.0)
    win.add_words([word(0.0, 0.5)], captured_at_s=0.5)
    win.add_audio(frames([1.0, 2.0, 3.0], [[10, 0], [20, 0], [30, 0]]))
    w = win.build(3.0)
    np.testing.assert_array_equal(w.audio[-1], [25, 0])  # tail = [2.0, 3.0]


def test_no_speech_yet_gives_the_tail_alone_and_nothing_gives_none():
    win, enc = make()
    assert win.build(1.0) is None
    win.add_video(frames([0.9, 1.0], [[0, 0, 0], [2, 2, 1]]))
    w = win.build(1.0)
    assert w.steps == 1 and w.words == ()
    np.testing.assert_array_equal(w.text, np.zeros((1, TEXT)))
    np.testing.assert_array_equal(w.video[0], [1, 1, 0.5])  # face in one of two frames
    assert w.face_present is True  # the newest frame has a face
    assert enc.calls == 0


def test_missing_face_in_a_word_gives_zeros_and_newest_frame_decides_face_present():
    win, _ = make()
    win.add_words([word(0.0, 1.0), word(1.0, 2.0)], captured_at_s=2.0)
    win.add_video(frames([1.5], [[0, 0, 0]]))  # the extractor's no-face row
    w = win.build(2.0)
    np.testing.assert_array_equal(w.video, np.zeros((2, VIDEO)))
    assert w.face_present is False


def test_silence_keeps_words_until_they_leave_the_span_and_caps_word_count():
    win, enc = make(max_words=3, max_span_s=5.0)
    win.add_words([word(i * 0.5, i * 0.5 + 0.4, f"w{i}") for i in range(5)], captured_at_s=2.5)
    w = win.build(3.0)
    assert [x.text for x in w.words] == ["w2", "w3", "w4"]
    w = win.build(5.5)  # w2 starts at 1.0 >= 0.5: still in; silence adds no tail (no frames)
    assert [x.text for x in w.words] == ["w2", "w3", "w4"] and w.steps == 3
    assert [x.text for x in win.build(7.0).words] == ["w4"]  # starts at 2.0 = 7.0 - 5.0
    assert win.build(7.1) is None  # everything has left the span


def test_text_is_encoded_only_when_the_words_change():
    win, enc = make()
    win.add_words([word(0, 1, "a")], captured_at_s=1)
    win.build(1.0)
    win.add_audio(frames([1.1], [[1, 1]]))
    win.build(1.2)
    assert enc.calls == 1
    win.add_words([word(1.2, 1.4, "b")], captured_at_s=1.4)
    w = win.build(1.4)
    assert enc.calls == 2 and w.text[1, 1] == 1.0  # re-encoded in context


def test_tentative_and_out_of_order_words_are_ignored():
    win, _ = make()
    assert win.add_words([Word(0, 1, "maybe", committed=False)], captured_at_s=1) == 0
    assert win.add_words([word(1, 2, "b")], captured_at_s=2) == 1
    assert win.add_words([word(0.5, 0.9, "late")], captured_at_s=2) == 0


def test_newest_input_is_the_newest_capture_time_in_the_window():
    win, _ = make()
    win.add_audio(frames([0.5], [[1, 1]], captured_at_s=0.55))
    win.add_video(frames([0.6], [[1, 1, 1]], captured_at_s=0.62))
    win.add_audio(frames([5.0], [[1, 1]], captured_at_s=5.05))  # after t_end: not counted
    assert win.build(1.0).newest_input_t_s == pytest.approx(0.62)


def test_memory_is_bounded_under_a_flood():
    win, _ = make(max_span_s=2.0, max_batches=64)
    for i in range(5000):
        t = i * 0.01
        win.add_audio(frames([t], [[t, 0]]))
        if i % 100 == 0:
            win.build(t)
    assert len(win.audio) <= 64
    win.build(51.0)
    t, _, _ = win.audio.arrays()
    assert len(t) == 64 and t[0] >= 49.0  # inside the 2 s span, and capped
    win.build(60.0)
    assert len(win.audio) == 0


def test_wrong_feature_size_is_a_clear_error():
    win, _ = make()
    with pytest.raises(ValueError, match="expected 2 features"):
        win.add_audio(frames([0.1], [[1, 2, 3]]))


def test_a_pause_longer_than_the_utterance_gap_starts_a_new_window():
    win, _ = make(utterance_gap_s=0.6)
    first = [word(0.0, 0.4, "great"), word(0.5, 0.9, "film")]  # 0.1 s apart: one utterance
    second = [word(1.6, 2.0, "awful"), word(2.1, 2.5, "plot")]  # 0.7 s after "film"
    win.add_words(first, captured_at_s=0.9)
    assert [w.text for w in win.build(1.0).words] == ["great", "film"]
    win.add_words(second, captured_at_s=2.5)
    assert [w.text for w in win.build(2.5).words] == ["awful", "plot"]


def test_a_pause_exactly_at_the_gap_keeps_one_utterance_and_none_disables_the_bound():
    words = [word(0.0, 0.4, "a"), word(1.0, 1.4, "b"), word(3.0, 3.4, "c")]
    win, _ = make(utterance_gap_s=0.6)  # 0.6 s pause: same utterance; 1.6 s: a new one
    win.add_words(words, captured_at_s=3.4)
    assert [w.text for w in win.build(3.4).words] == ["c"]
    win, _ = make(utterance_gap_s=1.6)
    win.add_words(words, captured_at_s=3.4)
    assert [w.text for w in win.build(3.4).words] == ["a", "b", "c"]
    win, _ = make(utterance_gap_s=None)
    win.add_words(words, captured_at_s=3.4)
    assert [w.text for w in win.build(3.4).words] == ["a", "b", "c"]


def test_close_utterance_starts_a_new_window_and_repeated_closes_are_one():
    win, _ = make(utterance_gap_s=None)
    win.add_words([word(0.0, 0.4, "loved"), word(0.4, 0.8, "it")], captured_at_s=0.8)
    win.close_utterance()
    win.close_utterance()  # nothing new since the last close: no empty utterance
    assert [w.text for w in win.build(0.9).words] == ["loved", "it"]  # until new words
    win.add_words([word(0.9, 1.2, "plot"), word(1.2, 1.5, "awful")], captured_at_s=1.5)
    assert [w.text for w in win.build(1.5).words] == ["plot", "awful"]
    win.add_words([word(1.5, 1.9, "really")], captured_at_s=1.9)  # no close: same utterance
    assert [w.text for w in win.build(1.9).words] == ["plot", "awful", "really"]
