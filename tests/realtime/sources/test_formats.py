"""realtime.sources.audio / .image: the one conversion of any PCM and any picture into the
pipeline's formats (16 kHz mono float32 in [-1, 1]; RGB uint8), done at the source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from realtime.clock import ReplayClock
from realtime.sources import BrowserSource
from realtime.sources.audio import (
    RATE_HZ,
    Resampler16k,
    check_chunk,
    pcm_to_float,
    resample_clip,
    to_float_mono,
)
from realtime.sources.image import downscale, fit_width, to_rgb_uint8
from realtime.types import AudioChunk


@pytest.mark.parametrize("orig", [44100, 48000, 22050, 8000])
def test_resampled_stream_keeps_time_and_matches_whole_signal(orig):
    x = np.zeros(orig, np.float32)
    x[orig // 10] = 1.0  # an impulse at 0.1 s
    x += np.sin(2 * np.pi * 440 * np.arange(orig) / orig).astype(np.float32) * 0.1
    x = np.clip(x, -1.0, 1.0)
    resampler = Resampler16k(orig)
    y = np.concatenate([resampler(x[i : i + 777]) for i in range(0, orig, 777)]
                       + [resampler.flush()])
    assert len(y) == RATE_HZ and y.dtype == np.float32
    ref = AF.resample(torch.from_numpy(x), orig, RATE_HZ).numpy()
    assert np.argmax(np.abs(y - np.sin(2 * np.pi * 440 * np.arange(RATE_HZ) / RATE_HZ) * 0.1)) \
        == pytest.approx(RATE_HZ // 10, abs=1)
    assert np.abs(y[100:-100] - ref[100:-100]).max() < 0.05
    assert np.abs(resample_clip(x, orig) - y).max() < 1e-5  # the clip helper: the same


def test_pcm_to_float_is_the_one_integer_scaling():
    ints = np.array([-32768, -16384, 0, 16384, 32767], np.int16)
    assert pcm_to_float(ints).tolist() == [-1.0, -0.5, 0.0, 0.5, 32767 / 32768]
    assert pcm_to_float(np.array([-(2**31), 2**30], np.int32)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    floats = pcm_to_float(np.array([0.25, -2.0], np.float64))
    assert floats.dtype == np.float32 and floats.tolist() == [0.25, -2.0]  # no rescaling
    with pytest.raises(ValueError, match="numeric"):
        pcm_to_float(np.array(["a", "b"]))


def test_to_float_mono_averages_channels_and_keeps_the_range():
    stereo = np.array([[16384, 0], [-32768, -32768], [32767, 32767]], np.int16)
    assert to_float_mono(stereo).tolist() == pytest.approx([0.25, -1.0, 32767 / 32768])
    odd = to_float_mono(np.array([np.nan, np.inf, -np.inf, 1.5, -0.5], np.float32))
    assert odd.dtype == np.float32 and odd.tolist() == [0.0, 1.0, -1.0, 1.0, -0.5]
    with pytest.raises(ValueError, match="at most 8 channels"):
        to_float_mono(np.zeros((100, 12), np.float32))
    with pytest.raises(ValueError, match=r"\(n,\) mono"):
        to_float_mono(np.zeros((2, 3, 4), np.float32))


def test_check_chunk_states_the_contract():
    check_chunk(AudioChunk(0.0, np.zeros(160, np.float32), RATE_HZ, 0.0))
    with pytest.raises(ValueError, match="sample rate 16000 Hz, got 48000 Hz"):
        check_chunk(AudioChunk(0.0, np.zeros(480, np.float32), 48000, 0.0))
    for samples in (np.zeros((160, 1), np.float32), np.zeros(160, np.float64)):
        with pytest.raises(ValueError, match="1-D mono float32"):
            check_chunk(AudioChunk(0.0, samples, RATE_HZ, 0.0))


def test_images_are_converted_by_one_convention():
    assert to_rgb_uint8(np.zeros((9, 9), np.uint8)).shape == (9, 9, 3)
    rgba = np.arange(9 * 9 * 4, dtype=np.uint8).reshape(9, 9, 4)
    assert np.array_equal(to_rgb_uint8(rgba), rgba[:, :, :3])
    converted = to_rgb_uint8(np.full((9, 9, 3), 0.5, np.float32))  # float: [0, 1]
    assert converted.dtype == np.uint8 and converted[0, 0, 0] == 128
    assert to_rgb_uint8(np.array([[[-1.0, 2.0, np.nan]]])).tolist() == [[[0, 255, 0]]]
    with pytest.raises(ValueError, match="HxWx3"):
        to_rgb_uint8(np.zeros((9, 9, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        to_rgb_uint8(np.zeros((9, 9, 3), np.int32))


def test_downscaling_keeps_the_aspect_ratio_with_an_even_height():
    assert fit_width(1280, 720, 640) == (640, 360)
    assert fit_width(640, 480, 640) == (640, 480)
    assert fit_width(1000, 333, 640) == (640, 214)
    small = np.zeros((20, 30, 3), np.uint8)
    assert downscale(small, 640) is small
    assert downscale(np.zeros((720, 1280, 3), np.uint8), 640).shape == (360, 640, 3)


def test_browser_frames_follow_the_image_convention():
    src = BrowserSource(clock=ReplayClock())
    src.start()
    src.push_frame(np.full((10, 10, 3), 0.5, np.float32))
    src.push_frame(np.full((10, 10), 7, np.uint8))
    half, grey = src.read_frames()
    assert half.image.dtype == np.uint8 and int(half.image[0, 0, 0]) == 128
    assert grey.image.shape == (10, 10, 3) and int(grey.image[5, 5, 2]) == 7
    assert not src.push_frame(np.zeros((10, 10, 2), np.uint8))  # dropped, counted, not raised
    assert src.drops["video_invalid"] == 1 and "HxWx3" in src.refusals["video_invalid"]
    src.end()
    assert src.stop(2.0)


def test_browser_audio_is_in_the_sources_format():
    src = BrowserSource(clock=ReplayClock())
    src.start()
    src.push_audio(16000, np.array([0, 16384, -32768, 32767], np.int16))
    src.push_audio(16000, np.array([[2.0, 2.0], [np.nan, 0.0]], np.float64))
    a, b = src.read_audio()
    for chunk in (a, b):
        check_chunk(chunk)
    assert a.samples.tolist() == [0.0, 0.5, -1.0, 32767 / 32768]
    assert b.samples.tolist() == [1.0, 0.0]
    src.end()
    assert src.stop(2.0)
