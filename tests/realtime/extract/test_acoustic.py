"""realtime.extract.acoustic: the feature vector, F0/voicing, streaming == offline, odd inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from realtime.extract import acoustic
from realtime.extract.acoustic import (
    ACOUSTIC_DIM,
    ENERGY_DB_INDEX,
    FEATURE_NAMES,
    PITCH_HZ_INDEX,
    VOICED_INDEX,
    AcousticExtractor,
    extract_features,
)
from realtime.extract.audio_runs import AudioRuns
from realtime.sources.audio import RATE_HZ
from realtime.types import AudioChunk
from tests.helpers import media

RATE = RATE_HZ


def tone(f0_hz: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A harmonic-rich periodic signal (fundamental + 2 harmonics), amplitude ~0.3."""
    t = np.arange(round(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in (1, 2, 3))
    return (0.2 * x).astype(np.float32)


def stream(samples: np.ndarray, rate: int, sizes, t0_s: float = 0.0):
    """Feed 16 kHz samples through AcousticExtractor in chunks of the given sizes (cycled)."""
    ex = AcousticExtractor()
    outs, i, k = [], 0, 0
    while i < len(samples):
        n = sizes[k % len(sizes)]
        piece = samples[i : i + n]
        t = t0_s + i / rate
        ex.insert_audio_chunk(AudioChunk(t, piece, rate, t + len(piece) / rate))
        out = ex.process_iter()
        if out is not None:
            outs.append(out)
        i, k = i + n, k + 1
    last = ex.finish()
    if last is not None:
        outs.append(last)
    return np.concatenate([o.t_s for o in outs]), np.concatenate([o.values for o in outs])


def test_feature_vector_is_defined_once():
    assert ACOUSTIC_DIM == len(FEATURE_NAMES) == 35
    assert len(set(FEATURE_NAMES)) == ACOUSTIC_DIM
    assert FEATURE_NAMES[PITCH_HZ_INDEX] == "f0_hz"
    assert FEATURE_NAMES[ENERGY_DB_INDEX] == "energy_db"
    assert [n for n in FEATURE_NAMES if n.startswith("mfcc_d_")] == [
        f"mfcc_d_{i}" for i in range(13)
    ]


@pytest.mark.parametrize("f0", [90.0, 150.0, 240.0])
def test_f0_of_a_periodic_signal(f0):
    out = extract_features(tone(f0), RATE)
    values = out.values
    assert values.shape == (98, ACOUSTIC_DIM)
    assert values[:, VOICED_INDEX].mean() > 0.95
    assert np.median(values[:, PITCH_HZ_INDEX]) == pytest.approx(f0, rel=0.02)
    assert np.all(np.isfinite(values))


def test_frames_are_25ms_every_10ms_in_session_time():
    out = extract_features(tone(150, 0.5), RATE, t0_s=12.0)
    assert len(out.t_s) == (8000 - 400) // 160 + 1
    assert out.t_s[0] == pytest.approx(12.0125)
    assert np.allclose(np.diff(out.t_s), 0.01)


def test_silence_and_noise_are_unvoiced_and_finite():
    silent = extract_features(np.zeros(RATE, np.float32), RATE).values
    assert np.all(np.isfinite(silent))
    assert np.all(silent[:, ENERGY_DB_INDEX] == -100.0)
    assert np.all(silent[:, PITCH_HZ_INDEX] == 0.0)
    assert np.all(silent[:, VOICED_INDEX] == 0.0)
    noise = np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.1
    values = extract_features(noise, RATE).values
    assert values[:, VOICED_INDEX].mean() < 0.05
    assert -25 < values[:, ENERGY_DB_INDEX].mean() < -15  # 0.1 rms = -20 dBFS
    assert np.all(np.isfinite(values))


def test_espeak_speech_has_plausible_pitch():
    x = media.speech_samples("I really love this movie, it is wonderful.", RATE)
    values = extract_features(x, RATE).values
    voiced = values[:, VOICED_INDEX] > 0
    assert 0.2 < voiced.mean() < 0.95
    assert 60 < np.median(values[voiced, PITCH_HZ_INDEX]) < 250


def test_streaming_equals_offline_for_any_chunking():
    rng = np.random.default_rng(1)
    x = np.concatenate([tone(130, 0.4), rng.standard_normal(5000).astype(np.float32) * 0.05,
                        tone(210, 0.3)])
    whole = extract_features(x, RATE, t0_s=3.0)
    for sizes in ([3200], [1, 159, 161, 4000], [50]):
        t, v = stream(x, RATE, sizes, t0_s=3.0)
        assert np.allclose(t, whole.t_s)
        assert np.abs(v - whole.values).max() < 1e-3


def test_44k1_stereo_is_downmixed_and_resampled():
    mono16 = tone(150, 1.0)
    t44 = np.arange(44100) / 44100
    left = (0.2 * sum(np.sin(2 * np.pi * 150 * k * t44) / k for k in (1, 2, 3)))
    stereo = (np.stack([left, left], 1) * 32767).astype(np.int16)  # int16 PCM, 2 channels
    a = extract_features(mono16, RATE).values
    b = extract_features(stereo, 44100).values
    assert abs(len(a) - len(b)) <= 1
    assert np.median(b[:, PITCH_HZ_INDEX]) == pytest.approx(150, rel=0.02)
    assert np.abs(np.median(a[:, ENERGY_DB_INDEX]) - np.median(b[:, ENERGY_DB_INDEX])) < 0.5


@pytest.mark.parametrize("rate, samples", [
    (44100, np.zeros(441, np.float32)),  # another rate: the source resamples, not us
    (RATE, np.zeros((160, 2), np.float32)),  # stereo: the source downmixes
    (RATE, np.zeros(160, np.int16)),  # integer PCM: the source scales
])
def test_chunks_not_in_the_sources_format_are_refused_not_converted(rate, samples):
    chunk = AudioChunk(0.0, samples, rate, 0.0)
    with pytest.raises(ValueError, match="16000 Hz|1-D mono float32"):
        AcousticExtractor().insert_audio_chunk(chunk)
    with pytest.raises(ValueError, match="16000 Hz|1-D mono float32"):
        AudioRuns().push(chunk)


def test_deltas_match_torchaudio():
    seq = np.random.default_rng(3).standard_normal((17, 13)).astype(np.float32)
    ref = AF.compute_deltas(torch.from_numpy(seq.T.copy()), win_length=5).T.numpy()
    assert np.abs(acoustic.mfcc_deltas(seq) - ref).max() < 1e-5


def test_short_gap_is_zero_filled_and_long_gap_restarts():
    runs = AudioRuns(max_gap_s=1.0)
    a = runs.push(AudioChunk(0.0, np.ones(1600, np.float32), RATE, 0.1))
    b = runs.push(AudioChunk(0.5, np.ones(1600, np.float32), RATE, 0.6))  # 0.4 s gap
    c = runs.push(AudioChunk(5.0, np.ones(1600, np.float32), RATE, 5.1))  # 4.4 s gap
    assert a.restart and not b.restart and c.restart
    assert b.t0_s == pytest.approx(0.1) and len(b.samples) == 6400 + 1600
    assert np.all(b.samples[:6400] == 0) and np.all(b.samples[6400:] == 1)
    assert runs.gap_filled_s == pytest.approx(0.4) and runs.restarts == 1
    assert c.t0_s == 5.0
    d = runs.push(AudioChunk(4.9, np.ones(4800, np.float32), RATE, 5.2))  # overlaps by 0.2 s
    assert len(d.samples) == 1600 and d.t0_s == pytest.approx(5.1)
    assert runs.overlap_dropped_s == pytest.approx(0.2)
    e = runs.push(AudioChunk(5.25, np.ones(160, np.float32), RATE, 5.3))  # 50 ms jitter
    assert len(e.samples) == 160 and e.t0_s == pytest.approx(5.2)


def test_after_end_the_next_chunk_restarts_even_when_the_first_is_empty():
    runs = AudioRuns()
    assert runs.push(AudioChunk(0.0, np.ones(160, np.float32), RATE, 0.0)).restart
    runs.end()
    assert runs.push(AudioChunk(0.01, np.zeros(0, np.float32), RATE, 0.01)) is None
    run = runs.push(AudioChunk(0.01, np.ones(160, np.float32), RATE, 0.02))
    assert run.restart and run.t0_s == pytest.approx(0.01) and runs.restarts == 1


def test_gap_in_stream_keeps_times_right():
    ex = AcousticExtractor()
    ex.insert_audio_chunk(AudioChunk(0.0, tone(150, 0.5), RATE, 0.5))
    ex.insert_audio_chunk(AudioChunk(10.0, tone(150, 0.5), RATE, 10.5))
    out = ex.finish()
    assert np.all(np.diff(out.t_s) > 0)
    assert out.t_s[out.t_s > 5].min() == pytest.approx(10.0125)
    assert len(out.t_s) == 2 * 48


@pytest.mark.parametrize(
    "samples, rate, message",
    [
        (np.zeros(100, np.float32), 0, "sample rate"),
        (np.zeros(100, np.float32), 1000, "sample rate"),
        (np.zeros((2, 3, 100), np.float32), RATE, "1-D mono"),
        (np.array(["a", "b"]), RATE, "float32"),
    ],
)
def test_bad_audio_gets_a_clear_error(samples, rate, message):
    ex = AcousticExtractor()
    with pytest.raises(ValueError, match=message):
        ex.insert_audio_chunk(AudioChunk(0.0, samples, rate, 0.0))
    assert ex.process_iter() is None  # nothing of it was queued


@pytest.mark.parametrize(
    "samples, rate, message",
    [
        (np.zeros(100, np.float32), 0, "sample rate must be positive"),
        (np.zeros((2, 3, 100), np.float32), RATE, r"\(n,\) mono"),
        (np.zeros((100, 12), np.float32), RATE, "at most 8 channels"),
        (np.array(["a", "b"]), RATE, "numeric"),
    ],
)
def test_bad_clips_get_a_clear_error(samples, rate, message):
    with pytest.raises(ValueError, match=message):
        extract_features(samples, rate)


def test_nan_samples_do_not_poison_features():
    x = tone(150, 0.5)
    x[1000:1100] = np.nan
    assert np.all(np.isfinite(extract_features(x, RATE).values))


def test_queue_is_bounded_and_counts_drops():
    ex = AcousticExtractor(max_chunks=4)
    for i in range(10):
        ex.insert_audio_chunk(AudioChunk(i * 0.1, np.zeros(1600, np.float32), RATE, i * 0.1))
    assert ex.drops == 6


def test_computed_at_uses_caller_time_or_capture_time():
    ex = AcousticExtractor()
    ex.insert_audio_chunk(AudioChunk(0.0, tone(150, 0.5), RATE, 0.7))
    assert ex.process_iter().computed_at_s == 0.7
    ex.insert_audio_chunk(AudioChunk(0.5, tone(150, 0.5), RATE, 1.2))
    out = ex.process_iter(now_s=2.0)
    assert out.captured_at_s == 1.2 and 2.0 <= out.computed_at_s < 3.0


def test_a_chunk_at_another_rate_is_refused_with_the_rate_in_the_message():
    ex = acoustic.AcousticExtractor()
    with pytest.raises(ValueError, match="must have sample rate 16000 Hz, got 44100 Hz"):
        ex.insert_audio_chunk(AudioChunk(0.0, tone(150, 0.1, 44100), 44100, 0.1))
