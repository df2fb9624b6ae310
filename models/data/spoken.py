"""Spoken MOSI: CMU-MOSI transcripts read aloud by espeak-ng and passed through the live
extractors (built by ``python -m realtime.eval.spoken_mosi``), read back here as `Split`s.

models/ never imports realtime/, so the builder and this reader share a file format:

One ``.npz`` per (split, voice, word source) under ``spoken_dir()``
(``models.env.cache_dir() / "spoken_mosi"``), named
``<split>__<voice tag>__<words>.npz`` (see `file_name`). Each holds the model input of the
live window at the end of every segment (``realtime.window.WordWindow.build``), ragged:

| array | shape / dtype | meaning |
| --- | --- | --- |
| ``text`` | (S, TEXT_DIM) float32 | all segments' steps, concatenated |
| ``audio`` | (S, ACOUSTIC_DIM) float32 | acoustic frame means per step (physical units) |
| ``video`` | (S, FACE_DIM) float32 | face features per step (zeros: no face was rendered) |
| ``offsets`` | (N+1,) int64 | segment i owns steps offsets[i]:offsets[i+1] |
| ``labels`` | (N,) float32 | CMU-MOSI sentiment in [-3, 3] |
| ``ids`` | (N,) str | segment id ``<video>_<k>`` |
| ``words`` | (N,) str | the words the model saw (recognised or oracle), space-joined |
| ``meta`` | () str | JSON `SpokenMeta` |
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from models.base import InputDims
from models.data.base import (
    DataError,
    DatasetBundle,
    Split,
    default_mosi_dir,
    make_split,
)
from models.data.sessions import pack_steps, save_npz_atomic, unpack_steps
from models.env import cache_dir

FORMAT = 1
SPLITS = ("train", "valid", "test")
# asr: one offline Whisper pass; oracle: the transcript; live: the final window of a replay
# through the streaming pipeline (realtime.eval.live), exactly what the live model sees.
WORD_SOURCES = ("asr", "oracle", "live")
# validation prefers the most realistic words available
VALID_PREFERENCE = ("live", "asr", "oracle")
SPOKEN_ENV = "SPOKEN_MOSI_DIR"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpokenMeta:
    """How a file was made. voice: espeak-ng voice name; rate_wpm: espeak-ng speed;
    words: "asr" (one offline Whisper pass: words and timings), "oracle" (the MOSI transcript,
    timed by spreading the words over the voiced span) or "live" (the streaming pipeline's
    final window); asr_model: Whisper model name ("" for oracle);
    acoustic_features / face_features: the extractors' FEATURE_NAMES."""

    split: str
    voice: str
    rate_wpm: int
    words: str
    asr_model: str
    acoustic_features: tuple[str, ...]
    face_features: tuple[str, ...]
    format: int = FORMAT


@dataclass(frozen=True)
class SpokenSplit:
    """One file's content as per-segment arrays."""

    meta: SpokenMeta
    ids: tuple[str, ...]
    labels: np.ndarray
    words: tuple[str, ...]
    text: tuple[np.ndarray, ...]
    audio: tuple[np.ndarray, ...]
    video: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dims(self) -> InputDims:
        return InputDims(self.text[0].shape[1], self.audio[0].shape[1], self.video[0].shape[1])


@dataclass(frozen=True)
class Segment:
    """One CMU-MOSI opinion segment: id ``<video>_<k>``, transcript (upper case, no
    punctuation), sentiment label in [-3, 3], standard-split name."""

    id: str
    transcript: str
    label: float
    split: str


def read_segments(mosi_dir: str | Path | None = None) -> list[Segment]:
    """Every segment of the standard split with a transcript and a label, sorted by id."""
    from models.data.mosi import read_scores, read_transcripts

    root = Path(mosi_dir) if mosi_dir is not None else default_mosi_dir()
    folds_path = root / "standard_folds.json"
    try:
        folds = json.loads(folds_path.read_text())
        video_split = {v: s for s in SPLITS for v in folds[s]}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{folds_path} is missing or not a valid folds file: {exc}") from exc
    scores = read_scores(root)
    out = []
    for sid, transcript in read_transcripts(root):
        video = sid.rpartition("_")[0]
        if sid in scores and video in video_split and transcript.strip():
            out.append(Segment(sid, transcript, float(scores[sid][2]), video_split[video]))
    return sorted(out, key=lambda s: s.id)


def spoken_dir() -> Path:
    """$SPOKEN_MOSI_DIR, else the user cache (never the repository)."""
    if os.environ.get(SPOKEN_ENV):
        return Path(os.environ[SPOKEN_ENV]).expanduser()
    return cache_dir() / "spoken_mosi"


def voice_tag(voice: str, rate_wpm: int) -> str:
    """A file-name-safe tag: ``en-us+m3`` at 160 wpm -> ``en-us_m3-160``."""
    return f"{voice.replace('+', '_')}-{int(rate_wpm)}"


def file_name(split: str, voice: str, rate_wpm: int, words: str) -> str:
    if split not in SPLITS or words not in WORD_SOURCES:
        raise ValueError(f"split must be one of {SPLITS} and words one of {WORD_SOURCES}")
    return f"{split}__{voice_tag(voice, rate_wpm)}__{words}.npz"


def write_split(path: str | Path, data: SpokenSplit) -> Path:
    """Writes ``data`` atomically (a temporary file renamed into place)."""
    if not len(data):
        raise DataError(f"refusing to write an empty spoken-MOSI split to {path}")
    lengths = [len(t) for t in data.text]
    if [len(a) for a in data.audio] != lengths or [len(v) for v in data.video] != lengths:
        raise DataError("text, audio and video must have the same steps per segment")
    arrays = pack_steps(data.text, data.audio, data.video)
    arrays.update(
        labels=np.asarray(data.labels, np.float32),
        ids=np.asarray(data.ids, dtype=str),
        words=np.asarray(data.words, dtype=str),
        meta=np.asarray(json.dumps(asdict(data.meta))),
    )
    out = save_npz_atomic(Path(path), arrays)
    logger.info("wrote %d spoken-MOSI segments to %s", len(data), out)
    return out


def read_split(path: str | Path) -> SpokenSplit:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: build it with python -m realtime.eval.spoken_mosi")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta_doc = json.loads(str(arrays["meta"]))
        meta_doc["acoustic_features"] = tuple(meta_doc["acoustic_features"])
        meta_doc["face_features"] = tuple(meta_doc["face_features"])
        meta = SpokenMeta(**meta_doc)
        text, audio, video = unpack_steps(arrays)
        out = SpokenSplit(
            meta=meta,
            ids=tuple(str(i) for i in arrays["ids"]),
            labels=arrays["labels"].astype(np.float32),
            words=tuple(str(w) for w in arrays["words"]),
            text=text,
            audio=audio,
            video=video,
        )
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a valid spoken-MOSI file: {exc}") from exc
    if meta.format != FORMAT:
        raise DataError(f"{path}: format {meta.format}, expected {FORMAT}; rebuild it")
    if not (len(out.ids) == len(out.labels) == len(out.text) == len(out.words)):
        raise DataError(f"{path}: arrays disagree on the number of segments")
    return out


def to_split(parts: Sequence[SpokenSplit]) -> Split:
    """Concatenates files (e.g. several voices) into one padded `Split`."""
    if not parts:
        raise DataError("no spoken-MOSI files given")
    dims = {p.dims for p in parts}
    if len(dims) != 1:
        raise DataError(f"spoken-MOSI files disagree on feature sizes: {sorted(map(str, dims))}")
    text = [t for p in parts for t in p.text]
    audio = [a for p in parts for a in p.audio]
    video = [v for p in parts for v in p.video]
    labels = [float(x) for p in parts for x in p.labels]
    ids = [i for p in parts for i in p.ids]
    return make_split(text, audio, video, labels, ids, per_step=False)


def find_files(split: str, words: str | None = None, root: Path | None = None) -> list[Path]:
    root = Path(root) if root is not None else spoken_dir()
    pattern = f"{split}__*__{words}.npz" if words else f"{split}__*.npz"
    return sorted(p for p in root.glob(pattern) if not p.name.endswith(".tmp.npz"))


def valid_files(root: Path, voice_tag_: str | None = None,
                words_: str | None = None) -> list[Path]:
    """The validation files of the most realistic word source present (`VALID_PREFERENCE`;
    or only ``words_``), of one voice (tag, e.g. ``en-us-nyc-160``) or of every voice."""
    for words in (words_,) if words_ else VALID_PREFERENCE:
        found = [p for p in find_files("valid", words, root)
                 if voice_tag_ is None or p.name.split("__")[1] == voice_tag_]
        if found:
            return found
    return []


def train_valid_bundle(root: str | Path | None = None, words: str = "both",
                       valid_voice: str | None = None, valid_words: str | None = None
                       ) -> tuple[DatasetBundle, dict[str, list[Path]]]:
    """Training files of ``words`` ("asr", "oracle", "live" or "both": asr and oracle, every
    voice of each); validation files of ``valid_voice`` (a voice tag; None: any) from the most
    realistic word source present (live, else asr, else oracle; or only ``valid_words``), and
    the test files likewise; returns the bundle and the files used per split."""
    root = Path(root) if root is not None else spoken_dir()
    sources = ("asr", "oracle") if words == "both" else (words,)
    if not set(sources) <= set(WORD_SOURCES):
        raise ValueError(f"words must be one of {WORD_SOURCES} or 'both'")
    files = {"train": [p for w in sources for p in find_files("train", w, root)],
             "valid": valid_files(root, valid_voice, valid_words)}
    files["test"] = next((f for w in VALID_PREFERENCE if (f := find_files("test", w, root))),
                         [])
    for s in ("train", "valid"):
        if not files[s]:
            which = f" of voice {valid_voice}" if s == "valid" and valid_voice else ""
            raise DataError(f"no spoken-MOSI {s} files{which} in {root}: build them with "
                            f"python -m realtime.eval.spoken_mosi --split {s}")
    parts = {s: [read_split(p) for p in files[s]] for s in SPLITS}
    dims = parts["train"][0].dims
    if parts["test"]:
        test = to_split(parts["test"])
    else:
        test = Split(torch.zeros((0, 1, dims.text)), torch.zeros((0, 1, dims.audio)),
                     torch.zeros((0, 1, dims.video)), torch.zeros(0, dtype=torch.long),
                     torch.zeros(0), ())
    voices = sorted({f"{p.meta.voice}@{p.meta.rate_wpm} ({p.meta.split}, {p.meta.words})"
                     for s in SPLITS for p in parts[s]})
    bundle = DatasetBundle(
        name="spoken-mosi", dims=dims, per_step=False, train=to_split(parts["train"]),
        valid=to_split(parts["valid"]), test=test,
        description=f"CMU-MOSI transcripts spoken by espeak-ng: {', '.join(voices)}; live "
                    "extractors, the live window at each segment's end, no face",
    )
    return bundle, files


def load_spoken_mosi(root: str | Path | None = None, words: str = "both") -> DatasetBundle:
    """The "spoken-mosi" dataset (for `models.data.registry.load_dataset`, which trains and
    then tests: so the test split is required here)."""
    root = Path(root) if root is not None else spoken_dir()
    if not root.is_dir():
        raise DataError(f"no spoken-MOSI cache at {root}: build it with python -m "
                        "realtime.eval.spoken_mosi --split train (then --split valid, --split test)"
                        f" or set ${SPOKEN_ENV}")
    bundle = train_valid_bundle(root, words)[0]
    if not len(bundle.test):
        raise DataError(f"no spoken-MOSI test files in {root}: build them with python -m "
                        "realtime.eval.spoken_mosi --split test")
    return bundle
