"""Whisper for one or many callers: batched encoder, decoder and alignment calls, each
request getting exactly what faster-whisper's own `WhisperModel.transcribe` gives it alone
(with ``min_tail_s=0``; above it, what the single call gives without its short remainders).

`WhisperBatch(model, prompt_tokens=None).run(requests)`:

* in: `TranscribeRequest`s: ``audio`` 16 kHz mono float32 samples (1-D, finite),
  ``prompt`` (text said before, or None), ``beam_size`` (1: greedy), ``min_window_s`` (the
  shortest encoder window, seconds; None: Whisper's 30 s), ``min_tail_s`` (seconds; a
  remainder after a window's last word shorter than this is not decoded again; 0: every
  remainder, as faster-whisper does; the streaming ASR passes 0.3 s because it would not
  commit a word from it yet).
* out: in request order, each request's `RecognizedSegment`s (words with ``start_s`` /
  ``end_s`` in seconds from the start of its audio, probabilities, the segment's
  ``no_speech_prob`` and ``avg_logprob``), or the exception that made that request fail.
* options: English, temperature 0, word times, no conditioning on previous text, no VAD;
  every other value is read from `WhisperModel.transcribe`'s defaults (faster-whisper 1.2.1,
  pinned), so a batch and a single call decode alike.
* batching: requests are grouped, never padded (padding changes Whisper's answer): one
  encoder call per encoder window size (`encoder_frames`: audio + 1 s in whole seconds,
  between ``min_window_s`` and 30 s), one decoder call per prompt token count (CTranslate2
  needs the same prompt length in a call; ``prompt_tokens=N`` cuts every prompt to its last
  N tokens, and each request then gets what the single call gives for the cut prompt), one
  alignment call per group. Decoding is capped at `decode_tokens` of the window.
* errors: a request fails alone, its exception returned in its place: audio that is not
  1-D, non-empty, finite float32 gives a `ValueError`; when a batched call raises, its group
  is rerun one request at a time so that only the failing requests fail. ``prompt_tokens <
  1`` (`WhisperBatch`) and a negative ``min_tail_s`` (`TranscribeRequest`) raise
  `ValueError` at construction.
* threads: `run` is synchronous on the caller's thread; a `WhisperBatch` is thread-safe as
  the model is (CTranslate2 queues concurrent calls). ``encoder_calls`` / ``decoder_calls``
  count calls since creation, for reports.

Callers: a session's own `realtime.extract.asr.WhisperTranscriber` runs one request at a
time through it; sessions on shared models are batched by
`realtime.serving.executor.SharedTranscriber`. The module also holds what both need of
Whisper: the word and segment types, `encoder_frames`, `decode_tokens` and `ModelView`.
How each step follows faster-whisper, why windows are not padded and what batching gains on
a CPU: docs/notes/whisper_batch.md.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens
from faster_whisper.utils import get_end

from realtime.sources.audio import RATE_HZ

WHISPER_WINDOW_S = 30.0  # Whisper's encoder window
MEL_FRAMES_PER_S = 100


@dataclass(frozen=True)
class RecognizedWord:
    """A word of a transcription; times in seconds from the start of the transcribed audio."""

    start_s: float
    end_s: float
    text: str
    probability: float


@dataclass(frozen=True)
class RecognizedSegment:
    """One decoded segment: its words and Whisper's confidence in it."""

    words: tuple[RecognizedWord, ...]
    no_speech_prob: float
    avg_logprob: float


def encoder_frames(samples: int, min_window_s: float | None) -> int:
    """The encoder window, in mel frames, of a clip of ``samples`` (16 kHz): the audio plus
    1 s in whole seconds, at least ``min_window_s`` and at most Whisper's 30 s (None: 30 s).
    Every request of `WhisperBatch` (single calls and batches alike) uses this one rule."""
    if min_window_s is None:
        return int(WHISPER_WINDOW_S * MEL_FRAMES_PER_S)
    window_s = max(min_window_s, np.ceil(samples / RATE_HZ + 1.0))
    return int(min(WHISPER_WINDOW_S, window_s) * MEL_FRAMES_PER_S)


DECODE_TOKENS_PER_S = 8  # tokens one decoding may produce per second of encoder window
DECODE_TOKENS_MAX = 220  # with the longest prompt Whisper keeps (223 tokens and 4 special
# ones) this stays within its 448-token context


def decode_tokens(frames: int) -> int:
    """The most tokens one decoding of an encoder window of ``frames`` mel frames may
    produce: `DECODE_TOKENS_PER_S` a second of window (48 for the streaming policies' 6 s
    window; speech is about 4 tokens a second), at most `DECODE_TOKENS_MAX`.
    Every request of `WhisperBatch` uses this one rule."""
    return min(DECODE_TOKENS_MAX, int(DECODE_TOKENS_PER_S * frames / MEL_FRAMES_PER_S))


class ModelView(WhisperModel):
    """A view of a loaded `WhisperModel` for one call: subclasses override a method or two
    (`_PresetAlignment`: `find_alignment`) and every other attribute is the loaded model's.
    Nothing is loaded, copied or changed."""

    _own = ("_loaded",)  # attributes a view sets itself (never looked up in the model)

    def __init__(self, loaded: WhisperModel) -> None:  # no super(): shares the loaded one
        self._loaded = loaded

    def __getattr__(self, name: str):
        if name in type(self)._own:  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self._loaded, name)

# The single call's defaults (WhisperModel.transcribe's keyword defaults), read from the
# library rather than restated, so both paths decode with the same options.
_DEFAULTS = {name: p.default
             for name, p in inspect.signature(WhisperModel.transcribe).parameters.items()}


@dataclass(frozen=True)
class TranscribeRequest:
    """One clip to transcribe: 16 kHz mono float32 samples; prompt: text said before it (or
    None); beam_size: 1 is greedy; min_window_s: the shortest encoder window in seconds (None:
    Whisper's 30 s); min_tail_s: a remainder after a window's last word shorter than this (in
    seconds) is not decoded (0: every remainder), as `realtime.extract.asr.Transcriber`
    takes them."""

    audio: np.ndarray
    prompt: str | None = None
    beam_size: int = 1
    min_window_s: float | None = None
    min_tail_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.min_tail_s >= 0.0:
            raise ValueError(f"min_tail_s must be >= 0 seconds, got {self.min_tail_s}")


@dataclass
class _Job:
    """A request on its way through the rounds (frames are mel frames, 10 ms each)."""

    request: TranscribeRequest
    features: np.ndarray  # (n_mels, frames) log-mel of the whole clip
    window: int  # this request's own encoder window
    previous: list[int]  # prompt tokens for the next decoded window
    seek: int = 0
    windows: int = 0  # encoder windows decoded so far
    last_speech_s: float = 0.0
    segments: list[RecognizedSegment] = field(default_factory=list)
    error: Exception | None = None

    @property
    def content_frames(self) -> int:
        return self.features.shape[-1] - 1

    @property
    def done(self) -> bool:
        if self.error is not None or self.seek >= self.content_frames:
            return True
        rest_s = (self.content_frames - self.seek) / MEL_FRAMES_PER_S
        return self.windows > 0 and rest_s < self.request.min_tail_s


class _PresetAlignment(ModelView):
    """The loaded model whose `find_alignment` returns one request's row of a batched
    alignment, so faster-whisper's `add_word_timestamps` post-processes it unchanged."""

    _own = ("_loaded", "_alignment")

    def __init__(self, loaded: WhisperModel, alignment: list[dict]) -> None:
        super().__init__(loaded)
        self._alignment = alignment

    def find_alignment(self, *_args: object, **_kwargs: object) -> list[list[dict]]:
        return [self._alignment]


class WhisperBatch:
    """Runs batches of `TranscribeRequest` on a loaded `WhisperModel` (see the module doc).
    prompt_tokens: cut every prompt to its last N tokens (None: whole prompts, as the single
    call). Thread-safe as the model is (CTranslate2 queues concurrent calls); the call
    counters are for reports."""

    def __init__(self, model: WhisperModel, prompt_tokens: int | None = None) -> None:
        if prompt_tokens is not None and prompt_tokens < 1:
            raise ValueError(f"prompt_tokens must be >= 1 or None, got {prompt_tokens}")
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                                   task="transcribe", language="en")
        self._suppress = get_suppressed_tokens(self.tokenizer, list(_DEFAULTS["suppress_tokens"]))
        self._max_initial = int(round(_DEFAULTS["max_initial_timestamp"]
                                      / model.time_precision))
        self.encoder_calls = self.decoder_calls = 0  # counts since creation

    def run(self, requests: Sequence[TranscribeRequest]
            ) -> list[list[RecognizedSegment] | Exception]:
        """Each request's segments (what `WhisperTranscriber.transcribe` returns for it), or
        the exception that made that request fail, in request order."""
        jobs = [self._job(r) for r in requests]
        while active := [j for j in jobs if not j.done]:
            windows: dict[int, list[_Job]] = {}
            for job in active:
                windows.setdefault(job.window, []).append(job)
            for group in windows.values():
                self._isolated(group)
        return [j.error if j.error is not None else j.segments for j in jobs]

    def _isolated(self, jobs: list[_Job]) -> None:
        """`_round`; when it fails, each job alone, so that only the failing ones fail (a
        round changes its jobs only once it has run to its end)."""
        try:
            self._round(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].error = exc
                return
            for job in jobs:
                try:
                    self._round([job])
                except Exception as alone:
                    job.error = alone

    # ---- steps --------------------------------------------------------------------------
    def _job(self, request: TranscribeRequest) -> _Job:
        audio = np.asarray(request.audio)
        job = _Job(request, np.zeros((1, 0), np.float32), 0, [])
        if audio.ndim != 1 or audio.dtype != np.float32 or not len(audio) \
                or not np.all(np.isfinite(audio)):
            job.error = ValueError("Whisper needs 1-D finite float32 samples at 16 kHz, got "
                                   f"{audio.dtype} of shape {audio.shape}")
            return job
        try:
            job.features = self.model.feature_extractor(audio)
            job.window = encoder_frames(len(audio), request.min_window_s)
            if request.prompt:
                job.previous = self.tokenizer.encode(" " + request.prompt.strip())
                if self.prompt_tokens is not None:
                    job.previous = job.previous[-self.prompt_tokens :]
        except Exception as exc:
            job.error = exc
        return job

    def _round(self, jobs: list[_Job]) -> None:
        """The next encoder window of every job (all of one window size): encode, decode,
        split, align, post-process."""
        model, tok = self.model, self.tokenizer
        max_frames = model.feature_extractor.nb_max_frames
        sizes = [min(max_frames, j.content_frames - j.seek) for j in jobs]
        stacked = np.stack([pad_or_trim(j.features[:, j.seek : j.seek + n])[:, : j.window]
                            for j, n in zip(jobs, sizes, strict=True)])
        encoded = model.encode(stacked)
        self.encoder_calls += 1
        results = self._generate(jobs, encoded)
        decoded, texts = [], []
        for job, size, result in zip(jobs, sizes, results, strict=True):
            tokens = result.sequences_ids[0]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            if (result.no_speech_prob > _DEFAULTS["no_speech_threshold"]
                    and not avg_logprob > _DEFAULTS["log_prob_threshold"]):
                decoded.append(None)  # silence: on to the next window, the prompt kept
                texts.append([])
                continue
            segments, seek, single_ending = model._split_segments_by_timestamps(
                tokenizer=tok, tokens=tokens, time_offset=job.seek / model.frames_per_second,
                segment_size=size, segment_duration=size / model.frames_per_second,
                seek=job.seek)
            decoded.append((segments, seek, single_ending, result.no_speech_prob, avg_logprob))
            texts.append(list(itertools.chain.from_iterable(
                [t for t in s["tokens"] if t < tok.eot] for s in segments)))
        alignments = model.find_alignment(tok, texts, encoded, sizes)  # one call, all rows
        outcomes = [(job.seek + size, job.last_speech_s, job.previous, []) if d is None
                    else self._words(job, size, alignment, *d)
                    for job, size, alignment, d in zip(jobs, sizes, alignments, decoded,
                                                       strict=True)]
        for job, (seek, last_speech_s, previous, segments) in zip(jobs, outcomes, strict=True):
            job.seek, job.last_speech_s, job.previous = seek, last_speech_s, previous
            job.windows += 1
            job.segments += segments

    def _generate(self, jobs: list[_Job], encoded: ctranslate2.StorageView) -> list:
        """One decoder call per group of jobs with equally long prompts and the same beam."""
        prompts = [self.model.get_prompt(self.tokenizer, j.previous) for j in jobs]
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, (job, prompt) in enumerate(zip(jobs, prompts, strict=True)):
            groups.setdefault((len(prompt), job.request.beam_size, job.window), []).append(i)
        results: list = [None] * len(jobs)
        for (prompt_length, beam_size, window), rows in groups.items():
            out = self.model.model.generate(
                _rows(encoded, rows), [prompts[i] for i in rows],
                beam_size=beam_size, patience=_DEFAULTS["patience"],
                length_penalty=_DEFAULTS["length_penalty"],
                repetition_penalty=_DEFAULTS["repetition_penalty"],
                no_repeat_ngram_size=_DEFAULTS["no_repeat_ngram_size"],
                max_length=prompt_length + decode_tokens(window), return_scores=True,
                return_no_speech_prob=True, suppress_blank=_DEFAULTS["suppress_blank"],
                suppress_tokens=self._suppress, max_initial_timestamp_index=self._max_initial)
            self.decoder_calls += 1
            for i, result in zip(rows, out, strict=True):
                results[i] = result
        return results

    def _words(self, job: _Job, size: int, alignment: list[dict], segments: list[dict],
               seek: int, single_ending: bool, no_speech_prob: float, avg_logprob: float
               ) -> tuple[int, float, list[int], list[RecognizedSegment]]:
        """Word times for one job's decoded window: (where it goes on, the end of its last
        word, its next prompt (none: no conditioning on previous text), its segments)."""
        offset_s = job.seek / self.model.frames_per_second
        _PresetAlignment(self.model, alignment).add_word_timestamps(
            [segments], self.tokenizer, None, size, _DEFAULTS["prepend_punctuations"],
            _DEFAULTS["append_punctuations"], last_speech_timestamp=job.last_speech_s)
        last_word_end = get_end(segments)
        if not single_ending and last_word_end is not None and last_word_end > offset_s:
            seek = round(last_word_end * self.model.frames_per_second)
        out = [RecognizedSegment(
            words=tuple(RecognizedWord(float(w["start"]), float(w["end"]), w["word"],
                                       float(w["probability"])) for w in seg["words"]),
            no_speech_prob=float(no_speech_prob), avg_logprob=float(avg_logprob))
            for seg in segments
            if seg["start"] != seg["end"] and self.tokenizer.decode(seg["tokens"]).strip()]
        last_s = job.last_speech_s if last_word_end is None else last_word_end
        return seek, last_s, [], out


def _rows(encoded: ctranslate2.StorageView, rows: list[int]) -> ctranslate2.StorageView:
    """The given batch rows of an encoder output (itself when it is all of them)."""
    if rows == list(range(encoded.shape[0])):
        return encoded
    if encoded.device == "cpu":
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[rows]))
    import torch  # a CUDA encoder output: its rows without leaving the GPU

    on_gpu = torch.as_tensor(encoded, device=f"cuda:{encoded.device_index}")
    return ctranslate2.StorageView.from_array(on_gpu[rows].contiguous())
