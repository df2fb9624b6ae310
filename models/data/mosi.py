"""CMU-MOSI loaders (the folder described in shared/data/mosi/README.md; never copied here).

mosi-utt — bc-LSTM's utterance-level features (Poria et al., ACL 2017), 62 train / 31 test
videos, speaker-independent (not the standard split). A sequence is the utterances of one
video in temporal order, so the context is the video; each step is one utterance with 100-d
text CNN, 73-d openSMILE audio and 100-d 3D-CNN video features, standardised with the training
statistics. Labels are per utterance (per-step), the continuous scores in [-3, 3] joined
through transcripts.csv (row -> segment id) and OpinionLevelSentiment.csv (segment -> score).
Validation videos (``VALID_VIDEOS`` of the 62) are carved from the train videos with a fixed
seed, so every run sees the same split.

mosi-text — the CMU-MultimodalSDK standard split (52 / 10 / 31 videos, 1284 / 229 / 686
segments). A sequence is one segment's words, cut from CMU_MOSI_ModifiedTimestampedWords.csd
by the segment's interval (a word belongs to the segment holding its midpoint; "sp" silences
dropped; ``words="transcripts"`` takes the same words, untimed, from transcripts.csv instead,
for machines without h5py), each word a MiniLM contextual embedding
(models.text_encoder.WordEncoder, the encoder the live pipeline uses). Labels are
sequence-level. There are no audio or video features: those inputs are all zeros of size
``absent_dim``. Embeddings are cached under `models.env.cache_dir()`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.base import InputDims
from models.data.base import DataError, DatasetBundle, make_split
from models.env import cache_dir

VALID_VIDEOS = 8
VALID_SEED = 0
WORDS_FILE = "CMU_MOSI_ModifiedTimestampedWords.csd"
WORD_SOURCES = ("timestamped", "transcripts")
H5PY_PIP = "h5py==3.16.0"

logger = logging.getLogger(__name__)


def _read_csv(path: Path, min_cols: int) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"{path} not found (see shared/data/mosi/README.md)")
    try:
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} is not a readable CSV file: {exc}") from exc
    if not rows:
        raise DataError(f"{path} is empty")
    bad = [i for i, r in enumerate(rows) if len(r) < min_cols]
    if bad:
        raise DataError(f"{path}: row {bad[0] + 1} has fewer than {min_cols} columns")
    return rows


def _floats(path: Path, rows: list[list[str]]) -> np.ndarray:
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: non-numeric or ragged rows ({exc})") from exc
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: contains NaN or infinite values")
    return arr


def read_scores(root: Path) -> dict[str, tuple[float, float, float]]:
    """segment id -> (start_s, end_s, score) from OpinionLevelSentiment.csv."""
    path = root / "OpinionLevelSentiment.csv"
    out = {}
    for i, r in enumerate(_read_csv(path, 5)):
        try:
            out[f"{r[2]}_{int(r[3])}"] = (float(r[0]), float(r[1]), float(r[4]))
        except ValueError as exc:
            raise DataError(f"{path}: row {i + 1} is malformed: {r}") from exc
    return out


def read_transcripts(root: Path) -> list[tuple[str, str]]:
    """Rows of transcripts.csv as (segment id, transcript)."""
    return [(r[0], r[1]) for r in _read_csv(root / "transcripts.csv", 4)]


def _split_id(segment: str) -> tuple[str, int]:
    video, _, k = segment.rpartition("_")
    return video, int(k)


def _utterance_part(root: Path, part: str, transcripts, scores):
    """One of 'train'/'test': per video (ids, text, audio, video, labels) in segment order."""
    folder = root / "utterance_features"
    index_path = folder / f"text_{part}.csv"
    index = _floats(index_path, _read_csv(index_path, 2))
    feats = {}
    for m, dim in (("text", 100), ("audio", 73), ("video", 100)):
        path = folder / f"{m}_{part}0.csv"
        arr = _floats(path, _read_csv(path, dim + 1))
        if arr.shape != (len(index), dim + 1):
            raise DataError(f"{path}: expected {len(index)} rows of {dim} features + label, "
                            f"got {arr.shape}")
        feats[m] = arr[:, :dim].astype(np.float32)
    by_video = defaultdict(list)
    for row, t_row in enumerate(index[:, 0].astype(int)):
        if not 0 <= t_row < len(transcripts):
            raise DataError(f"{index_path}: row {row + 1} points outside transcripts.csv")
        segment = transcripts[t_row][0]
        if segment not in scores:
            raise DataError(f"segment {segment} has no score in OpinionLevelSentiment.csv")
        video, k = _split_id(segment)
        by_video[video].append((k, row, segment))
    out = []
    for video in sorted(by_video):
        items = sorted(by_video[video])
        rows = [r for _, r, _ in items]
        out.append(([s for _, _, s in items], *(feats[m][rows] for m in ("text", "audio", "video")),
                    np.array([scores[s][2] for _, _, s in items], np.float32)))
    return out


def load_mosi_utt(root: Path) -> DatasetBundle:
    transcripts, scores = read_transcripts(root), read_scores(root)
    train_all = _utterance_part(root, "train", transcripts, scores)
    test = _utterance_part(root, "test", transcripts, scores)
    order = np.random.default_rng(VALID_SEED).permutation(len(train_all))
    valid_idx = set(order[:VALID_VIDEOS].tolist())
    train = [v for i, v in enumerate(train_all) if i not in valid_idx]
    valid = [v for i, v in enumerate(train_all) if i in valid_idx]
    stats = {}
    for j, m in enumerate(("text", "audio", "video"), start=1):
        stacked = np.concatenate([v[j] for v in train])
        stats[m] = (stacked.mean(0), stacked.std(0) + 1e-6)

    def split(videos):
        norm = [[(v[j] - stats[m][0]) / stats[m][1] for v in videos]
                for j, m in enumerate(("text", "audio", "video"), start=1)]
        return make_split(*norm, [v[4] for v in videos], ["|".join(v[0]) for v in videos],
                          per_step=True)

    return DatasetBundle(
        name="mosi-utt", dims=InputDims(100, 73, 100), per_step=True, train=split(train),
        valid=split(valid), test=split(test),
        description=(f"CMU-MOSI bc-LSTM utterance features: {len(train)} train / {len(valid)} "
                     f"valid / {len(test)} test videos, "
                     f"{sum(len(v[0]) for v in test)} test utterances"),
    )


def read_words(root: Path) -> dict[str, tuple[np.ndarray, list[str]]]:
    """video id -> (intervals (M, 2) seconds, words), from the timestamped-words .csd (HDF5)."""
    path = root / WORDS_FILE
    if not path.is_file():
        raise DataError(f"{path} not found (see shared/data/mosi/README.md)")
    try:
        import h5py
    except ImportError as exc:
        raise DataError(f"reading {WORDS_FILE} needs h5py: pip install {H5PY_PIP}") from exc
    try:
        with h5py.File(path, "r") as f:
            roots = list(f.keys())
            if len(roots) != 1 or "data" not in f[roots[0]]:
                raise DataError(f"{path}: not a computational sequence (no /<root>/data)")
            data = f[roots[0]]["data"]
            out = {}
            for video in data:
                words = [w.decode("utf-8", "replace") if isinstance(w, bytes) else str(w)
                         for w in np.asarray(data[video]["features"]).reshape(-1)]
                out[video] = (np.asarray(data[video]["intervals"], np.float64), words)
            return out
    except (OSError, KeyError) as exc:
        raise DataError(f"{path} is corrupt or not HDF5: {exc}") from exc


def segment_words(intervals: np.ndarray, words: list[str], start_s: float, end_s: float):
    mid = intervals.mean(1)
    return [w for w, m in zip(words, mid, strict=True)
            if start_s <= m < end_s and w.strip() and w != "sp"]


def _file_key(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _segment_word_lists(root: Path, segments: list[str], scores, source: str):
    """segment id -> its words; also the number of segments that fell back to the transcript
    (no timestamped word had its midpoint inside the segment)."""
    transcripts = dict(read_transcripts(root))
    if source == "transcripts":
        return {s: transcripts.get(s, "").lower().split() for s in segments}, len(segments)
    words = read_words(root)
    out, fallback = {}, 0
    for s in segments:
        video, _ = _split_id(s)
        if video not in words:
            raise DataError(f"{WORDS_FILE} has no words for video {video}")
        seg = segment_words(*words[video], scores[s][0], scores[s][1])
        if not seg:
            seg, fallback = transcripts.get(s, "").lower().split(), fallback + 1
        out[s] = seg
    return out, fallback


def _text_embeddings(root: Path, segments: list[str], scores, source: str):
    from models.text_encoder import MINILM_PIP, WordEncoder

    files = [root / "OpinionLevelSentiment.csv", root / "transcripts.csv"]
    if source == "timestamped":
        files.append(root / WORDS_FILE)
    for f in files:
        if not f.is_file():
            raise DataError(f"{f} not found (see shared/data/mosi/README.md)")
    key = _file_key(*files)
    path = cache_dir() / f"mosi-text-{source}-{key}-{MINILM_PIP.replace('==', '-')}.npz"
    if path.is_file():
        logger.debug("MiniLM word embeddings from the cache %s", path)
        with np.load(path) as z:
            ids = json.loads(str(z["ids"]))
            offsets, emb = z["offsets"], z["emb"]
        return {s: emb[offsets[i]:offsets[i + 1]] for i, s in enumerate(ids)}
    word_lists, _ = _segment_word_lists(root, segments, scores, source)
    encoder = WordEncoder.load("cpu")
    out = {}
    for s in tqdm(segments, desc=f"MiniLM words ({source})", file=sys.stderr, leave=False):
        out[s] = encoder.encode(word_lists[s] or ["[UNK]"])
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(out[s]) for s in segments])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ids=json.dumps(segments), offsets=offsets,
             emb=np.concatenate([out[s] for s in segments]))
    tmp.replace(path)
    logger.info("cached MiniLM word embeddings of %d segments in %s", len(segments), path)
    return out


def load_mosi_text(root: Path, absent_dim: int = 1, words: str = "timestamped") -> DatasetBundle:
    if words not in WORD_SOURCES:
        raise DataError(f"unknown word source {words!r}; known: {', '.join(WORD_SOURCES)}")
    folds_path = root / "standard_folds.json"
    if not folds_path.is_file():
        raise DataError(f"{folds_path} not found")
    try:
        folds = json.loads(folds_path.read_text())
        parts = {p: set(folds[p]) for p in ("train", "valid", "test")}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{folds_path} is not a valid folds file: {exc}") from exc
    scores = read_scores(root)
    segments = sorted(scores, key=lambda s: (_split_id(s)[0], _split_id(s)[1]))
    emb = _text_embeddings(root, segments, scores, words)
    splits = {}
    for p, videos in parts.items():
        ids = [s for s in segments if _split_id(s)[0] in videos]
        text = [emb[s] for s in ids]
        zeros = [np.zeros((len(t), absent_dim), np.float32) for t in text]
        splits[p] = make_split(text, zeros, zeros, [scores[s][2] for s in ids], ids,
                               per_step=False)
    from models.text_encoder import TEXT_DIM

    return DatasetBundle(
        name="mosi-text", dims=InputDims(TEXT_DIM, absent_dim, absent_dim), per_step=False,
        train=splits["train"], valid=splits["valid"], test=splits["test"],
        description=(f"CMU-MOSI standard split, MiniLM word embeddings: "
                     f"{len(splits['train'])} / {len(splits['valid'])} / {len(splits['test'])} "
                     f"segments, words from {words}; audio and video absent (zeros)"),
    )
