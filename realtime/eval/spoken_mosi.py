"""Build "spoken MOSI": CMU-MOSI transcripts read aloud by espeak-ng, through the live extractors.

No labelled audio or video exists offline in the live feature space, but CMU-MOSI's real
transcripts and sentiment labels do. Each segment's transcript is rendered with an espeak-ng
voice (name + rate), then:

* words: ``asr`` -- Whisper (the live product's model, `realtime.extract.asr.load_whisper`) in ONE
  offline pass over the rendered segment with word timestamps (not the streaming commit
  policy: about 10x cheaper, same model, same recognition errors); or ``oracle`` -- the MOSI
  transcript itself, its words spread over the voiced span in proportion to their length
  (for the ASR-gap measurement and for cheap extra voices);
* audio: `realtime.extract.acoustic.extract_features` on the rendered samples (the clip
  converted to 16 kHz the way a source converts its input, then the streaming extractor);
* face: none -- no video frames, exactly what the live window gets without a face;
* the model input: `realtime.window.WordWindow` (the live window, default config) with
  `realtime.extract.text.TextFeaturizer`, built at the end of the clip, as the live pipeline's last
  tick sees it.

Results go to ``models.data.spoken`` files in the user cache (see that module for the
format); recognised words are cached per segment (JSON lines), so an interrupted build
resumes. Rendered test clips are kept as WAV for `realtime.eval.live`.

    python -m realtime.eval.spoken_mosi --split train --voice en-us+m3@160 --words asr
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.spoken import (
    SPLITS,
    Segment,
    SpokenMeta,
    SpokenSplit,
    file_name,
    read_segments,
    spoken_dir,
    voice_tag,
    write_split,
)
from realtime.clock import perf_s
from realtime.sources.audio import RATE_HZ, pcm_to_float
from realtime.types import FeatureFrames, Word

ESPEAK = "espeak-ng"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (``en-us``, or with a variant ``en-gb+m3``) and speed in words
    per minute."""

    name: str
    rate_wpm: int

    @classmethod
    def parse(cls, spec: str) -> Voice:
        """``"en-us+m3@160"`` -> Voice("en-us+m3", 160)."""
        name, _, rate = spec.partition("@")
        if not name or not rate.isdigit() or not 80 <= int(rate) <= 450:
            raise ValueError(f"voice must look like NAME@RATE (e.g. en-us+m3@160), got {spec!r}")
        return cls(name, int(rate))

    @property
    def tag(self) -> str:
        return voice_tag(self.name, self.rate_wpm)

    def __str__(self) -> str:
        return f"{self.name}@{self.rate_wpm}"


# Training, validation (model selection) and test voices are three disjoint sets: the
# validation voice is never trained on, so selection sees an unfamiliar voice and its ASR
# errors, as the test does; the test voices are never used for training or selection.
TRAIN_VOICES = (Voice("en-gb", 150), Voice("en-us+m3", 160), Voice("en-us+f2", 175))
VALID_VOICES = (Voice("en-us-nyc", 160),)
TEST_VOICE = Voice("en-us", 165)
ALT_TEST_VOICE = Voice("en-gb-x-rp+f4", 155)


class RenderError(RuntimeError):
    pass


def render(text: str, voice: Voice, path: Path) -> tuple[np.ndarray, int]:
    """Speaks ``text`` into the WAV file ``path``; returns (mono float32 samples, rate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ESPEAK, "-v", voice.name, "-s", str(voice.rate_wpm), "-w", str(path), text.lower()]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except FileNotFoundError as exc:
        raise RenderError("espeak-ng is not installed: apt-get install espeak-ng") from exc
    except subprocess.CalledProcessError as exc:
        raise RenderError(f"espeak-ng failed for voice {voice}: {exc.stderr.decode()}") from exc
    return read_wav(path)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], rate) of a 16-bit PCM WAV file."""
    with wave.open(str(path)) as f:
        if f.getsampwidth() != 2:
            raise RenderError(f"{path}: expected 16-bit PCM")
        x = pcm_to_float(np.frombuffer(f.readframes(f.getnframes()), np.int16))
        if f.getnchannels() > 1:
            x = x.reshape(-1, f.getnchannels()).mean(axis=1)
        return x, f.getframerate()


def to_16k(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """The clip at 16 kHz for `OfflineASR` (torchaudio's resampler, as the recognised-words
    caches were built; the acoustic features use the sources' one, via `extract_features`)."""
    import torch
    import torchaudio.functional as AF

    if rate_hz == RATE_HZ:
        return samples.astype(np.float32)
    return AF.resample(torch.from_numpy(samples), rate_hz, RATE_HZ).numpy().astype(np.float32)


# -- words ------------------------------------------------------------------------------
def voiced_span(frames: FeatureFrames, floor_db: float = -45.0) -> tuple[float, float]:
    """Centres of the first and last frame louder than ``floor_db`` (whole run if none)."""
    from realtime.extract.acoustic import ENERGY_DB_INDEX

    t = np.asarray(frames.t_s, np.float64)
    if not len(t):
        return 0.0, 0.0
    loud = np.flatnonzero(frames.values[:, ENERGY_DB_INDEX] > floor_db)
    if not len(loud):
        return float(t[0]), float(t[-1])
    return float(t[loud[0]]), float(t[loud[-1]])


def oracle_words(transcript: str, frames: FeatureFrames) -> list[Word]:
    """The transcript's words spread over the voiced span (first to last acoustic frame
    above -45 dBFS), in proportion to their letters plus one (espeak-ng speaks at a
    near-constant rate and pauses only at punctuation, which MOSI transcripts lack)."""
    tokens = transcript.lower().split()
    if not tokens:
        return []
    t0, t1 = voiced_span(frames)
    weights = np.array([len(t) + 1.0 for t in tokens])
    edges = t0 + (t1 - t0) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [Word(float(a), float(b), tok, True, 1.0)
            for tok, a, b in zip(tokens, edges[:-1], edges[1:], strict=True)]


class OfflineASR:
    """One Whisper pass over a whole clip, with word timestamps (see module docstring).
    The model files are the live product's (`realtime.assets.whisper_model_dir`); one CPU
    thread, as the machines this is built on are shared."""

    def __init__(self, model_name: str = "tiny.en", cpu_threads: int = 1) -> None:
        from faster_whisper import WhisperModel

        from realtime.assets import whisper_model_dir

        self.model_name = model_name
        self._model = WhisperModel(str(whisper_model_dir(model_name)), device="cpu",
                                   compute_type="int8", cpu_threads=cpu_threads)

    def words(self, samples_16k: np.ndarray) -> list[Word]:
        segments, _ = self._model.transcribe(
            samples_16k, language="en", beam_size=1, word_timestamps=True,
            condition_on_previous_text=False, vad_filter=False,
        )
        out = [Word(float(w.start), float(w.end), w.word.strip(), True, float(w.probability))
               for s in segments for w in (s.words or [])]
        return [w for w in out if w.text and w.t1_s >= w.t0_s]


# -- features ---------------------------------------------------------------------------
class Featurizer:
    """Live-window features for one clip: acoustic frames + words -> (text, audio, video)."""

    def __init__(self) -> None:
        from realtime.extract.acoustic import ACOUSTIC_DIM
        from realtime.extract.face import FACE_DIM, FACE_PRESENT_INDEX
        from realtime.extract.text import TEXT_DIM, TextFeaturizer

        self._text = TextFeaturizer()
        self._memo: dict[tuple[str, ...], np.ndarray] = {}
        self.dims = (TEXT_DIM, ACOUSTIC_DIM, FACE_DIM)
        self._face_index = FACE_PRESENT_INDEX

    def window(self, words: Sequence[Word], frames: FeatureFrames, end_s: float):
        """The `Window` the live pipeline builds at the end of the clip (None if empty)."""
        from realtime.window import WordWindow

        win = WordWindow(self._encode, *self.dims, face_present_index=self._face_index)
        win.add_words(words, captured_at_s=end_s)
        if len(frames.t_s):
            win.add_audio(frames)
        return win.build(end_s)

    def _encode(self, words: Sequence[Word]) -> np.ndarray:
        """TextFeaturizer.encode, memoised on the word texts (voices share transcripts)."""
        key = tuple(w.text for w in words)
        if key not in self._memo:
            if len(self._memo) > 20000:
                self._memo.clear()
            self._memo[key] = self._text.encode(words)
        return self._memo[key]


def acoustic_frames(seg: Segment, voice: Voice, root: Path,
                    wav: Path) -> tuple[FeatureFrames, float]:
    """`realtime.extract.acoustic.extract_features` of the rendered clip (cached per segment and
    voice under ``root/frames``) and the clip's duration in seconds."""
    from realtime.extract.acoustic import extract_features

    path = root / "frames" / voice.tag / f"{seg.id}.npz"
    if path.is_file():
        with np.load(path) as z:
            return FeatureFrames(z["t_s"], z["values"], 0.0, 0.0), float(z["end_s"])
    samples, rate = render(seg.transcript, voice, wav)
    frames = extract_features(samples, rate, 0.0)
    end_s = len(samples) / float(rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, t_s=frames.t_s, values=frames.values, end_s=end_s)
    tmp.replace(path)
    return frames, end_s


# -- the build --------------------------------------------------------------------------
def wav_path(segment_id: str, voice: Voice, root: Path | None = None) -> Path:
    return (root or spoken_dir()) / "wav" / voice.tag / f"{segment_id}.wav"


def _asr_cache(split: str, voice: Voice, root: Path) -> Path:
    return root / "asr" / f"{split}__{voice.tag}.jsonl"


def _load_cached(path: Path) -> dict[str, list[Word]]:
    out: dict[str, list[Word]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run
            out[doc["id"]] = [Word(a, b, t, True, p) for a, b, t, p in doc["words"]]
    return out


def pick(segments: Sequence[Segment], limit: int | None, seed: int) -> list[Segment]:
    """All segments, or a fixed-seed random subset of ``limit`` of them (sorted by id)."""
    if limit is None or limit >= len(segments):
        return list(segments)
    chosen = random.Random(seed).sample(list(segments), limit)
    return sorted(chosen, key=lambda s: s.id)


def recognise(segments: Sequence[Segment], voice: Voice, split: str, root: Path,
              asr_model: str = "tiny.en", keep_wav: bool = False,
              log: Callable[[str], None] = _log.info) -> dict[str, list[Word]]:
    """Whisper words of every segment spoken by ``voice``, from the JSON-lines cache or
    recognised now (and appended to it, so an interrupted run resumes)."""
    cache_path = _asr_cache(split, voice, root)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cached = _load_cached(cache_path)
    todo = [s for s in segments if s.id not in cached]
    if todo:
        asr, start = OfflineASR(asr_model), perf_s()
        for i, seg in enumerate(todo):
            samples, rate = render(seg.transcript, voice, _clip_path(seg, voice, root, keep_wav))
            ws = asr.words(to_16k(samples, rate))
            with cache_path.open("a") as f:
                row = [[w.t0_s, w.t1_s, w.text, w.probability] for w in ws]
                f.write(json.dumps({"id": seg.id, "words": row}) + "\n")
            cached[seg.id] = ws
            if (i + 1) % 50 == 0 or i + 1 == len(todo):
                log(f"  asr {split} {voice}: {i + 1}/{len(todo)} "
                    f"({(perf_s() - start) / (i + 1):.2f} s/segment)")
    return cached


def _clip_path(seg: Segment, voice: Voice, root: Path, keep: bool) -> Path:
    if keep:
        return wav_path(seg.id, voice, root)
    return root / "wav" / "_tmp" / f"{voice.tag}-{os.getpid()}.wav"


def build(split: str, voice: Voice, words: str = "asr", mosi_dir: Path | None = None,
          limit: int | None = None, seed: int = 0, root: Path | None = None,
          keep_wav: bool = False, asr_model: str = "tiny.en",
          log: Callable[[str], None] = _log.info, recognised_only: bool = False) -> Path:
    """Renders, recognises and featurises one split with one voice; returns the file.
    ``recognised_only``: with ``asr`` words, only the segments already in the recognised-words
    cache (an interrupted `recognise` run leaves a prefix of the split in id order)."""
    if split not in SPLITS or words not in ("asr", "oracle"):
        raise ValueError(f"split must be one of {SPLITS}, words 'asr' or 'oracle' here "
                         "('live' files are written by realtime.eval.live)")
    root = Path(root) if root is not None else spoken_dir()
    segments = pick([s for s in read_segments(mosi_dir) if s.split == split], limit, seed)
    if words == "asr" and recognised_only:
        cached = _load_cached(_asr_cache(split, voice, root))
        segments = [s for s in segments if s.id in cached]
        if not segments:
            raise ValueError(f"no recognised {split} segments of {voice} in the cache yet")
    recognised = (recognise(segments, voice, split, root, asr_model, keep_wav, log)
                  if words == "asr" else {})
    feat = Featurizer()
    texts, audios, videos, kept, said = [], [], [], [], []
    start = perf_s()
    for i, seg in enumerate(segments):
        wav = _clip_path(seg, voice, root, keep_wav)
        frames, end_s = acoustic_frames(seg, voice, root, wav)
        if words == "asr":
            ws = recognised[seg.id]
        else:
            ws = oracle_words(seg.transcript, frames)
        win = feat.window(ws, frames, end_s)
        if win is None:
            log(f"  {seg.id}: nothing rendered, skipped")
            continue
        texts.append(win.text)
        audios.append(win.audio)
        videos.append(win.video)
        kept.append(seg)
        said.append(" ".join(w.text for w in win.words))
        if (i + 1) % 100 == 0 or i + 1 == len(segments):
            log(f"  features {split} {voice} {words}: {i + 1}/{len(segments)} "
                f"({(perf_s() - start) / (i + 1):.2f} s/segment)")
    from realtime.extract.acoustic import FEATURE_NAMES as ACOUSTIC_NAMES
    from realtime.extract.face import FEATURE_NAMES as FACE_NAMES

    meta = SpokenMeta(split, voice.name, voice.rate_wpm, words,
                      asr_model if words == "asr" else "", tuple(ACOUSTIC_NAMES),
                      tuple(FACE_NAMES))
    data = SpokenSplit(meta, tuple(s.id for s in kept),
                       np.array([s.label for s in kept], np.float32), tuple(said),
                       tuple(texts), tuple(audios), tuple(videos))
    return write_split(root / file_name(split, voice.name, voice.rate_wpm, words), data)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--voice", type=Voice.parse, action="append",
                   help="NAME@RATE, repeatable (default: the split's standard voices)")
    p.add_argument("--words", choices=("asr", "oracle"), default="asr")
    p.add_argument("--recognised-only", action="store_true",
                   help="asr words: only the segments already recognised (cached)")
    p.add_argument("--mosi-dir", type=Path, default=None)
    p.add_argument("--limit", type=int, default=None, help="random subset of N segments")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-wav", action="store_true", help="keep the rendered clips")
    p.add_argument("--out", type=Path, default=None, help="folder (default: user cache)")
    p.add_argument("--asr-only", action="store_true",
                   help="only fill the recognised-words cache (no feature files)")
    p.add_argument("--frames-only", action="store_true",
                   help="only fill the acoustic-frames cache (no feature files)")
    a = p.parse_args(argv)
    from realtime.runtime import ProcessSettings, apply_process_settings

    # the offline variables and one torch thread (the build machines are shared; "cpu": even
    # beside a GPU); BLAS and glibc's malloc as they come
    apply_process_settings(ProcessSettings(device="cpu", blas_threads=None, fix_malloc=False))
    standard = {"train": TRAIN_VOICES, "valid": VALID_VOICES, "test": (TEST_VOICE,)}
    for voice in a.voice or standard[a.split]:
        if a.asr_only:
            root = a.out or spoken_dir()
            segs = pick([s for s in read_segments(a.mosi_dir) if s.split == a.split],
                        a.limit, a.seed)
            recognise(segs, voice, a.split, root, keep_wav=a.keep_wav, log=print)
            continue
        if a.frames_only:
            root = a.out or spoken_dir()
            segs = pick([s for s in read_segments(a.mosi_dir) if s.split == a.split],
                        a.limit, a.seed)
            start = perf_s()
            for i, seg in enumerate(segs):
                acoustic_frames(seg, voice, root, _clip_path(seg, voice, root, a.keep_wav))
                if (i + 1) % 100 == 0:
                    print(f"  frames {a.split} {voice}: {i + 1}/{len(segs)} "
                          f"({(perf_s() - start) / (i + 1):.2f} s/segment)", flush=True)
            continue
        path = build(a.split, voice, a.words, a.mosi_dir, a.limit, a.seed, a.out,
                     keep_wav=a.keep_wav or a.split == "test",
                     log=print, recognised_only=a.recognised_only)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
