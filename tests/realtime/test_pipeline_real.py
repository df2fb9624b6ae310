"""The pipeline on the real extractors (Whisper, mediapipe, MiniLM, torchaudio features)
and a registry model: deterministic --fast replay, words and a face from a short clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from models.env import OFFLINE_ENV
from realtime.clock import ReplayClock
from realtime.pipeline import Pipeline
from realtime.sources import FileSource
from tests.helpers import REPO, media

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """An untrained registry MMLatch for the real extractors' feature sizes."""
    from models import checkpoint, registry
    from models.base import InputDims
    from realtime.extract import acoustic, face, text

    folder = tmp_path_factory.mktemp("ckpt")
    dims = InputDims(text.TEXT_DIM, acoustic.ACOUSTIC_DIM, face.FACE_DIM)
    checkpoint.save(registry.create("mmlatch", dims), folder)
    return folder


@pytest.fixture(scope="module")
def engine(checkpoint_dir):
    from realtime.engine import Engine
    from realtime.runtime import apply_process_settings

    apply_process_settings()  # as every entry point does before it loads models
    return Engine.load(checkpoint_dir)


def test_real_replay_is_deterministic_and_hears_the_words(engine, tmp_path):
    clip = media.face_video(tmp_path, seconds=4.0, fps=15,
                            with_audio_text="I really love this movie")
    runs = []
    for _ in range(2):
        pipe = Pipeline(FileSource(clip, realtime=False, clock=ReplayClock()), engine)
        pipe.run_to_end()
        runs.append(pipe.store.history())
    a, b = runs
    assert [(p.t_end_s, p.sentiment, p.words, p.face) for p in a] == [
        (p.t_end_s, p.sentiment, p.words, p.face) for p in b]
    heard = " ".join(w for p in a for w in p.new_words)
    assert media.wer("I really love this movie", heard) <= 0.2, heard
    assert all(p.face for p in a[2:])
    last = a[-1]
    assert -3 <= last.sentiment <= 3 and last.masks is not None
    assert last.signals.smile >= 0 and last.model_name == "mmlatch"


def test_a_session_process_has_the_mmap_threshold_fixed(engine):
    from realtime.heap import DEFAULT_MMAP_THRESHOLD_BYTES, heap_mib, mmap_threshold_fixed

    if heap_mib() is None:
        pytest.skip("glibc only")
    assert mmap_threshold_fixed() == DEFAULT_MMAP_THRESHOLD_BYTES


def test_engine_rejects_a_model_for_other_feature_sizes(tmp_path):
    from models import checkpoint, registry
    from models.base import DimensionMismatch, InputDims
    from realtime.engine import Engine, EngineError

    checkpoint.save(registry.create("mmlatch", InputDims(300, 74, 35)), tmp_path)
    with pytest.raises(EngineError, match="text=300") as err:  # the one error of Engine.load
        Engine.load(tmp_path)
    assert isinstance(err.value.__cause__, DimensionMismatch)


def test_a_loaded_engine_runs_blas_and_whisper_on_one_thread(checkpoint_dir):
    """The process settings (`realtime.runtime.ProcessSettings` says why): every BLAS on one
    thread, those loaded by then and OpenCV's, which a session's face stage loads after the
    engine; the shared Whisper loaded with one CTranslate2 thread. In a fresh process, so
    that what other tests imported first does not decide which libraries are loaded."""
    code = (
        "import json, sys\n"
        "import numpy\n"
        "from realtime.engine import Engine\n"
        "from realtime.runtime import apply_process_settings\n"
        "from realtime.extract.asr import load_whisper\n"
        "apply_process_settings()\n"
        "engine = Engine.load(sys.argv[1])\n"
        "import cv2  # as a session's first face stage does, after the engine loads\n"
        "from threadpoolctl import threadpool_info\n"
        "blas = [(lib['filepath'], lib['num_threads']) for lib in threadpool_info()\n"
        "        if lib['user_api'] == 'blas']\n"
        "one = engine.stages.new_asr.transcriber is load_whisper('tiny.en', 'cpu', 1)\n"
        "print(json.dumps({'blas': blas, 'one_whisper': one}))\n")
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(REPO)}
    env.pop("OPENBLAS_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run([sys.executable, "-c", code, str(checkpoint_dir)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(got["blas"]) >= 2, got  # numpy's and OpenCV's
    assert all(threads == 1 for _, threads in got["blas"]), got
    assert got["one_whisper"]
