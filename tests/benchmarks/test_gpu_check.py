"""The GPU check as the lent machine runs it: its Python has torch and triton but no PyAV,
faster_whisper, CTranslate2, mediapipe, Gradio or Ray. Here those imports are blocked (a
sys.meta_path finder in a sitecustomize that every child process loads too) and the same
commands run on the CPU; each step runs in its own process, a failing or slow one does not
stop the next, and every result file names the device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.gpu_check import Step, run_all
from benchmarks.streams import save_windows, warm_up_shapes

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("av", "faster_whisper", "ctranslate2", "mediapipe", "gradio", "ray")
BLOCKER = f'''
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, _Blocked())
'''


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict:
    import os

    site = tmp_path_factory.mktemp("blocked-site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}


def run_blocked(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def windows_file(tmp_path_factory) -> Path:
    from realtime.extract.stages import feature_layout

    lay = feature_layout()
    rng = np.random.default_rng(0)
    windows = [tuple(rng.standard_normal((t, d)).astype(np.float32)
                     for d in (lay.text_dim, lay.audio_dim, lay.video_dim)) for t in (1, 5, 9)]
    return save_windows(tmp_path_factory.mktemp("gpu") / "windows_demo.npz", windows)


def test_the_blocker_blocks(blocked_env):
    r = run_blocked(blocked_env, "-c", "import av")
    assert r.returncode == 1 and "(blocked)" in r.stderr


def test_engine_without_stages_imports_no_media_package(blocked_env):
    r = run_blocked(blocked_env, "-c", (
        "import sys\nimport numpy as np\nfrom realtime.engine import Engine\n"
        "e = Engine.load(device='cpu', stages=False, words=False)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r}))\n"
        "dims = (e.layout.text_dim, e.layout.audio_dim, e.layout.video_dim)\n"
        "w = tuple(np.zeros((2, d), np.float32) for d in dims)\n"
        "print(e.predict_batch([w], with_masks=False)[0].masks)"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["[]", "None"]


@pytest.mark.parametrize("module", ["benchmarks.kernel", "benchmarks.check_gpu",
                                    "benchmarks.expression_gpu"])
def test_gpu_benchmarks_skip_cleanly_without_cuda_or_media_packages(blocked_env, module):
    r = run_blocked(blocked_env, "-m", module)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("no CUDA device; skipped")


def test_streams_on_recorded_windows_runs_blocked(blocked_env, windows_file, tmp_path):
    out = tmp_path / "streams.json"
    r = run_blocked(blocked_env, "-m", "benchmarks.streams", "--device", "cpu", "--windows",
                    str(windows_file), "--streams", "1", "--seconds", "0.3", "--max-batch",
                    "4", "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["warm_up"]["batches"] == 2  # on the CPU: batch sizes 1 and --max-batch
    assert result["results"]["local"]["batched"]["1"]["answered"] > 0


def test_the_whole_check_runs_blocked_and_writes_every_file(blocked_env, windows_file,
                                                            tmp_path):
    out = tmp_path / "out"
    r = run_blocked(blocked_env, "-m", "benchmarks.gpu_check", "--quick", "--out", str(out),
                    "--gpu", str(windows_file.parent), "--budget-s", "240")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    summary = json.loads((out / "gpu_check_summary.json").read_text())
    status = {k: v["status"] for k, v in summary["steps"].items()}
    assert status == {"probe": "ok", "kernel": "skipped", "check_gpu": "skipped",
                      "streams": "ok", "expression": "skipped", "whisper": "skipped"}
    probe = summary["steps"]["probe"]["extra"]
    assert probe["av"] is None and probe["faster_whisper"] is None and not probe["cuda"]
    assert summary["steps"]["whisper"]["reason"] == "skipped: no CUDA device"
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and "streams_cpu.json" in files and "whisper_batch_cpu.json" in files
    for name in files:
        if name.endswith(".json"):
            assert json.loads((out / name).read_text())["device"]


def test_a_failing_or_slow_step_does_not_stop_the_next(tmp_path):
    plan = [Step("fails", ["json.tool", "--no-such-flag"], 30, "fails.json"),
            Step("slow", ["timeit", "-n", "1", "import time; time.sleep(30)"], 1.0,
                 "slow.json"),
            Step("later", ["timeit", "-n", "1", "pass"], 30, "later.json"),
            Step("decided", ["json.tool"], 30, "decided.json", skip="skipped: no reason")]
    results = run_all(sys.executable, plan, tmp_path, "test device", budget_s=60)
    assert results["fails"].status == "failed" and "exit status 2" in results["fails"].reason
    assert results["slow"].status == "failed" and results["slow"].reason.startswith("timed out")
    assert results["slow"].seconds < 10
    assert results["later"].status == "ok" and results["decided"].status == "skipped"
    written = json.loads((tmp_path / "fails.json").read_text())
    assert written["device"] == "test device" and written["status"] == "failed"
    assert not (tmp_path / "later.json").exists()  # an ok step writes its own file


def test_a_step_past_the_budget_is_skipped(tmp_path):
    results = run_all(sys.executable, [Step("late", ["timeit", "pass"], 30, "late.json")],
                      tmp_path, "test device", budget_s=5)
    assert results["late"].status == "skipped" and "left of the budget" in results["late"].reason


def test_warm_up_covers_every_batch_size_and_length_class():
    windows = [tuple(np.zeros((20, 2), np.float32) for _ in range(3))]
    batches = warm_up_shapes(windows, max_batch=64, full=True)
    shapes = {(len(b), b[0][0].shape[0]) for b in batches}
    sizes = {*range(1, 17), 32, 64}
    assert shapes == {(n, t) for n in sizes for t in (1, 16, 17, 20)}
    assert {(len(b), b[0][0].shape[0]) for b in warm_up_shapes(windows, 64, full=False)} == {
        (1, 20), (64, 20)}


def test_expression_network_gives_the_same_answer_on_its_device():
    from benchmarks.expression_gpu import run
    from realtime.assets import AssetMissing, expression_model_path

    try:
        weights = expression_model_path()
    except AssetMissing as exc:
        pytest.skip(str(exc))
    result = run(weights, None, [1, 3], repeats=2, device="cpu")
    assert result["agree"] and result["cuda_vs_cpu_max_abs_diff"] == 0.0
    assert set(result["batch_ms_cuda"]) == {"1", "3"} and result["crops"] == "random"
