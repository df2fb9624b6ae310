"""The pipeline's audio format, and the one way to convert any PCM into it.

Every `realtime.sources.Source` delivers `AudioChunk`s of ``RATE_HZ`` (16 kHz) mono float32
samples in [-1, 1]; the extractors take them as they come and refuse anything else
(`check_chunk`). The conversion happens here, once, at the source:

- `pcm_to_float`: integer PCM -> float32 in [-1, 1] (a signed n-bit sample is divided by
  2**(n-1), so int16 by 32768; unsigned PCM is offset by half its range first); float
  samples are kept as they are;
- `to_float_mono`: (n,) or (n, channels) PCM of any dtype -> (n,) float32 in [-1, 1]
  (channels averaged, non-finite values zeroed, clipped);
- `Resampler16k`: a stream of chunks at one rate -> 16 kHz, keeping its filter state between
  calls (PyAV's libswresample), so a stream resampled chunk by chunk has no seams;
  `resample_clip` does a whole clip at once.
"""

from __future__ import annotations

import av
import numpy as np

from realtime.types import AudioChunk

RATE_HZ = 16000
MAX_CHANNELS = 8


def pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1] (int16 / 32768); floats are only cast to float32."""
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.signedinteger):
        return x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    if np.issubdtype(x.dtype, np.unsignedinteger):
        half = float(np.iinfo(x.dtype).max // 2 + 1)
        return (x.astype(np.float32) - half) / half
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise ValueError(f"audio samples must be numeric, got dtype {x.dtype}")


def to_float_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) PCM, any numeric dtype -> (n,) float32 in [-1, 1]."""
    x = pcm_to_float(samples)
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim != 2 or x.shape[1] > MAX_CHANNELS:
        raise ValueError(f"audio must be (n,) mono or (n, channels) with at most {MAX_CHANNELS} "
                         f"channels, got shape {x.shape}")
    x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def check_chunk(chunk: AudioChunk) -> None:
    """Raises ValueError unless ``chunk`` is in the sources' format (16 kHz mono float32)."""
    samples = chunk.samples
    if int(chunk.rate_hz) != RATE_HZ:
        raise ValueError(
            f"audio chunks must have sample rate {RATE_HZ} Hz, got {chunk.rate_hz} Hz: a Source "
            "resamples its input (realtime.sources.audio.Resampler16k); convert a clip with "
            "realtime.sources.audio.resample_clip")
    if not isinstance(samples, np.ndarray) or samples.ndim != 1 or samples.dtype != np.float32:
        shape = getattr(samples, "shape", None)
        dtype = getattr(samples, "dtype", type(samples).__name__)
        raise ValueError(f"audio chunks must hold 1-D mono float32 samples, got shape {shape} "
                         f"of {dtype} (convert with realtime.sources.audio.to_float_mono)")


def new_libswresample() -> av.AudioResampler:
    """PyAV's resampler to the pipeline's format (packed float, mono, 16 kHz)."""
    return av.AudioResampler(format="flt", layout="mono", rate=RATE_HZ)


def from_frames(frames: list[av.AudioFrame]) -> np.ndarray:
    """The samples of resampled PyAV frames as one (n,) float32 array in [-1, 1]."""
    if not frames:
        return np.zeros(0, np.float32)
    x = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


class Resampler16k:
    """Feed chunks at ``rate_hz``; get 16 kHz mono float32 back (possibly empty)."""

    def __init__(self, rate_hz: int) -> None:
        if rate_hz <= 0:
            raise ValueError(f"sample rate must be positive, got {rate_hz}")
        self.rate_hz = int(rate_hz)
        self._resampler = None if self.rate_hz == RATE_HZ else new_libswresample()
        self._pts = 0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        mono = to_float_mono(samples)
        if self._resampler is None or len(mono) == 0:
            return mono
        frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
        frame.sample_rate = self.rate_hz
        frame.pts = self._pts
        self._pts += len(mono)
        return from_frames(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return from_frames(self._resampler.resample(None))


def resample_clip(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """A whole clip (any rate, dtype, mono or (n, channels)) -> 16 kHz mono float32, with the
    same resampler a Source uses."""
    resampler = Resampler16k(rate_hz)
    head = resampler(samples)
    tail = resampler.flush()
    return np.concatenate([head, tail]) if len(tail) else head
