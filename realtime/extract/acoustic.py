"""Acoustic features on 25 ms frames every 10 ms, streamed, with torchaudio.

One row per frame, float32, in physical units (consumers standardise them, e.g. with the
model's training statistics). The vector is defined once, by `FEATURE_NAMES`:

0 ``energy_db``: 10*log10(mean(x^2)), dB re full scale, floored at -100.
1 ``f0_hz``: fundamental frequency (YIN, 60-500 Hz); 0 when unvoiced.
2 ``voiced``: 1 when periodic enough (CMND < 0.3) and above -50 dBFS, else 0.
3 ``periodicity``: 1 - YIN's cumulative-mean-normalised difference at the chosen lag, [0, 1].
4-16 ``mfcc_0..12``: 40 HTK mel bands (20-7600 Hz) of a Hann-windowed 512-point power
    spectrum, natural log, orthonormal DCT-II.
17-29 ``mfcc_d_0..12``: their deltas over 5 frames (as torchaudio ``compute_deltas``).
30 ``centroid_hz``: spectral centroid of the magnitude spectrum, Hz.
31 ``rolloff_hz``: frequency below which 85% of the power lies, Hz.
32 ``flatness``: geometric / arithmetic mean of the power spectrum, [0, 1].
33 ``flux``: L2 distance between consecutive sum-normalised magnitude spectra.
34 ``zcr``: zero crossings per sample, [0, 1].

Frame k of a run covers samples [160k, 160k+400) at 16 kHz and is stamped with its centre
(session seconds). F0 needs 267 samples of look-ahead and the deltas two frames, so a frame
is emitted about 37 ms after its end; `finish` flushes the tail (zero look-ahead). Every
value is finite: silence gives energy -100 dB, f0 0, voiced 0.

Input: `AudioChunk`s as every source delivers them (16 kHz mono float32 in [-1, 1]); a chunk
in another format is a ValueError, never converted here. `realtime.extract.audio_runs` joins
them into runs (short gaps zero-filled, overlaps trimmed, a long gap starts a new run).
`extract_features` takes a whole clip of any rate and converts it the way a source does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as AF

from realtime.clock import perf_s
from realtime.extract.audio_runs import AudioInbox, AudioRun
from realtime.sources.audio import RATE_HZ, resample_clip
from realtime.types import AudioChunk, FeatureFrames

FRAME_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
N_FFT = 512
N_MELS = 40
N_MFCC = 13
F0_MIN_HZ, F0_MAX_HZ = 60.0, 500.0
TAU_MIN = int(RATE_HZ / F0_MAX_HZ)
TAU_MAX = int(math.ceil(RATE_HZ / F0_MIN_HZ))
YIN_THRESHOLD = 0.15
VOICED_MAX_CMND = 0.3
VOICED_MIN_DB = -50.0
ENERGY_FLOOR_DB = -100.0
DELTA_CONTEXT = 2  # compute_deltas(win_length=5) uses two frames each side

FEATURE_NAMES: tuple[str, ...] = (
    "energy_db",
    "f0_hz",
    "voiced",
    "periodicity",
    *(f"mfcc_{i}" for i in range(N_MFCC)),
    *(f"mfcc_d_{i}" for i in range(N_MFCC)),
    "centroid_hz",
    "rolloff_hz",
    "flatness",
    "flux",
    "zcr",
)
ACOUSTIC_DIM = len(FEATURE_NAMES)
ENERGY_DB_INDEX = FEATURE_NAMES.index("energy_db")
PITCH_HZ_INDEX = FEATURE_NAMES.index("f0_hz")
VOICED_INDEX = FEATURE_NAMES.index("voiced")
MFCC_INDEX = FEATURE_NAMES.index("mfcc_0")
DELTA_INDEX = FEATURE_NAMES.index("mfcc_d_0")
SPECTRAL_INDEX = FEATURE_NAMES.index("centroid_hz")


def _frames(x: np.ndarray, count: int, length: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, length)[::HOP_SAMPLES][:count]


class _FrameMath:
    """Per-frame features except deltas, for a batch of frames. numpy, single-threaded: the
    batches are small and torch's intra-op threads only add overhead on a busy CPU; the
    filterbank and DCT matrices come from torchaudio."""

    def __init__(self) -> None:
        self.window = torch.hann_window(FRAME_SAMPLES, periodic=True).numpy()
        fb = AF.melscale_fbanks(N_FFT // 2 + 1, 20.0, 7600.0, N_MELS, RATE_HZ, None, "htk")
        self.mel = fb.numpy()  # (freq, mels)
        self.dct = AF.create_dct(N_MFCC, N_MELS, "ortho").numpy()  # (mels, mfcc)
        self.freqs = np.linspace(0, RATE_HZ / 2, N_FFT // 2 + 1, dtype=np.float32)

    def compute(self, x: np.ndarray, count: int, prev_spec: np.ndarray | None):
        """x: samples covering ``count`` frames plus TAU_MAX look-ahead (zero-padded at the
        end of a run). Returns (rows (count, ACOUSTIC_DIM) with deltas left 0, last
        normalised spectrum)."""
        frames = _frames(x, count, FRAME_SAMPLES).astype(np.float64)
        out = np.zeros((count, ACOUSTIC_DIM))
        power = (frames**2).mean(1)
        energy_db = np.maximum(10 * np.log10(power + 1e-10), ENERGY_FLOOR_DB)
        f0, periodicity = _yin(_frames(x, count, FRAME_SAMPLES + TAU_MAX).astype(np.float64))
        voiced = (1 - periodicity < VOICED_MAX_CMND) & (energy_db > VOICED_MIN_DB)
        out[:, ENERGY_DB_INDEX] = energy_db
        out[:, PITCH_HZ_INDEX] = np.where(voiced, f0, 0.0)
        out[:, VOICED_INDEX] = voiced
        out[:, VOICED_INDEX + 1] = np.where(power > 1e-10, periodicity, 0.0)
        centred = frames - frames.mean(1, keepdims=True)
        spec = np.abs(np.fft.rfft(centred * self.window, n=N_FFT))
        pspec = spec**2
        out[:, MFCC_INDEX : MFCC_INDEX + N_MFCC] = np.log(pspec @ self.mel + 1e-10) @ self.dct
        mag_sum = np.maximum(spec.sum(1), 1e-10)
        out[:, SPECTRAL_INDEX] = (spec * self.freqs).sum(1) / mag_sum
        cum = np.cumsum(pspec, 1)
        below = (cum < 0.85 * cum[:, -1:]).sum(1)
        out[:, SPECTRAL_INDEX + 1] = self.freqs[np.minimum(below, len(self.freqs) - 1)]
        flat = np.exp(np.log(pspec + 1e-12).mean(1)) / (pspec.mean(1) + 1e-12)
        out[:, SPECTRAL_INDEX + 2] = np.clip(flat, 0, 1)
        norm = spec / mag_sum[:, None]
        previous = np.concatenate([norm[:1] if prev_spec is None else prev_spec[None], norm[:-1]])
        out[:, SPECTRAL_INDEX + 3] = np.sqrt(((norm - previous) ** 2).sum(1))
        signs = np.signbit(frames)
        out[:, SPECTRAL_INDEX + 4] = (signs[:, 1:] != signs[:, :-1]).mean(1)
        return out.astype(np.float32), norm[-1]


def mfcc_deltas(seq: np.ndarray) -> np.ndarray:
    """Deltas along axis 0 over 2*DELTA_CONTEXT+1 frames with replicated edges: the same
    values as torchaudio ``compute_deltas`` (time last), without torch's thread pool."""
    n = DELTA_CONTEXT
    padded = np.pad(seq, ((n, n), (0, 0)), mode="edge")
    total = sum(k * (padded[n + k : n + k + len(seq)] - padded[n - k : n - k + len(seq)])
                for k in range(1, n + 1))
    return total / (n * (n + 1) * (2 * n + 1) / 3)


def _yin(long_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YIN F0 (Hz) and periodicity (1 - CMND at the chosen lag) for frames of
    FRAME_SAMPLES + TAU_MAX samples: the first 400 are compared with lagged copies."""
    n = long_frames.shape[0]
    a = long_frames[:, :FRAME_SAMPLES]
    size = 1024
    spectrum = np.conj(np.fft.rfft(a, n=size)) * np.fft.rfft(long_frames, n=size)
    corr = np.fft.irfft(spectrum, n=size)[:, : TAU_MAX + 1]
    sq = np.concatenate([np.zeros((n, 1)), np.cumsum(long_frames**2, 1)], 1)
    taus = np.arange(TAU_MAX + 1)
    e_lag = sq[:, taus + FRAME_SAMPLES] - sq[:, taus]
    diff = np.maximum(sq[:, FRAME_SAMPLES : FRAME_SAMPLES + 1] + e_lag - 2 * corr, 0.0)
    running = np.maximum(np.cumsum(diff[:, 1:], 1), 1e-12)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / running
    search = cmnd[:, TAU_MIN : TAU_MAX + 1]
    below = search < YIN_THRESHOLD
    first = np.where(below.any(1), below.argmax(1), search.argmin(1))
    idx = np.arange(search.shape[1])
    after = idx[None] >= first[:, None]
    in_dip = below | (idx[None] == first[:, None])
    run = after & (np.cumsum(after & ~in_dip, 1) == 0)
    tau = np.where(run, search, np.inf).argmin(1) + TAU_MIN
    rows = np.arange(n)
    lo, mid = cmnd[rows, tau - 1], cmnd[rows, tau]
    hi = cmnd[rows, np.minimum(tau + 1, TAU_MAX)]
    denom = lo - 2 * mid + hi
    safe = np.abs(denom) > 1e-9
    shift = np.where(safe, 0.5 * (lo - hi) / np.where(safe, denom, 1.0), 0.0)
    f0 = RATE_HZ / (tau + np.clip(shift, -1, 1))
    return f0, np.clip(1 - mid, 0, 1)


class AcousticExtractor:
    """Streaming acoustic features: insert_audio_chunk / process_iter / finish.

    Chunks must be 16 kHz mono float32 (as sources deliver them): `insert_audio_chunk`
    raises ValueError otherwise. Never reads the clock. ``computed_at_s`` of a batch is
    ``now_s`` (the caller's session time when it called) plus the measured compute time, or,
    without ``now_s``, the capture time of the newest input (deterministic replay). The
    chunk queue holds at most ``max_chunks`` (oldest dropped, counted in ``drops``).
    """

    def __init__(self, max_chunks: int = 512, max_gap_s: float = 1.0) -> None:
        self._math = _FrameMath()
        self._inbox = AudioInbox(max_chunks, max_gap_s)
        self._reset_run(0.0)

    @property
    def drops(self) -> int:
        """Chunks dropped from the full input queue."""
        return self._inbox.drops

    def _reset_run(self, t0_s: float) -> None:
        self._run_t0_s = t0_s
        self._buf = np.zeros(0, np.float32)
        self._next_frame = 0  # index (within the run) of the next frame to compute
        self._buf_start = 0  # run sample index of self._buf[0]
        self._prev_spec: np.ndarray | None = None
        self._held: list[np.ndarray] = []  # computed rows waiting for delta look-ahead
        self._held_t: list[float] = []
        self._mfcc_ctx = np.zeros((0, N_MFCC), np.float32)  # MFCCs of the last emitted frames

    def insert_audio_chunk(self, chunk: AudioChunk) -> None:
        self._inbox.put(chunk)

    def process_iter(self, now_s: float | None = None) -> FeatureFrames | None:
        """Features for every frame that became complete; None when there is none."""
        return self._run(now_s, final=False)

    def finish(self, now_s: float | None = None) -> FeatureFrames | None:
        """Process everything queued and flush the tail of the current run."""
        return self._run(now_s, final=True)

    def _run(self, now_s: float | None, final: bool) -> FeatureFrames | None:
        start = perf_s()
        rows: list[np.ndarray] = []
        times: list[float] = []
        for run in self._inbox.drain():
            self._feed(run, rows, times)
        if final:
            self._inbox.end()
            self._close_run(rows, times)
        if not rows:
            return None
        values = np.concatenate(rows).astype(np.float32)
        captured_s = self._inbox.captured_at_s
        done = captured_s if now_s is None else now_s + (perf_s() - start)
        return FeatureFrames(np.asarray(times, np.float64), values, done, captured_s)

    def _feed(self, run: AudioRun, rows: list, times: list) -> None:
        if run.restart:
            self._close_run(rows, times)
            self._reset_run(run.t0_s)
        self._buf = np.concatenate([self._buf, run.samples])
        self._compute(rows, times, final=False)

    def _close_run(self, rows: list, times: list) -> None:
        self._compute(rows, times, final=True)
        self._emit(rows, times, final=True)

    def _compute(self, rows: list, times: list, final: bool) -> None:
        first = self._next_frame * HOP_SAMPLES - self._buf_start
        avail = len(self._buf) - first
        need = FRAME_SAMPLES if final else FRAME_SAMPLES + TAU_MAX
        count = (avail - need) // HOP_SAMPLES + 1 if avail >= need else 0
        if count > 0:
            x = self._buf[first:]
            span = (count - 1) * HOP_SAMPLES + FRAME_SAMPLES + TAU_MAX
            if len(x) < span:
                x = np.concatenate([x, np.zeros(span - len(x), np.float32)])
            base, self._prev_spec = self._math.compute(x, count, self._prev_spec)
            for i in range(count):
                k = self._next_frame + i
                self._held.append(base[i : i + 1])
                centre = k * HOP_SAMPLES + FRAME_SAMPLES / 2
                self._held_t.append(self._run_t0_s + centre / RATE_HZ)
            self._next_frame += count
            keep_from = self._next_frame * HOP_SAMPLES - self._buf_start
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        self._emit(rows, times, final=False)

    def _emit(self, rows: list, times: list, final: bool) -> None:
        ready = len(self._held) if final else len(self._held) - DELTA_CONTEXT
        if ready <= 0:
            return
        held = np.concatenate(self._held)
        mf = held[:, MFCC_INDEX : MFCC_INDEX + N_MFCC]
        seq = np.concatenate([self._mfcc_ctx, mf])
        pad = self._mfcc_ctx.shape[0]
        deltas = mfcc_deltas(seq)
        out = held[:ready].copy()
        out[:, DELTA_INDEX : DELTA_INDEX + N_MFCC] = deltas[pad : pad + ready]
        rows.append(out)
        times.extend(self._held_t[:ready])
        self._mfcc_ctx = seq[: pad + ready][-DELTA_CONTEXT:]
        self._held, self._held_t = self._held[ready:], self._held_t[ready:]


def extract_features(samples: np.ndarray, rate_hz: int, t0_s: float = 0.0) -> FeatureFrames:
    """Features of a whole clip (any rate and dtype, (n,) or (n, channels)), converted the way
    a source converts its input (`realtime.sources.audio.resample_clip`), as the stream would
    give them."""
    ex = AcousticExtractor()
    ex.insert_audio_chunk(AudioChunk(t0_s, resample_clip(samples, rate_hz), RATE_HZ, t0_s))
    out = ex.finish()
    if out is None:
        return FeatureFrames(np.zeros(0), np.zeros((0, ACOUSTIC_DIM), np.float32), t0_s, t0_s)
    return out
