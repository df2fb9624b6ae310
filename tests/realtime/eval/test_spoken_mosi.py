"""Spoken MOSI: the file format, the segment reader, voices, oracle timing, one real build."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from models.data.base import DataError
from models.data.spoken import (
    SpokenMeta,
    SpokenSplit,
    file_name,
    read_segments,
    read_split,
    to_split,
    train_valid_bundle,
    write_split,
)
from realtime.eval.spoken_mosi import (
    TEST_VOICE,
    TRAIN_VOICES,
    VALID_VOICES,
    Voice,
    oracle_words,
    voiced_span,
)
from realtime.types import FeatureFrames


def _split(split: str, n: int, voice: str = "en-gb", seed: int = 0) -> SpokenSplit:
    rng = np.random.default_rng(seed)
    steps = [int(k) for k in rng.integers(1, 6, n)]
    meta = SpokenMeta(split, voice, 150, "oracle", "", ("energy_db", "f0_hz"),
                      ("smile", "face_present"))
    return SpokenSplit(
        meta, tuple(f"vid_{i}" for i in range(n)), rng.uniform(-3, 3, n).astype(np.float32),
        tuple("a b" for _ in range(n)),
        tuple(rng.normal(size=(t, 4)).astype(np.float32) for t in steps),
        tuple(rng.normal(size=(t, 2)).astype(np.float32) for t in steps),
        tuple(np.zeros((t, 2), np.float32) for t in steps))


def test_write_read_roundtrip(tmp_path):
    data = _split("train", 7)
    path = write_split(tmp_path / file_name("train", "en-gb", 150, "oracle"), data)
    back = read_split(path)
    assert back.meta == data.meta and back.ids == data.ids and back.words == data.words
    np.testing.assert_array_equal(back.labels, data.labels)
    for a, b in zip(back.text + back.audio, data.text + data.audio, strict=True):
        np.testing.assert_array_equal(a, b)
    split = to_split([back, _split("train", 3, seed=1)])
    assert split.text.shape == (10, 5, 4) and split.audio.shape[2] == 2
    assert split.lengths.tolist()[:7] == [len(t) for t in data.text]


def test_bundle_prefers_asr_validation_and_needs_train(tmp_path):
    with pytest.raises(DataError, match="no spoken-MOSI train files"):
        train_valid_bundle(tmp_path)
    write_split(tmp_path / file_name("train", "en-gb", 150, "oracle"), _split("train", 5))
    write_split(tmp_path / file_name("valid", "en-gb", 150, "oracle"), _split("valid", 4))
    write_split(tmp_path / file_name("valid", "en-gb", 150, "asr"), _split("valid", 3))
    bundle, files = train_valid_bundle(tmp_path)
    assert len(bundle.train) == 5 and len(bundle.valid) == 3 and len(bundle.test) == 0
    assert [f.name for f in files["valid"]] == ["valid__en-gb-150__asr.npz"]


def test_corrupt_file_gets_a_clear_error(tmp_path):
    bad = tmp_path / "train__x-150__asr.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid spoken-MOSI file"):
        read_split(bad)
    with pytest.raises(DataError, match="not found"):
        read_split(tmp_path / "missing.npz")
    with pytest.raises(DataError, match="empty"):
        write_split(tmp_path / "e.npz", SpokenSplit(_split("train", 1).meta, (), np.zeros(0),
                                                    (), (), (), ()))


def test_voice_parse_and_held_out_test_voice():
    assert Voice.parse("en-us+m3@160") == Voice("en-us+m3", 160)
    for bad in ("en-us", "en-us@fast", "@150", "en-us@20"):
        with pytest.raises(ValueError, match="NAME@RATE"):
            Voice.parse(bad)
    assert TEST_VOICE not in TRAIN_VOICES + VALID_VOICES
    assert Voice("en-gb+m3", 150).tag == "en-gb_m3-150"


def _frames(loud_from_s: float, loud_to_s: float, end_s: float = 3.0) -> FeatureFrames:
    from realtime.extract.acoustic import ACOUSTIC_DIM, ENERGY_DB_INDEX

    t = np.arange(0.0125, end_s, 0.01)
    values = np.zeros((len(t), ACOUSTIC_DIM), np.float32)
    values[:, ENERGY_DB_INDEX] = np.where((t >= loud_from_s) & (t <= loud_to_s), -20.0, -90.0)
    return FeatureFrames(t, values, 0.0, 0.0)


def test_oracle_words_cover_the_voiced_span_in_order():
    frames = _frames(0.5, 2.5)
    t0, t1 = voiced_span(frames)
    assert abs(t0 - 0.5) < 0.011 and abs(t1 - 2.5) < 0.011
    words = oracle_words("I LOVED IT", frames)
    assert [w.text for w in words] == ["i", "loved", "it"]
    assert all(w.committed for w in words)
    assert abs(words[0].t0_s - t0) < 1e-9 and abs(words[-1].t1_s - t1) < 1e-9
    assert all(a.t1_s == pytest.approx(b.t0_s) for a, b in zip(words, words[1:], strict=False))
    # "loved" (5 letters) gets more time than "it" (2 letters)
    assert words[1].t1_s - words[1].t0_s > words[2].t1_s - words[2].t0_s
    assert oracle_words("", frames) == []


def test_read_segments_standard_split(mosi_dir):
    segments = read_segments(mosi_dir)
    counts = {s: sum(x.split == s for x in segments) for s in ("train", "valid", "test")}
    assert counts == {"train": 1284, "valid": 229, "test": 686}
    assert all(-3 <= s.label <= 3 and s.transcript for s in segments)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_build_two_segments_through_live_extractors(mosi_dir, tmp_path):
    from realtime.eval.spoken_mosi import build
    from realtime.extract.acoustic import ACOUSTIC_DIM
    from realtime.extract.face import FACE_DIM, FACE_PRESENT_INDEX
    from realtime.extract.text import TEXT_DIM

    path = build("valid", Voice("en-gb", 150), "oracle", mosi_dir, limit=2, root=tmp_path,
                 log=lambda _: None)
    data = read_split(path)
    assert len(data) == 2 and data.dims.as_tuple() == (TEXT_DIM, ACOUSTIC_DIM, FACE_DIM)
    for text, audio, video, words in zip(data.text, data.audio, data.video, data.words,
                                         strict=True):
        n_words = len(words.split())
        assert n_words >= 1 and len(text) in (n_words, n_words + 1)  # + the open tail step
        assert np.abs(text[:n_words]).sum(axis=1).min() > 0  # every word step has a vector
        assert np.abs(audio).sum() > 0  # the voice was heard
        assert not video.any() and not video[:, FACE_PRESENT_INDEX].any()  # no face
