"""Streaming speech recognition: faster-whisper, named commit policies and Silero VAD.

`load_whisper` loads a bundled CTranslate2 Whisper model once per process and shares it
between sessions as a `WhisperTranscriber` (the typed seam to faster-whisper; a test passes
any `Transcriber`; sessions on shared models call it through
`realtime.serving.executor.SharedTranscriber`). `StreamingASR` is the push/poll stage of one
session (its calls and bounds in its docstring); its commits are kept by `CommitBook` (the
commit rule in its docstring). The policies (`ASR_POLICIES`, by name: ``python -m realtime
--asr-policy``, `Engine.load(asr_policy=)`) are `AsrConfig` values; every threshold is a named
field there.

Units: session seconds throughout (a word's time is the buffer's start plus Whisper's time).
The stage never reads the clock; errors of the transcriber propagate to the caller. Why the
policies and thresholds are what they are (measurements): docs/notes/asr.md.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from faster_whisper import WhisperModel

from realtime.assets import whisper_model_dir
from realtime.clock import perf_s
from realtime.extract.audio_runs import AudioInbox, AudioRun
from realtime.extract.text import normalize_word
from realtime.extract.whisper_batch import (
    RecognizedSegment,
    TranscribeRequest,
    WhisperBatch,
)
from realtime.sources.audio import RATE_HZ
from realtime.types import AudioChunk, Word

log = logging.getLogger(__name__)

VAD_WINDOW = 512  # Silero's window at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous window Silero v6 sees before each window


class SileroStream:
    """Silero VAD (faster-whisper's bundled onnx) over a stream: push samples, get one speech
    probability per 512-sample window, the LSTM state and the 64-sample context carried from
    call to call, so the values equal those of the whole signal scored at once. Uses the
    session of faster-whisper 1.2.1's ``SileroVADModel`` (pinned in requirements.txt)."""

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session  # shared, thread-safe onnxruntime session
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(VAD_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._pending = np.concatenate([self._pending, samples])
        n = len(self._pending) // VAD_WINDOW
        if n == 0:
            return np.zeros(0, np.float32)
        windows = self._pending[: n * VAD_WINDOW].reshape(n, VAD_WINDOW)
        self._pending = self._pending[n * VAD_WINDOW :]
        before = np.concatenate([self._context[None], windows[:-1, -VAD_CONTEXT:]])
        self._context = windows[-1, -VAD_CONTEXT:].copy()
        probs, self._h, self._c = self._session.run(
            None, {"input": np.concatenate([before, windows], 1), "h": self._h, "c": self._c}
        )
        return np.asarray(probs, np.float32).reshape(-1)


class Transcriber(Protocol):
    """What `StreamingASR` needs from a speech model: words with times for a 16 kHz clip.

    prompt: text said before the clip (Whisper's initial prompt), or None.
    min_window_s: the shortest encoder window in seconds (see `WhisperTranscriber`); None
        for the model's full window.
    min_tail_s: a remainder after the last decoded word shorter than this (seconds) is not
        decoded again (see `AsrConfig.min_tail_s`); 0 decodes every remainder.
    """

    def transcribe(self, audio: np.ndarray, *, prompt: str | None, beam_size: int,
                   min_window_s: float | None, min_tail_s: float) -> list[RecognizedSegment]: ...


class WhisperTranscriber:
    """A loaded faster-whisper `WhisperModel`, shared by every session (calls may come from
    several threads at once), transcribing English with word times, greedy at temperature 0,
    without faster-whisper's own VAD and without conditioning on its previous text. Each call
    is one request of `realtime.extract.whisper_batch.WhisperBatch`, which runs
    faster-whisper's own steps (the words are those of `WhisperModel.transcribe`) with three
    changes: decoding is capped at `decode_tokens` of the encoder window (Whisper's loops on
    short buffers end there); with ``min_window_s`` the encoder sees only the audio plus 1 s,
    in whole seconds, at least ``min_window_s`` and at most 30 s (not 30 s of padding); with
    ``min_tail_s`` a remainder after a window's last word shorter than that is not decoded
    again (`AsrConfig.min_tail_s`). The transcriber's errors are raised to the caller.
    Measurements: docs/notes/asr.md.
    """

    def __init__(self, model: WhisperModel) -> None:
        self.model = model
        self._batch = WhisperBatch(model)

    def transcribe(self, audio: np.ndarray, *, prompt: str | None = None, beam_size: int = 1,
                   min_window_s: float | None = None,
                   min_tail_s: float = 0.0) -> list[RecognizedSegment]:
        [result] = self._batch.run([TranscribeRequest(audio, prompt, beam_size, min_window_s,
                                                      min_tail_s)])
        if isinstance(result, Exception):
            raise result
        return result


_models: dict[tuple[str, str, int], WhisperTranscriber] = {}
_models_lock = threading.Lock()


def load_whisper(name: str = "tiny.en", device: str = "cpu",
                 cpu_threads: int = 1) -> WhisperTranscriber:
    """The bundled Whisper ``name`` ("tiny.en" or "base"), loaded once per (name, device,
    threads) and shared (thread-safe); int8 on CPU, int8_float16 on CUDA; never downloads.

    cpu_threads: CTranslate2's threads per call on the CPU (default one: a streaming pass was
    faster and cheaper on one thread than on two; docs/notes/asr.md).
    """
    key = (name, device, int(cpu_threads))
    with _models_lock:
        if key not in _models:
            log.info("loading Whisper %s on %s", name, device)
            _models[key] = WhisperTranscriber(WhisperModel(
                str(whisper_model_dir(name)),
                device=device,
                compute_type="int8" if device == "cpu" else "int8_float16",
                cpu_threads=int(cpu_threads),
                local_files_only=True,
            ))
        return _models[key]


@dataclass(frozen=True)
class AsrConfig:
    """Streaming policy: every threshold of `StreamingASR` (seconds unless named otherwise).
    The defaults are the ``pause`` policy; `ASR_POLICIES` names it and the older ``sparse``
    and ``agreement`` policies. Why these values: docs/notes/asr.md."""

    # -- passes and utterances
    min_chunk_s: float = 0.5  # new utterance audio (speech if speech_gated) before a pass
    speech_gated: bool = True  # count only VAD speech (not all audio) towards min_chunk_s
    silence_close_s: float = 0.25  # VAD silence after speech that closes an utterance
    vad_threshold: float = 0.5  # Silero speech probability that starts speech
    vad_hysteresis: float = 0.15  # speech goes on while the probability >= threshold - this
    append_piece_s: float = 0.1  # audio is added (and VAD-checked for a close) in pieces
    # of at most this, so audio that piled up during a pass still splits into utterances
    preroll_s: float = 0.3  # audio kept before the detected speech onset
    max_gap_s: float = 1.0  # longer input gaps (or no input for this long) close the utterance
    max_chunks: int = 512  # queued input chunks before the oldest is dropped
    # -- the buffer
    trim_buffer_s: float = 6.0  # above this, cut the buffer at the last committed word
    max_buffer_s: float = 15.0  # hard bound on the transcribed buffer
    force_keep_s: float = 1.0  # over max_buffer_s, the hypothesis ending more than this
    # before the buffer's end is committed
    # -- Whisper
    beam_size: int = 1
    prompt_chars: int = 200  # committed text before the buffer, as Whisper's prompt
    prompt_margin_s: float = 0.05  # a committed word is prompt only when it ends before the
    # buffer's start plus this (a word still in the audio is not prompted)
    no_speech_threshold: float = 0.6  # a segment above this no-speech probability ...
    no_speech_logprob: float = -1.0  # ... and below this mean log-probability is dropped
    encoder_window_s: float | None = 6.0  # shortest encoder window; None: Whisper's 30 s
    min_tail_s: float = 0.3  # Whisper does not decode a remainder of the buffer after its
    # last word that is shorter than this: a pause, or the start of a word cut by the
    # buffer's end, that a step would not commit yet (within commit_margin_s of the end); a
    # close transcribes at least close_min_context_s past the speech
    unheard_margin_s: float = 0.01  # a word starting this close to the end of the
    # transcribed audio, or after it, was not heard and is dropped
    # -- commits
    agree_tolerance_s: float = 1.0  # start times of agreeing words may differ this much
    commit_margin_s: float = 0.5  # agreed words ending closer than this to the buffer's
    # end wait for a later pass (Whisper's first guess at a word needs the audio after it)
    close_context_s: float = 0.25  # a close reuses the latest hypothesis when it heard this
    # much audio after the speech ended, else transcribes once more
    close_min_context_s: float = 0.2  # that transcription hears at least this past the speech
    close_tail_s: float = 0.1  # at a close, a last word starting this close to the end of the
    # speech, or later, is dropped (Whisper's invented "Thank you." in the padding)
    # -- repeats of committed words and Whisper's loops
    repeat_overlap_s: float = 0.05  # a word whose middle lies before the last committed
    # word's end minus this repeats committed audio
    repeat_window_s: float = 1.0  # text repeats of the committed tail are looked for only in
    # a hypothesis starting within this after the last committed word's end
    repeat_max_words: int = 5  # the longest committed tail matched by text
    repeat_tolerance_s: float = 0.35  # a word matching a committed one in text that starts
    # this close to it is that word again (Whisper re-timing it), not a repetition
    squeezed_s_per_word: float = 0.1  # words said faster than this were not said (a loop's
    # copy or a replayed prompt timed into an instant)
    loop_max_words: int = 10  # the longest loop (a run said again right after itself) dropped


ASR_POLICIES: dict[str, AsrConfig] = {
    "pause": AsrConfig(),
    "sparse": AsrConfig(min_chunk_s=1.5, commit_margin_s=0.0, close_context_s=0.1),
    "agreement": AsrConfig(min_chunk_s=1.0, silence_close_s=0.5, speech_gated=False,
                           commit_margin_s=0.0, close_context_s=0.1, min_tail_s=0.0),
}
DEFAULT_ASR_POLICY = "pause"


def asr_policy(name: str) -> AsrConfig:
    """The named streaming policy; ValueError naming the known ones for any other name."""
    if name not in ASR_POLICIES:
        raise ValueError(f"unknown ASR policy {name!r}: use one of {', '.join(ASR_POLICIES)}")
    return ASR_POLICIES[name]


@dataclass(frozen=True)
class AsrUpdate:
    """committed: words committed by this call, oldest first (each exactly once per stream);
    tentative: the current uncommitted tail, for display (replaces the previous one);
    compute_s: VAD + Whisper time in this call; audio_end_s: session time of the newest
    audio processed; closed: this call closed an utterance."""

    committed: tuple[Word, ...]
    tentative: tuple[Word, ...]
    computed_at_s: float
    compute_s: float = 0.0
    audio_end_s: float = 0.0
    closed: bool = False


def _squeezed(run: list[Word], s_per_word: float) -> bool:
    """Said in less than ``s_per_word`` a word: faster than anyone speaks."""
    return run[-1].t1_s - run[0].t0_s < s_per_word * len(run)


def drop_squeezed_repeats(words: list[Word], max_words: int = AsrConfig.loop_max_words,
                          s_per_word: float = AsrConfig.squeezed_s_per_word) -> list[Word]:
    """Whisper's loops: a run of 2 to ``max_words`` words said again right after itself but
    squeezed into less than ``s_per_word`` a word ("... before us. We can nothing before us."
    with the second copy at one instant) was not said; it is dropped, as often as it repeats.
    A phrase the speaker really says twice takes the time of saying it and is kept."""
    out: list[Word] = []
    for w in words:
        out.append(w)
        for n in range(max_words, 1, -1):
            if len(out) >= 2 * n:
                copy, before = out[-n:], out[-2 * n : -n]
                if _squeezed(copy, s_per_word) and all(
                        normalize_word(a.text) == normalize_word(b.text)
                        for a, b in zip(copy, before, strict=True)):
                    del out[-n:]
                    break
    return out


COMMITTED_KEPT = 64  # committed words remembered, for the prompt and the repeat check


class CommitBook:
    """The commit bookkeeping of one stream (session seconds; one thread): the committed
    words, each once with strictly increasing start times (the last `COMMITTED_KEPT` kept),
    the end of the latest (``end_s``), and the uncommitted words of the latest hypothesis
    (``tentative``). Each method that commits returns the words it committed, oldest first.

    The rule: a word is committed when two consecutive hypotheses agree on it (the same word
    after `realtime.extract.text.normalize_word`, starts within ``agree_tolerance_s``) and it
    ends ``commit_margin_s`` or more before the buffer's end; a close commits all the
    utterance's words. Hypothesis words that repeat committed ones (by time, by text at the
    same time, or replayed squeezed into an instant) and Whisper's loops are dropped.
    """

    def __init__(self, config: AsrConfig) -> None:
        self.config = config
        self.committed: deque[Word] = deque(maxlen=COMMITTED_KEPT)
        self.end_s = float("-inf")
        self.tentative: list[Word] = []

    def use(self, config: AsrConfig) -> None:
        """Commits by ``config`` from the next call on (`StreamingASR.set_policy`)."""
        self.config = config

    def agree(self, words: list[Word], buffer_end_s: float) -> list[Word]:
        """LocalAgreement-2: commits the longest prefix of the new hypothesis ``words`` that
        the previous one agrees on (same normalised text, starts within
        ``agree_tolerance_s``), less the words ending within ``commit_margin_s`` of
        ``buffer_end_s``; the rest of ``words`` becomes the tentative tail."""
        cfg = self.config
        agreed = 0
        for old, new in zip(self.tentative, words, strict=False):
            same_text = normalize_word(old.text) == normalize_word(new.text)
            if not same_text or abs(old.t0_s - new.t0_s) > cfg.agree_tolerance_s:
                break
            agreed += 1
        while agreed and words[agreed - 1].t1_s > buffer_end_s - cfg.commit_margin_s:
            agreed -= 1  # too close to the buffer's end: the next pass may still change it
        out = self.commit(words[:agreed])
        self.tentative = words[agreed:]
        return out

    def commit_ending_by(self, t_s: float) -> list[Word]:
        """Commits the leading tentative words that end at or before ``t_s``."""
        old = [w for w in self.tentative if w.t1_s <= t_s]
        out = self.commit(old)
        self.tentative = self.tentative[len(old) :]
        return out

    def forget_before(self, t_s: float) -> None:
        """Drops the tentative words starting before ``t_s`` (their audio is gone)."""
        self.tentative = [w for w in self.tentative if w.t0_s >= t_s]

    def close(self, words: list[Word], speech_end_s: float) -> list[Word]:
        """An utterance ends: commits its final ``words`` but a trailing word that starts
        ``close_tail_s`` or less before ``speech_end_s`` (or later: not real speech); nothing
        stays tentative."""
        while words and words[-1].t0_s >= speech_end_s - self.config.close_tail_s:
            words = words[:-1]
        out = self.commit(words)
        self.tentative = []
        return out

    def commit(self, words: list[Word]) -> list[Word]:
        """Marks words committed. Start times strictly increase along the stream (Whisper can
        give two words the same start; the later one is moved 1 ms on)."""
        out = []
        for w in words:
            last = self.committed[-1].t0_s if self.committed else float("-inf")
            t0 = max(w.t0_s, last + 0.001)
            done = Word(t0, max(w.t1_s, t0), w.text, True, w.probability)
            self.committed.append(done)
            self.end_s = max(self.end_s, done.t1_s)
            out.append(done)
        return out

    def prompt(self, buffer_t0_s: float) -> str | None:
        """The last ``prompt_chars`` of the committed text whose audio is no longer in a
        buffer starting at ``buffer_t0_s``; None when there is none."""
        cfg = self.config
        before = [w.text for w in self.committed if w.t1_s <= buffer_t0_s + cfg.prompt_margin_s]
        return " ".join(before)[-cfg.prompt_chars :].strip() or None

    def fresh(self, words: list[Word]) -> list[Word]:
        """Drops the hypothesis words that repeat what is already committed: by time (the
        middle before the committed end, less ``repeat_overlap_s``), then by text where the
        words match the committed tail *and* each starts within ``repeat_tolerance_s`` of
        the committed word it repeats, or two or more are squeezed into an instant (Whisper
        replaying its prompt at the buffer's start). A phrase, or a word, the speaker says
        again is new."""
        cfg = self.config
        words = [w for w in words if (w.t0_s + w.t1_s) / 2 > self.end_s - cfg.repeat_overlap_s]
        if words and self.committed and words[0].t0_s < self.end_s + cfg.repeat_window_s:
            tol = cfg.repeat_tolerance_s
            tail = list(self.committed)
            for n in range(min(cfg.repeat_max_words, len(tail), len(words)), 0, -1):
                pairs = list(zip(tail[-n:], words[:n], strict=True))
                if not all(normalize_word(c.text) == normalize_word(w.text) for c, w in pairs):
                    continue
                if (n >= 2 and _squeezed(words[:n], cfg.squeezed_s_per_word)) or all(
                        abs(c.t0_s - w.t0_s) <= tol for c, w in pairs):
                    return words[n:]
        return words


class StreamingASR:
    """One session's streaming recognizer, used from one thread at a time: the utterance
    buffer, VAD gating and trimming here, the commits in a `CommitBook`.

    - ``insert_audio_chunk(chunk)``: queues audio (16 kHz mono float32, anything else a
      ValueError; at most ``max_chunks``, the oldest dropped and counted in ``drops``); gaps
      and overlaps are handled by `realtime.extract.audio_runs`. Cheap, never blocks.
    - ``process_iter(now_s=None)``: runs Silero VAD over the new audio and, once the open
      utterance has ``min_chunk_s`` of new speech (``speech_gated``) or new audio,
      transcribes its buffer again; ``silence_close_s`` of silence after speech closes it.
    - ``finish(now_s=None)``: the audio ended: closes the last utterance.
    - ``close_if_quiet(now_s)``: no audio came; when the newest was captured ``max_gap_s``
      or more before ``now_s`` the open utterance is closed, else None.

    Each returns an `AsrUpdate`: the words committed (each word of the stream once), the
    tentative tail, whether an utterance closed, and ``computed_at_s`` (``now_s`` plus the
    compute time; without ``now_s`` the capture time of the newest audio, for deterministic
    replays). Silence between utterances is never transcribed (``preroll_s`` is kept before
    speech). The buffer is cut at the last committed word past ``trim_buffer_s`` and never
    exceeds ``max_buffer_s`` (beyond it the older hypothesis is committed and unheard audio
    dropped, counted in ``dropped_audio_s``). ``transcriptions`` and ``closes`` count passes
    and closed utterances."""

    def __init__(self, model: Transcriber, config: AsrConfig | None = None) -> None:
        self.model = model
        self.config = config or AsrConfig()
        self._inbox = AudioInbox(self.config.max_chunks, self.config.max_gap_s)
        self._book = CommitBook(self.config)
        self.dropped_audio_s = 0.0
        self.transcriptions = 0
        self.closes = 0  # utterances closed so far
        self._start_run(0.0)

    def set_policy(self, config: AsrConfig) -> None:
        """Streams by ``config`` from the next call on, keeping the buffer and the commits (a
        session under load changes to a cheaper policy, `realtime.load`; from the ASR's own
        thread only). ValueError when ``config`` bounds the input otherwise (``max_chunks``,
        ``max_gap_s``): those are fixed when the stream starts."""
        if (config.max_chunks, config.max_gap_s) != (self.config.max_chunks,
                                                     self.config.max_gap_s):
            raise ValueError("a policy change keeps max_chunks and max_gap_s")
        self.config = config
        self._book.use(config)

    # ---- input -------------------------------------------------------------------------
    def insert_audio_chunk(self, chunk: AudioChunk) -> None:
        """Queue a chunk; raises ValueError for one that is not 16 kHz mono float32."""
        if self._inbox.put(chunk):
            log.debug("ASR input queue full: dropped its oldest chunk (%d so far)", self.drops)

    @property
    def drops(self) -> int:
        """Chunks dropped from the full input queue."""
        return self._inbox.drops

    def _start_run(self, t0_s: float) -> None:
        self._audio = np.zeros(0, np.float32)
        self._buf_t0_s = t0_s
        self._silero = SileroStream()
        self._vad_t_s = t0_s  # session time up to which VAD has scored
        self._in_speech = False
        self._utterance = False
        self._speech_end_s = t0_s
        self._book.tentative = []
        self._hyp_end_s = float("-inf")  # audio end of the latest transcription
        self._new_audio_s = 0.0
        self._new_speech_s = 0.0

    @property
    def _end_s(self) -> float:
        return self._buf_t0_s + len(self._audio) / RATE_HZ

    def _append(self, run: AudioRun, committed: list[Word]) -> None:
        """Add a run in pieces of at most ``append_piece_s``, closing the utterance as soon
        as VAD hears enough silence: audio that piled up while Whisper was busy still splits
        into its utterances instead of growing one buffer."""
        cfg = self.config
        if run.restart:
            committed += self._close()
            self._start_run(run.t0_s)
        piece = int(round(cfg.append_piece_s * RATE_HZ))
        for i in range(0, len(run.samples), piece):
            samples = run.samples[i : i + piece]
            self._audio = np.concatenate([self._audio, samples])
            self._new_audio_s += len(samples) / RATE_HZ
            self._vad(samples)
            if not self._utterance:
                self._cut_to(max(self._buf_t0_s, self._end_s - cfg.preroll_s))
            elif self._vad_t_s - self._speech_end_s >= cfg.silence_close_s:
                committed += self._close()

    def _vad(self, samples: np.ndarray) -> None:
        probs = self._silero.push(samples)
        n = len(probs)
        thr = self.config.vad_threshold
        for i, p in enumerate(probs):
            t0 = self._vad_t_s + i * VAD_WINDOW / RATE_HZ
            if p >= thr or (self._in_speech and p >= thr - self.config.vad_hysteresis):
                if not self._in_speech and not self._utterance:
                    self._utterance = True
                    self._cut_to(max(self._buf_t0_s, t0 - self.config.preroll_s))
                self._in_speech = True
                self._new_speech_s += VAD_WINDOW / RATE_HZ
                self._speech_end_s = t0 + VAD_WINDOW / RATE_HZ
            else:
                self._in_speech = False
        self._vad_t_s += n * VAD_WINDOW / RATE_HZ

    def _cut_to(self, t_s: float) -> None:
        """Drop buffered audio before session time ``t_s``."""
        k = int(round((t_s - self._buf_t0_s) * RATE_HZ))
        if k > 0:
            k = min(k, len(self._audio))
            self._audio = self._audio[k:]
            self._buf_t0_s += k / RATE_HZ

    # ---- processing --------------------------------------------------------------------
    def process_iter(self, now_s: float | None = None) -> AsrUpdate:
        start = perf_s()
        closes = self.closes
        committed = self._drain()
        cfg = self.config
        new_s = self._new_speech_s if cfg.speech_gated else self._new_audio_s
        if self._utterance and new_s >= cfg.min_chunk_s:
            committed += self._step()
        return self._update(committed, start, now_s, self.closes > closes)

    def finish(self, now_s: float | None = None) -> AsrUpdate:
        """Process everything queued, close the utterance, commit all that remains."""
        start = perf_s()
        committed = self._drain()
        self._inbox.end()
        committed += self._close()
        return self._update(committed, start, now_s, True)

    def close_if_quiet(self, now_s: float) -> AsrUpdate | None:
        """Close an utterance whose audio stopped coming: its newest audio was captured at
        least ``max_gap_s`` before session time ``now_s``. None when nothing changed (no
        utterance open, or audio came more recently)."""
        start = perf_s()
        committed = self._drain()
        closing = self._utterance and now_s - self._inbox.captured_at_s >= self.config.max_gap_s
        if closing:
            committed += self._close()
        elif not committed:
            return None
        return self._update(committed, start, now_s, closing)

    def _drain(self) -> list[Word]:
        committed: list[Word] = []
        for run in self._inbox.drain():
            self._append(run, committed)
        return committed

    def _update(self, committed: list[Word], start: float, now_s: float | None,
                closed: bool) -> AsrUpdate:
        compute_s = perf_s() - start
        done = self._inbox.captured_at_s if now_s is None else now_s + compute_s
        return AsrUpdate(
            committed=tuple(committed),
            tentative=tuple(self._book.tentative),
            computed_at_s=done,
            compute_s=compute_s,
            audio_end_s=self._end_s,
            closed=closed,
        )

    def _step(self) -> list[Word]:
        out = self._book.agree(self._transcribe(), self._end_s)
        duration = len(self._audio) / RATE_HZ
        if duration > self.config.trim_buffer_s and self._book.end_s > self._buf_t0_s:
            self._cut_to(self._book.end_s)
        if len(self._audio) / RATE_HZ > self.config.max_buffer_s:
            out += self._force_trim()
        return out

    def _force_trim(self) -> list[Word]:
        """The buffer is over max_buffer_s: commit what ends ``force_keep_s`` or more before
        its end, cut it to ``trim_buffer_s``."""
        out = self._book.commit_ending_by(self._end_s - self.config.force_keep_s)
        cut = max(self._book.end_s, self._end_s - self.config.trim_buffer_s)
        lost = max(0.0, cut - max(self._book.end_s, self._buf_t0_s))
        self.dropped_audio_s += lost
        self._cut_to(cut)
        if lost > 0:
            self._book.forget_before(cut)
        return out

    def _close(self) -> list[Word]:
        """Commit every word of the current utterance and drop its audio."""
        if not self._utterance:
            return []
        cfg = self.config
        if self._hyp_end_s >= self._speech_end_s + cfg.close_context_s:
            words = self._book.tentative  # the latest hypothesis heard the whole utterance
        else:
            context_s = max(cfg.close_min_context_s, cfg.close_context_s)
            words = self._transcribe(until_s=self._speech_end_s + context_s)
        out = self._book.close(words, self._speech_end_s)
        self.closes += 1
        self._utterance = False
        self._hyp_end_s = float("-inf")
        self._cut_to(max(self._buf_t0_s, self._end_s - cfg.preroll_s))
        self._new_audio_s = self._new_speech_s = 0.0
        return out

    def _transcribe(self, until_s: float | None = None) -> list[Word]:
        """A pass over the buffer (up to ``until_s``): the heard words, less repeats of
        committed ones and Whisper's loops."""
        cfg = self.config
        end = len(self._audio)
        if until_s is not None:
            end = min(end, max(0, int(round((until_s - self._buf_t0_s) * RATE_HZ))))
        audio = self._audio[:end]
        self._new_audio_s = self._new_speech_s = 0.0
        if end < VAD_WINDOW:
            return []
        segments = self.model.transcribe(audio, prompt=self._book.prompt(self._buf_t0_s),
                                         beam_size=cfg.beam_size,
                                         min_window_s=cfg.encoder_window_s,
                                         min_tail_s=cfg.min_tail_s)
        self.transcriptions += 1
        t0, t_end = self._buf_t0_s, self._buf_t0_s + end / RATE_HZ
        self._hyp_end_s = t_end
        words = []
        for seg in segments:
            if (seg.no_speech_prob > cfg.no_speech_threshold
                    and seg.avg_logprob < cfg.no_speech_logprob):
                continue
            for w in seg.words:
                text = w.text.strip()
                if text and normalize_word(text) and t0 + w.start_s < t_end - cfg.unheard_margin_s:
                    a = max(t0 + w.start_s, t0)  # before t_end: checked above
                    b = min(max(t0 + w.end_s, a), t_end)
                    words.append(Word(a, b, text, False, w.probability))
        words = drop_squeezed_repeats(words, cfg.loop_max_words, cfg.squeezed_s_per_word)
        return self._book.fresh(words)
