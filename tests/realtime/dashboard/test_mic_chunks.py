"""Streamed microphone chunks: read once then deleted; unhandled ones swept and counted;
nothing outside Gradio's upload folder is read or deleted."""

from __future__ import annotations

import wave

import numpy as np

from realtime.dashboard.mic_chunks import ChunkStore

SAMPLES = (np.sin(np.arange(9600) / 10.0) * 8000).astype(np.int16)


def _chunk(folder, name="audio.wav"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(SAMPLES.tobytes())
    return path


def test_a_taken_chunk_is_read_then_deleted_with_its_folder(tmp_path):
    store = ChunkStore(tmp_path / "cache")
    path = _chunk(tmp_path / "cache" / "3f2a")
    rate, data = store.take(path)
    assert rate == 48000 and np.array_equal(np.asarray(data).reshape(-1), SAMPLES)
    assert not path.parent.exists()
    outside = _chunk(tmp_path / "elsewhere")
    assert store.take(outside) is None and outside.exists()  # neither read nor deleted


def test_sweep_deletes_chunks_seen_twice_and_counts_them(tmp_path):
    root = tmp_path / "cache"
    store = ChunkStore(root)
    old = _chunk(root / "a")
    assert store.sweep() == 0 and old.exists()  # first seen now: may still be handled
    new = _chunk(root / "b")
    upload = _chunk(root / "c")  # a user's upload that happens to share the name
    assert store.sweep(keep=upload) == 1
    assert not old.exists() and new.exists() and upload.exists()
    other = _chunk(root / "d", "talk.mp4")
    assert store.sweep(final=True, keep=upload) == 1
    assert not new.exists() and upload.exists() and other.exists()
    assert store.dropped == 2


def test_take_sweeps_every_n_chunks(tmp_path):
    root = tmp_path / "cache"
    store = ChunkStore(root, sweep_every=2)
    lost = _chunk(root / "lost")
    store.take(_chunk(root / "1"))
    store.take(_chunk(root / "2"))  # sweep 1: sees `lost`
    store.take(_chunk(root / "3"))
    store.take(_chunk(root / "4"))  # sweep 2: deletes it
    assert not lost.exists() and store.dropped == 1 and store.taken == 4
    assert not any(root.iterdir())


def test_a_chunk_swept_before_it_is_handled_is_counted_not_raised(tmp_path):
    root = tmp_path / "cache"
    store = ChunkStore(root)
    path = _chunk(root / "late")
    path.unlink()  # another page's sweep got there first
    assert store.take(path) is None and store.dropped == 1
