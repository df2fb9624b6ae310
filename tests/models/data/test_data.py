"""Dataset loaders: the synthetic task, CMU-MOSI (real files, skipped when absent), and clear
errors on missing or corrupt files."""

import csv
import shutil
import sys

import numpy as np
import pytest
import torch

from models.data.base import DataError, make_split
from models.data.mosi import read_words, segment_words
from models.data.registry import load_dataset
from models.data.synthetic import make_synthetic
from tests.helpers import REPO
from tests.helpers.required import require

H5PY_WHY = "reads the CMU-MOSI word files (.csd) and the expression model (make setup)"


def test_synthetic_is_deterministic_and_planted():
    a, b = make_synthetic(seed=3, n_train=32), make_synthetic(seed=3, n_train=32)
    assert torch.equal(a.train.video, b.train.video) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.train.video, make_synthetic(seed=4, n_train=32).train.video)
    d = a.dims
    assert (d.text, d.audio, d.video) == (6, 4, 12)
    s = a.train
    for i in range(8):
        n = int(s.lengths[i])
        code = int(s.text[i, :n, :4].mean(0).argmax())  # the code the text points at
        group = s.video[i, :n, code * 3:(code + 1) * 3].mean()
        assert float(s.labels[i]) == pytest.approx(2.5 * float(group), abs=0.5)
        assert float(s.video[i, n:].abs().sum()) == 0.0  # padding is zero


def test_split_batch_trims_to_longest():
    text = [np.ones((n, 2), np.float32) for n in (2, 5, 3)]
    split = make_split(text, text, text, [0.1, 0.2, 0.3], ["a", "b", "c"], per_step=False)
    batch = split.batch([0, 2])
    assert batch.text.shape == (2, 3, 2)
    assert batch.lengths.tolist() == [2, 3]
    assert batch.labels.tolist() == pytest.approx([0.1, 0.3])


def test_mosi_utt_real(mosi_dir):
    b = load_dataset("mosi-utt", mosi_dir=mosi_dir)
    assert b.per_step and (b.dims.text, b.dims.audio, b.dims.video) == (100, 73, 100)
    assert len(b.train) + len(b.valid) == 62 and len(b.test) == 31
    assert int(b.test.lengths.sum()) == 752
    assert int(b.train.lengths.sum() + b.valid.lengths.sum()) == 1447
    assert b.test.labels.shape == b.test.text.shape[:2]
    valid = torch.arange(b.test.labels.shape[1])[None] < b.test.lengths[:, None]
    labels = b.test.labels[valid]
    assert float(labels.min()) >= -3 and float(labels.max()) <= 3
    assert len(torch.unique(labels)) > 20  # continuous scores, not binary labels
    # no leakage: the three splits have disjoint videos
    vids = [{i.split("|")[0].rsplit("_", 1)[0] for i in s.ids} for s in (b.train, b.valid, b.test)]
    assert not (vids[0] & vids[1]) and not (vids[0] & vids[2]) and not (vids[1] & vids[2])
    # the binary label column of the features agrees with the continuous score
    with open(mosi_dir / "utterance_features" / "text_test0.csv", newline="") as f:
        binary = [float(r[-1]) for r in csv.reader(f)]
    assert len(binary) == 752
    assert int((labels >= 0).sum()) == int(sum(binary))


@pytest.fixture()
def mosi_copy(mosi_dir, tmp_path):
    for name in ("transcripts.csv", "OpinionLevelSentiment.csv", "standard_folds.json"):
        shutil.copy(mosi_dir / name, tmp_path / name)
    shutil.copytree(mosi_dir / "utterance_features", tmp_path / "utterance_features")
    for p in (tmp_path / "utterance_features").iterdir():
        p.chmod(0o644)
    return tmp_path


def test_missing_folder_and_file_errors(tmp_path, mosi_copy):
    with pytest.raises(DataError, match="not found"):
        load_dataset("mosi-utt", mosi_dir=tmp_path / "nowhere")
    (mosi_copy / "utterance_features" / "audio_test0.csv").unlink()
    with pytest.raises(DataError, match="audio_test0.csv not found"):
        load_dataset("mosi-utt", mosi_dir=mosi_copy)
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mosi-video")


def test_corrupt_files_error(mosi_copy):
    path = mosi_copy / "utterance_features" / "video_train0.csv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[3], '"abc"', 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="video_train0.csv: non-numeric"):
        load_dataset("mosi-utt", mosi_dir=mosi_copy)
    (mosi_copy / "OpinionLevelSentiment.csv").write_text("1,2,vid,x,0.5\n")
    with pytest.raises(DataError, match="OpinionLevelSentiment.csv: row 1 is malformed"):
        load_dataset("mosi-utt", mosi_dir=mosi_copy)
    (mosi_copy / "transcripts.csv").write_bytes(b"")
    with pytest.raises(DataError, match="transcripts.csv is empty"):
        load_dataset("mosi-utt", mosi_dir=mosi_copy)


def test_mosi_text_errors(mosi_copy, monkeypatch):
    with pytest.raises(DataError, match="CMU_MOSI_ModifiedTimestampedWords.csd not found"):
        read_words(mosi_copy)
    (mosi_copy / "CMU_MOSI_ModifiedTimestampedWords.csd").write_bytes(b"not hdf5 at all")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(DataError, match="pip install h5py"):
        read_words(mosi_copy)


def test_corrupt_words_file(mosi_copy):
    require("h5py", H5PY_WHY)
    (mosi_copy / "CMU_MOSI_ModifiedTimestampedWords.csd").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="corrupt or not HDF5"):
        read_words(mosi_copy)


def test_segment_words_by_midpoint():
    intervals = np.array([[0.0, 0.5], [0.5, 1.0], [1.0, 1.4], [1.4, 2.2], [2.2, 3.0]])
    words = ["hello", "sp", "world", "again", "later"]
    # midpoints 0.25 0.75 1.2 1.8 2.6: a word belongs where its midpoint falls
    assert segment_words(intervals, words, 0.0, 1.9) == ["hello", "world", "again"]
    assert segment_words(intervals, words, 1.9, 3.0) == ["later"]


def test_mosi_timestamped_words_real(mosi_dir):
    require("h5py", H5PY_WHY)
    from models.data.mosi import _segment_word_lists, read_scores, read_transcripts

    words = read_words(mosi_dir)
    assert len(words) == 93
    scores = read_scores(mosi_dir)
    segments = sorted(scores)
    lists, fallback = _segment_word_lists(mosi_dir, segments, scores, "timestamped")
    assert fallback <= 5
    assert lists["03bSnISJMiM_1"] == "anyhow it was really good".split()
    transcripts = dict(read_transcripts(mosi_dir))
    same = sum(" ".join(lists[s]) == transcripts[s].lower() for s in segments)
    assert same / len(segments) > 0.85  # the rest differ by a word at a boundary
    assert all("sp" not in lists[s] for s in segments)


def test_loaders_import_the_containers_not_the_registry():
    """mosi, spoken and synthetic build `DatasetBundle`s without importing the registry that
    names them (no import cycle); the registry still knows every dataset."""
    import subprocess

    code = ("import sys, models.data.mosi, models.data.spoken, models.data.synthetic; "
            "print('models.data.registry' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
    from models.data.registry import DATASETS

    assert DATASETS == ("mosi-utt", "mosi-text", "synthetic", "spoken-mosi")
