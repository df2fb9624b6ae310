"""realtime.runtime: the process settings are one explicit call (loading an engine sets
nothing process-wide); the runtime opens engine, backend, shared models and registry in order
and closes them in reverse; the face weight W is decided once, from the flag or the
checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import realtime.engine
from realtime.runtime import Runtime, RuntimeConfig
from tests.helpers import REPO
from tests.realtime.test_pipeline import fake_engine

PROBE = """
import json, os, torch
from threadpoolctl import threadpool_info
from realtime import heap
before = torch.get_num_threads()
{action}
print(json.dumps({{
    "torch_before": before, "torch": torch.get_num_threads(),
    "openblas_env": os.environ.get("OPENBLAS_NUM_THREADS"),
    "blas": sorted({{lib["num_threads"] for lib in threadpool_info()
                    if lib["user_api"] == "blas"}}),
    "mmap_threshold": heap.mmap_threshold_fixed(),
    "offline": os.environ.get("HF_HUB_OFFLINE")}}))
"""


def probe(action: str) -> dict:
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "HF_HUB_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", PROBE.format(action=action)], cwd=REPO,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_loading_an_engine_changes_nothing_process_wide():
    from realtime.assets import AssetMissing, default_model_dir

    try:
        default_model_dir()
    except AssetMissing as exc:
        pytest.skip(f"no bundled model: {exc}")
    got = probe("from realtime.engine import Engine\n"
                "Engine.load(device='cpu', stages=False, words=False)")
    assert got["torch"] == got["torch_before"] and got["openblas_env"] is None
    assert got["mmap_threshold"] is None and got["offline"] is None


def test_apply_process_settings_sets_threads_blas_malloc_and_offline():
    got = probe("from realtime.runtime import ProcessSettings, apply_process_settings\n"
                "apply_process_settings(ProcessSettings(device='cpu'))")
    assert got["torch"] == 1 and got["openblas_env"] == "1" and got["blas"] == [1]
    assert got["offline"] == "1"
    if got["mmap_threshold"] is not None:  # glibc only
        assert got["mmap_threshold"] == 128 * 1024


def executor_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("executor:")]


@pytest.fixture
def loads(monkeypatch):
    """Engine.load returns a stand-in engine and records its keyword arguments."""
    calls = []

    def load(cls, *args, **kwargs):
        calls.append(kwargs)
        return fake_engine()

    monkeypatch.setattr(realtime.engine.Engine, "load", classmethod(load))
    return calls


def test_a_runtime_opens_engine_shared_models_and_registry_and_closes_them(loads):
    with Runtime.open(RuntimeConfig(shared_models=True, max_sessions=3, hop_s=0.5,
                                    face_weight=None)) as rt:
        assert loads[0]["face_weight"] is None  # "not given" reaches the engine as None
        assert rt.served is None and rt.models is rt.shared
        assert rt.sessions.engine is rt.engine and rt.sessions.shared is rt.shared
        assert rt.sessions.max_sessions == 3 and rt.sessions.hop_s == 0.5
        assert executor_threads()
    assert rt.sessions.ids() == [] and not executor_threads()
    with Runtime.open(RuntimeConfig()) as rt:  # one process, no batching: the engine itself
        assert rt.shared is None and rt.models is None


def test_a_backend_that_cannot_start_leaves_nothing_open(loads, monkeypatch):
    from realtime.serving import backend

    def refuse(*args, **kwargs):
        raise backend.ServingError("no ray here")

    monkeypatch.setattr(backend, "open_models", refuse)
    with pytest.raises(backend.ServingError, match="no ray here"):
        Runtime.open(RuntimeConfig(serve="ray", shared_models=True))


def test_the_face_weight_is_the_flag_else_the_checkpoints_else_zero(tmp_path):
    from models import checkpoint

    def write_meta(meta: dict) -> None:
        doc = {"format": checkpoint.FORMAT, "meta": meta}
        (tmp_path / checkpoint.CONFIG).write_text(json.dumps(doc))

    write_meta({})
    assert checkpoint.face_weight(tmp_path) == 0.0
    assert checkpoint.face_weight(tmp_path, 1.5) == 1.5
    write_meta({"face_weight": 0.75})
    assert checkpoint.face_weight(tmp_path) == 0.75
    assert checkpoint.face_weight(tmp_path, 0.0) == 0.0  # a flag of 0 wins too
    with pytest.raises(ValueError, match=r"\[-6, 6\], got 9"):
        checkpoint.face_weight(tmp_path, 9.0)
    write_meta({"face_weight": "high"})
    with pytest.raises(ValueError, match="face_weight must be a number"):
        checkpoint.face_weight(tmp_path)
