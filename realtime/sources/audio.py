"""Streaming conversion of any PCM to the pipeline's audio format: 16 kHz mono float32.

`Resampler16k` keeps its filter state between calls (PyAV's libswresample), so a stream
resampled chunk by chunk has no seams. Integer PCM is scaled to [-1, 1]; stereo and other
layouts are averaged to mono.
"""

from __future__ import annotations

import av
import numpy as np

RATE_HZ = 16000


def to_float_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) PCM, any dtype -> (n,) float32 in [-1, 1]."""
    x = np.asarray(samples)
    if x.ndim == 2:
        pass
    elif x.ndim == 1:
        x = x[:, None]
    else:
        raise ValueError(f"audio must be (n,) or (n, channels), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        x = x.astype(np.float32) / float(max(abs(info.min), info.max))
    x = x.astype(np.float32, copy=False).mean(axis=1)
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


class Resampler16k:
    """Feed chunks at ``rate_hz``; get 16 kHz mono float32 back (possibly empty)."""

    def __init__(self, rate_hz: int) -> None:
        if rate_hz <= 0:
            raise ValueError(f"sample rate must be positive, got {rate_hz}")
        self.rate_hz = int(rate_hz)
        self._resampler = (
            None if self.rate_hz == RATE_HZ
            else av.AudioResampler(format="flt", layout="mono", rate=RATE_HZ)
        )
        self._pts = 0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        mono = to_float_mono(samples)
        if self._resampler is None or len(mono) == 0:
            return mono
        frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
        frame.sample_rate = self.rate_hz
        frame.pts = self._pts
        self._pts += len(mono)
        return _concat(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return _concat(self._resampler.resample(None))


def _concat(frames: list[av.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
