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

Bounds, checked before anything is converted (`check_rate`, `check_pcm`; the resampler
checks every chunk it is given, so every way audio comes in is checked the same way): a
sample rate from ``MIN_RATE_HZ`` to ``MAX_RATE_HZ`` (resampling to 16 kHz then makes a chunk
at most 4 times longer), at most ``MAX_CHANNELS`` channels, at most ``MAX_CHUNK_S`` seconds
and ``MAX_VALUES`` values (samples x channels) per chunk, a sample type of ``PCM_DTYPES``.
Anything else is a `realtime.sources.base.RefusedMedia` (a ValueError) counted as
``audio_invalid``: a 4.8 KB chunk declaring 4 Hz would otherwise resample to 4000 times its
length (10 minutes of audio, 300 MB in libswresample alone). `decode_chunk_file` reads a small
audio file (a streamed microphone chunk) under the same bounds, stopping as soon as it
decodes past them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realtime.sources.base import RefusedMedia
from realtime.types import AudioChunk

if TYPE_CHECKING:  # PyAV is imported where it is used: the model-only paths need none
    import av

RATE_HZ = 16000
MAX_CHANNELS = 8
MIN_RATE_HZ = 4000  # below this, audio is no recording of speech (telephone is 8 kHz)
MAX_RATE_HZ = 192_000
MAX_CHUNK_S = 10.0  # one chunk (a browser's is 0.5 s, a device's 0.05 s, a decoded frame less)
MAX_VALUES = 4_000_000  # samples x channels in one chunk: 16 MB as float32
PCM_DTYPES = tuple(np.dtype(t) for t in ("uint8", "int8", "int16", "int32", "float32",
                                         "float64"))
AUDIO_INVALID = "audio_invalid"


def check_rate(rate_hz: float) -> int:
    """``rate_hz`` as an int; `RefusedMedia` unless it is a whole number of Hz from
    ``MIN_RATE_HZ`` to ``MAX_RATE_HZ``."""
    try:
        rate = int(rate_hz)
        whole = rate == rate_hz
    except (TypeError, ValueError, OverflowError):
        rate, whole = 0, False
    if not whole or rate <= 0:
        raise RefusedMedia(AUDIO_INVALID, f"sample rate must be positive, got {rate_hz!r} Hz")
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise RefusedMedia(AUDIO_INVALID, f"audio at {rate} Hz refused: the sample rate must be "
                                          f"at least {MIN_RATE_HZ} Hz and at most "
                                          f"{MAX_RATE_HZ} Hz")
    return rate


def check_pcm_size(rate_hz: int, frames: int, channels: int) -> None:
    """`RefusedMedia` unless ``frames`` samples of ``channels`` channels at ``rate_hz`` (an
    already checked rate) are within the chunk bounds (channels, seconds, values)."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise RefusedMedia(AUDIO_INVALID, "audio must be (n,) mono or (n, channels) with at "
                                          f"most {MAX_CHANNELS} channels, got {channels}")
    if frames > MAX_CHUNK_S * rate_hz or frames * channels > MAX_VALUES:
        raise RefusedMedia(AUDIO_INVALID, f"an audio chunk of {frames} samples x {channels} "
                                          f"channels at {rate_hz} Hz is too long (at most "
                                          f"{MAX_CHUNK_S:g} s and {MAX_VALUES} values)")


def check_pcm(rate_hz: float, samples: np.ndarray) -> np.ndarray:
    """``samples`` as an array, unconverted; `RefusedMedia` unless the rate, shape ((n,) or
    (n, channels)), length and sample type are within the bounds. Looks at the metadata
    only: costs nothing whatever the chunk claims."""
    rate = check_rate(rate_hz)
    x = np.asarray(samples)
    if x.dtype not in PCM_DTYPES:
        raise RefusedMedia(AUDIO_INVALID, "audio samples must be numeric PCM ("
                                          + ", ".join(d.name for d in PCM_DTYPES)
                                          + f"), got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise RefusedMedia(AUDIO_INVALID, "audio must be (n,) mono or (n, channels), got "
                                          f"shape {x.shape}")
    check_pcm_size(rate, x.shape[0], 1 if x.ndim == 1 else x.shape[1])
    return x


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


def decode_chunk_file(path: str | Path) -> tuple[int, np.ndarray]:
    """``(rate_hz, samples)`` of the first audio stream of a small file (a streamed
    microphone chunk): samples (n,) mono or (n, channels), in the file's own sample type.
    The header's rate and channels are checked before decoding, and decoding stops with
    `RefusedMedia` as soon as the audio passes the chunk bounds, so a tiny file that would
    decode to hours is never expanded. FileNotFoundError for a missing file;
    ``av.error.FFmpegError`` for one that cannot be decoded."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise RefusedMedia(AUDIO_INVALID, f"{Path(path).name}: no audio stream")
        stream = container.streams.audio[0]
        rate, channels = check_rate(stream.rate), stream.channels
        check_pcm_size(rate, 0, channels)
        parts, frames = [], 0
        for frame in container.decode(stream):
            if frame.sample_rate != rate or frame.layout.nb_channels != channels:
                raise RefusedMedia(AUDIO_INVALID, f"{Path(path).name}: the audio changes "
                                                  "its rate or channels part-way")
            frames += frame.samples
            check_pcm_size(rate, frames, channels)
            x = frame.to_ndarray()
            parts.append(x.T if frame.format.is_planar else x.reshape(-1, channels))
    data = np.concatenate(parts) if parts else np.zeros((0, channels), np.int16)
    return rate, data[:, 0] if channels == 1 else data


def new_libswresample() -> av.AudioResampler:
    """PyAV's resampler to the pipeline's format (packed float, mono, 16 kHz)."""
    import av

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
        self.rate_hz = check_rate(rate_hz)
        self._resampler = None if self.rate_hz == RATE_HZ else new_libswresample()
        self._pts = 0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """``samples`` ((n,) or (n, channels) PCM at ``rate_hz``) at 16 kHz; `RefusedMedia`
        (nothing converted, the stream's state unchanged) outside the bounds (`check_pcm`)."""
        mono = to_float_mono(check_pcm(self.rate_hz, samples))
        if self._resampler is None or len(mono) == 0:
            return mono
        import av

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
    same resampler a Source uses (fed in pieces within the chunk bounds, so a clip may be
    any length)."""
    resampler = Resampler16k(rate_hz)
    x = np.asarray(samples)
    channels = x.shape[1] if x.ndim == 2 and x.shape[1] > 0 else 1
    step = max(1, min(int(MAX_CHUNK_S * resampler.rate_hz), MAX_VALUES // channels))
    parts = [resampler(x[i : i + step]) for i in range(0, max(len(x), 1), step)]
    parts.append(resampler.flush())
    return np.concatenate(parts)
