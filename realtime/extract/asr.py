"""Streaming speech recognition: faster-whisper, two named commit policies and Silero VAD.

`load_whisper` loads a bundled CTranslate2 Whisper model once per process (int8 on the CPU,
int8_float16 with CTranslate2 on CUDA when the engine runs on a GPU) and shares it between
sessions, wrapped in a `WhisperTranscriber` (the typed seam between the streaming policy and
faster-whisper; a test passes any `Transcriber`; sessions on shared models call it through
`realtime.serving.executor.SharedTranscriber`, which batches their calls with
`realtime.extract.whisper_batch`). `StreamingASR` is a push/poll stage, one per session:

- ``insert_audio_chunk(chunk)`` queues audio as sources deliver it (16 kHz mono float32;
  anything else is a ValueError; gaps and overlaps are handled by
  `realtime.extract.audio_runs`), cheap, never blocks;
- ``process_iter(now_s=None)`` runs Silero VAD over the new audio and, once an utterance has
  ``min_chunk_s`` of new speech (``speech_gated``) or new audio, re-transcribes the
  utterance buffer. A word is committed when two consecutive hypotheses agree on it (the
  same word after `realtime.extract.text.normalize_word`, start times within
  ``agree_tolerance_s``): the longest common prefix is committed, the rest stays tentative.
  When VAD hears ``silence_close_s`` of silence after speech, the utterance is closed: all of
  its words are committed at once (no second pass) and the buffer is dropped. Silence
  between utterances is never transcribed (only a short pre-roll is kept);
- ``finish(now_s=None)`` closes the last utterance and commits whatever remains;
- ``close_if_quiet(now_s)``: the caller polled and no audio came. When the newest audio was
  captured ``max_gap_s`` or more before ``now_s`` (a microphone stopped or unplugged
  mid-sentence: no silence will ever arrive to close the utterance), the open utterance is
  closed and its words committed, the same decision a chunk arriving after that gap makes.

The policies (`ASR_POLICIES`, chosen by name: ``python -m realtime --asr-policy``,
`Engine.load(asr_policy=)`; the benchmark and the spoken-MOSI replay compare them):

- ``pause`` (default): a pass per 0.5 s of *speech* (VAD), never for silence or the tail of
  a pause, and an utterance closes after 0.25 s of silence. Words of short sentences are
  committed by the close, a quarter second after the sentence ends; inside sentences and in
  long runs of speech LocalAgreement-2 commits a word once two passes 0.5 s of speech apart
  agree on it and it ends at least ``commit_margin_s`` (0.5 s) before the buffer's end; a
  close takes the last pass's words only when that pass heard ``close_context_s`` (0.25 s)
  past the speech, else it transcribes once more. The margin and the close's context
  matter: without them the 0.5 s hop committed Whisper's first guesses at words with
  little audio after them ("I'll be getting started" for "the beginning started"), 1.6
  WER points more than ``sparse`` on 300 spoken-MOSI segments; with them 0.6. The short hop
  is affordable because passes are cheap: a 6 s encoder window, decoding capped by
  `decode_tokens` (before the cap, a pass now and then looped for 1-2.5 s), no decoding of
  a remainder under ``min_tail_s`` (0.3 s) after a window's last word (faster-whisper
  decoded one in most passes, nearly always for no word), and CTranslate2 on one thread
  (`load_whisper`; two were slower and dearer on this 2-core machine).
  Figures (README, "Latency"; benchmarks/results/realtime_bench_policies10min.json,
  asr_policies_spoken_mosi_300.json): at real speed on the demo, words committed p50 / p95
  0.97 / 1.59 s after they are spoken against 1.74 / 3.04 s with ``sparse``, at 0.14
  against 0.04 ASR CPU-seconds per media second (the whole process 0.48 against 0.39); on
  300 spoken-MOSI segments WER 0.362 against 0.356 and the same live Acc2 (McNemar
  p = 1.0).
- ``sparse`` (the previous default): the same with a pass per 1.5 s of speech. Kept for
  machines that run many sessions: it costs a third of the ASR CPU; words arrive later
  (inside a sentence they wait for its end), and in long unbroken speech much later.
- ``agreement`` (the default before that): a pass per 1.0 s of new audio, speech or not,
  closes after 0.5 s of silence. Kept as the plain LocalAgreement-2 reference of
  whisper_streaming that the benchmarks compare with.

Measured and not taken (benchmarks/results/realtime_bench_notes.md): committing words that
end a margin before the buffer's end without a second pass (0.3-0.6 s margins) cut the
demo's commit delay by 0.3 s but misheard words cut at the buffer's end on continuous speech
("best of times" -> "mist of times", WER 0.12 -> 0.33 on a repeated-phrase passage); an
encoder window of 1-3 s instead of 6 s made Whisper loop and hallucinate (more CPU, WER
0.07 -> 0.20); trimming the buffer at every commit dropped words that Whisper then skipped
as already prompted.

Bookkeeping: a hypothesis word repeats a committed one when its middle lies before the last
committed word's end, or when it and its neighbours match the committed tail in text *and*
start within ``repeat_tolerance_s`` of those words (a phrase the speaker says again is new),
or when two or more of them match the tail squeezed into less than 0.1 s a word (Whisper
replaying the committed phrase, its prompt, at the start of the buffer: nobody says five
words in an instant).

Word times are session seconds (buffer start + Whisper's word time). The buffer is cut at
the last committed word once it exceeds ``trim_buffer_s`` and never exceeds ``max_buffer_s``
(beyond that the hypothesis is committed and older audio dropped, counted in
``dropped_audio_s``), so one transcription costs at most one Whisper window.

Timing: the stage never reads the clock. An update's ``computed_at_s`` is ``now_s`` (the
caller's session time when it called) plus the measured compute time; without ``now_s`` it is
the capture time of the newest audio processed (deterministic replays).
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
    faster-whisper's own steps (the words are those of `WhisperModel.transcribe`) with the
    three changes below; sessions on shared models batch the same requests.

    Decoding is capped at `decode_tokens` of the encoder window (8 tokens a second): on a
    short streaming buffer Whisper now and then loops ("the the the ...", ". . .") until its
    448-token limit, and such a pass took 1-2.5 s against 0.1 s for a normal one. On the
    demo recording the cap cut the streaming ASR's CPU by 40-60 % with the same words.

    The encoder window: faster-whisper pads every input to 30 s before the encoder, whose
    cost is then the same for 1 s as for 30 s of audio. With ``min_window_s`` a call lets the
    encoder see only the audio plus 1 s, in whole seconds, at least ``min_window_s`` and at
    most 30 s (3-4x less CPU per call with tiny.en on a streaming buffer; on the demo
    sentences the WER was 0.09 against 0.13 with the full padded window).

    The remainder: after a window whose decoding does not end the clip, faster-whisper
    decodes what follows its last word in a window of its own; with ``min_tail_s`` a
    remainder shorter than that is left alone (`AsrConfig.min_tail_s`).
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
    threads) and shared; int8 on CPU, int8_float16 on CUDA.

    cpu_threads: CTranslate2's threads per call on the CPU. One, because on this 2-core
    machine a streaming pass was both faster and cheaper on one thread than on two: a 2.5 s
    buffer in its 6 s window took 57 ms of wall and CPU time against 134 ms wall and 140 ms
    CPU, and a 10 s clip in its 11 s window 0.21 s against 0.37 s wall (0.42 s CPU). Decoding
    is a token at a time on small matrices, where two threads wait on each other; even a
    whole 30 s window gained only 8 % of wall time from the second thread, for 28 % more CPU.
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
    """Streaming policy (seconds unless named otherwise). The defaults are the ``pause``
    policy; `ASR_POLICIES` names it and the older ``sparse`` and ``agreement`` policies."""

    min_chunk_s: float = 0.5  # new utterance audio (speech if speech_gated) before a pass
    silence_close_s: float = 0.25  # VAD silence after speech that closes an utterance
    vad_threshold: float = 0.5  # Silero speech probability (hysteresis: -0.15 to leave)
    preroll_s: float = 0.3  # audio kept before the detected speech onset
    trim_buffer_s: float = 6.0  # above this, cut the buffer at the last committed word
    max_buffer_s: float = 15.0  # hard bound on the transcribed buffer
    agree_tolerance_s: float = 1.0  # start times of agreeing words may differ this much
    repeat_tolerance_s: float = 0.35  # a word matching a committed one in text that starts
    # this close to it is that word again (Whisper re-timing it), not a repetition
    beam_size: int = 1
    prompt_chars: int = 200  # committed text before the buffer, as Whisper's prompt
    no_speech_threshold: float = 0.6  # with avg_logprob < -1: the segment is dropped
    max_gap_s: float = 1.0  # longer input gaps close the utterance
    encoder_window_s: float | None = 6.0  # shortest encoder window; None: Whisper's 30 s
    max_chunks: int = 512  # queued input chunks before the oldest is dropped
    speech_gated: bool = True  # count only VAD speech (not all audio) towards min_chunk_s
    commit_margin_s: float = 0.5  # agreed words ending closer than this to the buffer's
    # end wait for a later pass (Whisper's first guess at a word needs the audio after it)
    close_context_s: float = 0.25  # a close reuses the latest hypothesis when it heard this
    # much audio after the speech ended, else transcribes once more
    min_tail_s: float = 0.3  # Whisper does not decode a remainder of the buffer after its
    # last word that is shorter than this: a pause, or the start of a word cut by the
    # buffer's end, that a step would not commit yet (within commit_margin_s of the end); a
    # close transcribes at least 0.2 s past the speech, so at most 0.1 s of speech is there


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


def _squeezed(run: list[Word]) -> bool:
    """Said in less than 0.1 s a word: faster than anyone speaks (a loop's copy, or a
    replayed prompt, that Whisper timed into an instant)."""
    return run[-1].t1_s - run[0].t0_s < 0.1 * len(run)


def drop_squeezed_repeats(words: list[Word]) -> list[Word]:
    """Whisper's loops: a run of 2-10 words said again right after itself but squeezed into
    less than 0.1 s a word ("... before us. We can nothing before us." with the second copy
    at one instant) was not said; it is dropped, as often as it repeats. A phrase the
    speaker really says twice takes the time of saying it and is kept."""
    out: list[Word] = []
    for w in words:
        out.append(w)
        for n in range(10, 1, -1):
            if len(out) >= 2 * n:
                copy, before = out[-n:], out[-2 * n : -n]
                if _squeezed(copy) and all(
                        normalize_word(a.text) == normalize_word(b.text)
                        for a, b in zip(copy, before, strict=True)):
                    del out[-n:]
                    break
    return out


class StreamingASR:
    def __init__(self, model: Transcriber, config: AsrConfig | None = None) -> None:
        self.model = model
        self.config = config or AsrConfig()
        self._inbox = AudioInbox(self.config.max_chunks, self.config.max_gap_s)
        self._committed: deque[Word] = deque(maxlen=64)
        self._committed_end_s = float("-inf")
        self.dropped_audio_s = 0.0
        self.transcriptions = 0
        self.closes = 0  # utterances closed so far
        self._start_run(0.0)

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
        self._prev: list[Word] = []
        self._hyp_end_s = float("-inf")  # audio end of the latest transcription
        self._new_audio_s = 0.0
        self._new_speech_s = 0.0

    @property
    def _end_s(self) -> float:
        return self._buf_t0_s + len(self._audio) / RATE_HZ

    def _append(self, run: AudioRun, committed: list[Word]) -> None:
        """Add a run in pieces of at most 0.1 s, closing the utterance as soon as VAD hears
        enough silence: audio that piled up while Whisper was busy still splits into its
        utterances instead of growing one buffer."""
        if run.restart:
            committed += self._close()
            self._start_run(run.t0_s)
        piece = RATE_HZ // 10
        for i in range(0, len(run.samples), piece):
            samples = run.samples[i : i + piece]
            self._audio = np.concatenate([self._audio, samples])
            self._new_audio_s += len(samples) / RATE_HZ
            self._vad(samples)
            if not self._utterance:
                self._cut_to(max(self._buf_t0_s, self._end_s - self.config.preroll_s))
            elif self._vad_t_s - self._speech_end_s >= self.config.silence_close_s:
                committed += self._close()

    def _vad(self, samples: np.ndarray) -> None:
        probs = self._silero.push(samples)
        n = len(probs)
        thr = self.config.vad_threshold
        for i, p in enumerate(probs):
            t0 = self._vad_t_s + i * VAD_WINDOW / RATE_HZ
            if p >= thr or (self._in_speech and p >= thr - 0.15):
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
            tentative=tuple(self._prev),
            computed_at_s=done,
            compute_s=compute_s,
            audio_end_s=self._end_s,
            closed=closed,
        )

    def _step(self) -> list[Word]:
        words = self._transcribe()
        agreed = 0
        for old, new in zip(self._prev, words, strict=False):
            same_text = normalize_word(old.text) == normalize_word(new.text)
            if not same_text or abs(old.t0_s - new.t0_s) > self.config.agree_tolerance_s:
                break
            agreed += 1
        while agreed and words[agreed - 1].t1_s > self._end_s - self.config.commit_margin_s:
            agreed -= 1  # too close to the buffer's end: the next pass may still change it
        out = self._commit(words[:agreed])
        self._prev = words[agreed:]
        duration = len(self._audio) / RATE_HZ
        if duration > self.config.trim_buffer_s and self._committed_end_s > self._buf_t0_s:
            self._cut_to(self._committed_end_s)
        if len(self._audio) / RATE_HZ > self.config.max_buffer_s:
            out += self._force_trim()
        return out

    def _force_trim(self) -> list[Word]:
        """The buffer is over max_buffer_s: commit what is older than the last second, cut."""
        keep_from = self._end_s - 1.0
        old = [w for w in self._prev if w.t1_s <= keep_from]
        out = self._commit(old)
        self._prev = self._prev[len(old) :]
        cut = max(self._committed_end_s, self._end_s - self.config.trim_buffer_s)
        lost = max(0.0, cut - max(self._committed_end_s, self._buf_t0_s))
        self.dropped_audio_s += lost
        self._cut_to(cut)
        if lost > 0:
            self._prev = [w for w in self._prev if w.t0_s >= cut]
        return out

    def _close(self) -> list[Word]:
        """Commit every word of the current utterance and drop its audio."""
        if not self._utterance:
            return []
        if self._hyp_end_s >= self._speech_end_s + self.config.close_context_s:
            words = self._prev  # the latest hypothesis already heard the whole utterance
        else:
            context_s = max(0.2, self.config.close_context_s)
            words = self._transcribe(until_s=self._speech_end_s + context_s)
        # Whisper likes to end on an invented "Thank you." in the padding after the speech:
        # a word that starts in the last 0.1 s of speech (or later) cannot be real.
        while words and words[-1].t0_s >= self._speech_end_s - 0.1:
            words = words[:-1]
        out = self._commit(words)
        self.closes += 1
        self._prev = []
        self._utterance = False
        self._hyp_end_s = float("-inf")
        self._cut_to(max(self._buf_t0_s, self._end_s - self.config.preroll_s))
        self._new_audio_s = self._new_speech_s = 0.0
        return out

    def _commit(self, words: list[Word]) -> list[Word]:
        """Mark words committed. Start times strictly increase along the stream (Whisper can
        give two words the same start; the later one is moved 1 ms on)."""
        out = []
        for w in words:
            last = self._committed[-1].t0_s if self._committed else float("-inf")
            t0 = max(w.t0_s, last + 0.001)
            done = Word(t0, max(w.t1_s, t0), w.text, True, w.probability)
            self._committed.append(done)
            self._committed_end_s = max(self._committed_end_s, done.t1_s)
            out.append(done)
        return out

    def _transcribe(self, until_s: float | None = None) -> list[Word]:
        cfg = self.config
        end = len(self._audio)
        if until_s is not None:
            end = min(end, max(0, int(round((until_s - self._buf_t0_s) * RATE_HZ))))
        audio = self._audio[:end]
        self._new_audio_s = self._new_speech_s = 0.0
        if end < VAD_WINDOW:
            return []
        # Only text whose audio is no longer in the buffer: prompting with words that are
        # still in the audio makes Whisper skip them and smear the word times.
        before = [w.text for w in self._committed if w.t1_s <= self._buf_t0_s + 0.05]
        prompt = " ".join(before)[-cfg.prompt_chars :].strip()
        segments = self.model.transcribe(audio, prompt=prompt or None, beam_size=cfg.beam_size,
                                         min_window_s=cfg.encoder_window_s,
                                         min_tail_s=cfg.min_tail_s)
        self.transcriptions += 1
        t0, t_end = self._buf_t0_s, self._buf_t0_s + end / RATE_HZ
        self._hyp_end_s = t_end
        words = []
        for seg in segments:
            if seg.no_speech_prob > cfg.no_speech_threshold and seg.avg_logprob < -1.0:
                continue
            for w in seg.words:
                text = w.text.strip()
                # a word Whisper places at or after the end of the audio was not heard: it
                # is its guess of what comes next, often the phrase before said again
                if text and normalize_word(text) and t0 + w.start_s < t_end - 0.01:
                    a = max(t0 + w.start_s, t0)  # before t_end: checked above
                    b = min(max(t0 + w.end_s, a), t_end)
                    words.append(Word(a, b, text, False, w.probability))
        return self._fresh(drop_squeezed_repeats(words))

    def _fresh(self, words: list[Word]) -> list[Word]:
        """Drop words that repeat what is already committed: by time, then by text where the
        text matches the committed tail *and* each word starts within ``repeat_tolerance_s``
        of the committed word it repeats (a phrase, or a word, the speaker says again is
        new)."""
        words = [w for w in words if (w.t0_s + w.t1_s) / 2 > self._committed_end_s - 0.05]
        if words and self._committed and words[0].t0_s < self._committed_end_s + 1.0:
            tol = self.config.repeat_tolerance_s
            tail = list(self._committed)
            for n in range(min(5, len(tail), len(words)), 0, -1):
                pairs = list(zip(tail[-n:], words[:n], strict=True))
                if not all(normalize_word(c.text) == normalize_word(w.text) for c, w in pairs):
                    continue
                # the same words at the same times, or squeezed into an instant where
                # nobody could say them (Whisper replaying its prompt at the buffer start)
                if (n >= 2 and _squeezed(words[:n])) or all(abs(c.t0_s - w.t0_s) <= tol
                                                            for c, w in pairs):
                    return words[n:]
        return words
