"""realtime.extract.whisper_batch and realtime.serving.executor.SharedTranscriber: Whisper calls of
many sessions run together, each caller getting the words of its own single call, prompts per
request, failures per request, the executor's queue bounded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from realtime.extract.asr import AsrConfig, StreamingASR, load_whisper
from realtime.extract.whisper_batch import (
    ModelView,
    RecognizedSegment,
    RecognizedWord,
    TranscribeRequest,
    WhisperBatch,
    decode_tokens,
    encoder_frames,
)
from realtime.serving.executor import (
    BatchConfig,
    ExecutorBusy,
    ExecutorStopped,
    SharedModels,
    SharedTranscriber,
)
from realtime.sources.audio import RATE_HZ
from tests.helpers import media

TEXTS = ("I really love this movie, it is wonderful.",  # 2.9 s
         "This is terrible, I hate it.",  # 2.2 s
         "The music was too loud and the story made no sense.")  # 3.7 s
NAMES = "We talked to Kaitlyn and Jaxon about the movie."  # unprompted: "Kylie", "Jackson"
LONG = ("The weather today is cold and rainy, but the people in the little town are kind "
        "and they smile a lot.")  # 6.4 s: an 8 s encoder window instead of 6 s


@pytest.fixture(scope="module")
def whisper():
    return load_whisper("tiny.en")


@pytest.fixture(scope="module")
def clips():
    return {t: media.speech_samples(t, RATE_HZ) for t in (*TEXTS, NAMES, LONG)}


def words(segments):
    return [(w.text, w.start_s, w.end_s) for s in segments for w in s.words]


def assert_same_words(got, alone):
    """Text identical, times within 0.05 s."""
    assert [t for t, *_ in words(got)] == [t for t, *_ in words(alone)]
    for (_, a0, a1), (_, b0, b1) in zip(words(got), words(alone), strict=True):
        assert abs(a0 - b0) <= 0.05 and abs(a1 - b1) <= 0.05


class EncoderWindow(ModelView):
    """The loaded model whose encoder sees only the first ``frames`` mel frames: the reference
    call, faster-whisper's own `WhisperModel.transcribe` with an encoder window."""

    _own = ("_loaded", "_frames")

    def __init__(self, loaded, frames):
        super().__init__(loaded)
        self._frames = frames

    def encode(self, features):
        return self._loaded.encode(np.ascontiguousarray(features[..., : self._frames]))


def faster_whisper_alone(model, audio, prompt, min_window_s):
    """What faster-whisper's own transcribe gives with the streaming options."""
    frames = encoder_frames(len(audio), min_window_s)
    segments, _ = EncoderWindow(model, frames).transcribe(
        audio, language="en", beam_size=1, temperature=0.0, word_timestamps=True,
        condition_on_previous_text=False, initial_prompt=prompt, vad_filter=False,
        max_new_tokens=decode_tokens(frames))
    return [RecognizedSegment(tuple(RecognizedWord(w.start, w.end, w.word, w.probability)
                                    for w in seg.words), seg.no_speech_prob, seg.avg_logprob)
            for seg in segments]


def test_one_request_gives_faster_whisper_s_own_words(whisper, clips):
    cases = [(clips[TEXTS[0]], None, 6.0), (clips[NAMES], "Kaitlyn and Jaxon", 6.0),
             (clips[LONG], "We spoke about the weather.", 6.0), (clips[TEXTS[1]], None, None)]
    for audio, prompt, window in cases:
        got = WhisperBatch(whisper.model).run([TranscribeRequest(audio, prompt, 1, window)])[0]
        alone = faster_whisper_alone(whisper.model, audio, prompt, window)
        assert words(got) and len(got) == len(alone)
        assert_same_words(got, alone)
        for a, b in zip(got, alone, strict=True):
            assert a.avg_logprob == pytest.approx(b.avg_logprob, abs=1e-3)


def test_a_remainder_shorter_than_min_tail_is_not_decoded(whisper):
    """faster-whisper decodes what follows a window's last word in a window of its own;
    min_tail_s leaves a short one (the end of a streaming buffer) alone, and decodes a longer
    one. 3 s buffers of the demo recording cut mid-speech, as a stream transcribes them.
    Where the last word ends moves with the CPU's int8 arithmetic (0.02 s before the end of
    the 9.5-12.5 s buffer on one machine): the remainder is measured, and the buffer is the
    first of a few ends that leaves one."""
    demo = media.decode_audio(media.DEMO_MP4, RATE_HZ)

    def run(t1_s, tail_s):
        batch = WhisperBatch(whisper.model)
        audio = demo[int((t1_s - 3.0) * RATE_HZ) : int(t1_s * RATE_HZ)]
        [got] = batch.run([TranscribeRequest(audio, None, 1, 6.0, tail_s)])
        return [t for t, *_ in words(got)], words(got), batch.encoder_calls

    heard, _, calls = run(12.5, 3.0)  # min_tail_s as long as the buffer: one window only
    assert calls == 1
    assert media.wer("The cast is brilliant. I hated the ending", " ".join(heard)) <= 0.3
    for t1_s in (12.5, 12.3, 12.7, 11.9, 13.1):
        first, timed, first_calls = run(t1_s, 3.0)
        every, _, every_calls = run(t1_s, 0.0)
        rest_s = 3.0 - round(timed[-1][2] * 100) / 100 if timed else 0.0
        if every_calls == 2 and rest_s >= 0.02:
            break
    else:
        pytest.fail("no buffer left a remainder after its first window's last word")
    assert first_calls == 1 and every[: len(first)] == first  # the first window's words
    assert run(t1_s, rest_s - 0.005)[2] == 2  # a remainder as long as min_tail_s is decoded
    assert run(t1_s, rest_s + 0.005)[2] == 1
    with pytest.raises(ValueError, match="min_tail_s must be >= 0"):
        TranscribeRequest(demo[:RATE_HZ], None, 1, 6.0, -0.1)


def test_three_clips_in_one_batch_give_the_words_of_three_single_calls(whisper, clips):
    batch = WhisperBatch(whisper.model)
    out = batch.run([TranscribeRequest(clips[t], None, 1, 6.0) for t in TEXTS])
    assert batch.encoder_calls == 1 and batch.decoder_calls == 1  # one call for all three
    for text, got in zip(TEXTS, out, strict=True):
        alone = whisper.transcribe(clips[text], prompt=None, beam_size=1, min_window_s=6.0)
        assert_same_words(got, alone)
        assert media.wer(text, " ".join(t for t, *_ in words(got))) <= 0.2
        assert got[0].avg_logprob == pytest.approx(alone[0].avg_logprob, abs=1e-3)


def test_prompts_are_per_request_and_windows_are_never_padded(whisper, clips):
    requests = [TranscribeRequest(clips[NAMES], None, 1, 6.0),
                TranscribeRequest(clips[NAMES], "Kaitlyn and Jaxon", 1, 6.0),
                TranscribeRequest(clips[LONG], "We spoke about the weather.", 1, 6.0),
                TranscribeRequest(clips[TEXTS[1]], None, 1, None)]
    batch = WhisperBatch(whisper.model)
    out = batch.run(requests)
    for request, got in zip(requests, out, strict=True):
        alone = whisper.transcribe(request.audio, prompt=request.prompt, beam_size=1,
                                   min_window_s=request.min_window_s)
        assert_same_words(got, alone)
    unprompted, prompted = (" ".join(t for t, *_ in words(o)) for o in out[:2])
    names = ("Kaitlyn", "Jaxon")  # the prompt's spellings; unprompted, Whisper writes others
    assert any(n in prompted for n in names), prompted  # (which ones may vary by CPU)
    assert not any(n in unprompted for n in names), unprompted  # its own request only
    assert batch.encoder_calls >= 3  # 6 s, 8 s and 30 s windows: one encoder call each


def test_cut_prompts_share_one_decoder_call(whisper, clips):
    batch = WhisperBatch(whisper.model, prompt_tokens=3)
    prompts = ("Kaitlyn and Jaxon", "It was a film about Kaitlyn and Jaxon")  # same last tokens
    out = batch.run([TranscribeRequest(clips[NAMES], p, 1, 6.0) for p in prompts])
    assert batch.decoder_calls == 1
    assert [t for t, *_ in words(out[0])] == [t for t, *_ in words(out[1])]
    with pytest.raises(ValueError, match="prompt_tokens"):
        WhisperBatch(whisper.model, prompt_tokens=0)


def test_a_failing_request_fails_only_itself(whisper, clips):
    class Flaky(WhisperBatch):
        def _round(self, jobs):
            if any(j.request.prompt == "boom" for j in jobs):
                raise RuntimeError("the decoder failed on this one")
            super()._round(jobs)

    good = TranscribeRequest(clips[TEXTS[0]], None, 1, 6.0)
    out = Flaky(whisper.model).run([
        TranscribeRequest(np.zeros((3, 2), np.float32)),
        good,
        TranscribeRequest(clips[TEXTS[1]], "boom", 1, 6.0),
        TranscribeRequest(np.full(RATE_HZ, np.nan, np.float32)),
    ])
    assert isinstance(out[0], ValueError) and "1-D finite float32" in str(out[0])
    assert isinstance(out[2], RuntimeError) and "this one" in str(out[2])
    assert isinstance(out[3], ValueError)
    assert_same_words(out[1], whisper.transcribe(good.audio, prompt=None, beam_size=1,
                                                 min_window_s=6.0))


def test_sessions_calling_at_once_are_batched_and_errors_reach_their_caller(whisper, clips):
    shared = SharedTranscriber(WhisperBatch(whisper.model).run,
                               BatchConfig(max_batch=4, max_wait_ms=30_000.0, max_queue=8))
    results: dict[int, object] = {}
    inputs = [clips[t] for t in TEXTS] + [np.zeros(10, np.int16)]

    def call(i: int) -> None:
        try:
            results[i] = shared.transcribe(inputs[i], prompt=None, min_window_s=6.0)
        except ValueError as exc:
            results[i] = exc

    with shared.executor:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = shared.executor.stats()
    # the batch runs when the fourth caller has queued (max_batch), however slow the
    # machine: the 30 s wait is only ever reached if a caller never queues
    assert stats.batches == 1 and stats.max_batch == 4  # one batch for the four callers
    for i, text in enumerate(TEXTS):
        assert_same_words(results[i], whisper.transcribe(clips[text], prompt=None,
                                                         beam_size=1, min_window_s=6.0))
    assert isinstance(results[3], ValueError) and "int16" in str(results[3])


def test_the_shared_transcriber_queue_is_bounded_and_stop_fails_what_waits():
    release, started = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow(requests):
        calls.append(len(requests))
        started.set()
        release.wait(5)
        return [[] for _ in requests]

    shared = SharedTranscriber(slow, BatchConfig(max_batch=1, max_wait_ms=0.0, max_queue=1))
    shared.start()
    audio = np.zeros(RATE_HZ, np.float32)
    first = threading.Thread(target=shared.transcribe, args=(audio,))
    first.start()
    assert started.wait(5)
    waiting = shared.executor.submit(TranscribeRequest(audio))  # fills the queue
    with pytest.raises(ExecutorBusy, match="max_queue"):
        shared.transcribe(audio)
    assert shared.executor.stats().drops == 1
    stopping = threading.Thread(target=shared.stop)
    stopping.start()
    with pytest.raises(ExecutorStopped):
        waiting.result(timeout=5)
    release.set()
    stopping.join(5)
    first.join(5)
    with pytest.raises(ExecutorStopped):
        shared.transcribe(audio)
    assert calls == [1] and not first.is_alive()


def test_sessions_on_shared_models_stream_through_the_shared_transcriber(whisper, clips):

    from realtime.extract.stages import AsrFactory
    from tests.helpers.fakes import with_stages
    from tests.realtime.test_pipeline import fake_engine

    engine = with_stages(fake_engine(), new_asr=AsrFactory(whisper, "pause"))
    assert SharedModels(fake_engine()).transcriber is None  # a stand-in ASR: nothing shared
    shared = SharedModels(engine, asr=BatchConfig(max_batch=4, max_wait_ms=50.0))
    assert isinstance(shared.transcriber, SharedTranscriber)
    alone = engine.stages.new_asr()
    on_shared = engine.stages.new_asr(shared.transcriber)
    assert alone.model is whisper and on_shared.model is shared.transcriber
    audio = np.concatenate([np.zeros(RATE_HZ // 2, np.float32), clips[TEXTS[2]],
                            np.zeros(RATE_HZ, np.float32)])
    with shared:
        got = _stream(on_shared, audio)
    assert got == _stream(StreamingASR(whisper, AsrConfig()), audio)  # same words, same times
    assert shared.transcriber is not None
    assert shared.transcriber.executor.stats().windows >= 1


def test_a_session_manager_with_shared_models_transcribes_on_the_shared_whisper(
        whisper, tmp_path):

    from realtime.extract.stages import AsrFactory
    from realtime.serving.sessions import SessionManager
    from realtime.sources.file import FileSource
    from tests.helpers.fakes import with_stages
    from tests.realtime.test_pipeline import fake_engine

    engine = with_stages(fake_engine(), new_asr=AsrFactory(whisper, "pause"))
    texts = ("I really love this movie.", "The story made no sense.")
    with SharedModels(engine, asr=BatchConfig(max_batch=4, max_wait_ms=20.0)) as shared:
        manager = SessionManager(engine, max_sessions=2, shared=shared)
        ids = [manager.create(FileSource(media.speech_wav(tmp_path / str(i), text)))
               for i, text in enumerate(texts)]  # at real speed, side by side
        for sid in ids:
            assert manager.pipeline(sid).wait(60)
        heard = [manager.pipeline(sid).store.latest().words for sid in ids]
        assert manager.stop_all()
        assert shared.transcriber is not None
        stats = shared.transcriber.executor.stats()
    for text, got in zip(texts, heard, strict=True):
        assert media.wer(text, " ".join(got)) <= 0.25, got
    assert stats.windows >= 2 and stats.failures == 0  # both sessions' passes went through it


def _stream(asr, audio, hop_s: float = 0.2):
    from realtime.types import AudioChunk

    hop = int(hop_s * RATE_HZ)
    out = []
    for i in range(0, len(audio), hop):
        t = i / RATE_HZ
        piece = audio[i : i + hop]
        asr.insert_audio_chunk(AudioChunk(t, piece, RATE_HZ, t + len(piece) / RATE_HZ))
        out += asr.process_iter().committed
    out += asr.finish().committed
    return [(w.text, w.t0_s, w.t1_s) for w in out]
