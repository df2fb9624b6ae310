"""Every GPU check in one command, each step in its own process with its own time limit, for a
lent GPU machine whose own Python holds torch and triton but none of the product's media
packages (`make gpu-check`; docs/benchmarks.md "On a lent GPU").

    python -m benchmarks.gpu_check [--out DIR] [--gpu DIR] [--budget-s 450] [--quick]

Steps, in order (a failing or timed-out step is recorded and the next one runs):

* ``probe``: the device, torch, triton and whether Whisper can run here (faster_whisper,
  CTranslate2 and PyAV importable, CTranslate2 seeing a CUDA device, the Whisper model
  installed);
* ``kernel``: `benchmarks.kernel`; ``check_gpu``: `benchmarks.check_gpu`;
* ``streams``: `benchmarks.streams` on the windows recorded by `make gpu-windows` (``--gpu
  DIR``/windows_demo.npz), on CUDA when there is one, else on the CPU;
* ``expression``: `benchmarks.expression_gpu` on the recorded crops and weights;
* ``whisper``: `benchmarks.whisper_batch` on CUDA, or "skipped: <why>" from the probe.

Every step's results file is written into ``--out`` (default benchmarks/results; `make
gpu-check` passes the device tool's ``$OUT``), the device named in each: a step that wrote
none gets one saying why (``status``, ``reason``, the end of its output). Then
gpu_check_summary.json: per step ``status`` (ok, skipped or failed), ``reason``, ``seconds``,
``file`` and ``output_tail``. At most 8 files in all (what the device tool brings back).
The steps share ``--budget-s`` (each gets at most its own limit and what is left);
``--quick`` runs each with small sizes (the tests). Exit 1 if a step failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from realtime.clock import SessionClock, wall_time_iso

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SUMMARY = "gpu_check_summary.json"
TAIL_CHARS = 2000
MIN_STEP_S = 20.0  # a step given less than this is skipped: it could not load a model


@dataclass(frozen=True)
class Step:
    """One step: ``python -m <args>``, at most ``limit_s`` seconds, writing ``file``."""

    name: str
    args: list[str]
    limit_s: float
    file: str
    skip: str | None = None  # "skipped: why" decided before it runs


@dataclass
class Outcome:
    status: str  # "ok" | "skipped" | "failed"
    reason: str
    seconds: float
    file: str
    output_tail: str = ""
    extra: dict = field(default_factory=dict)


def probe() -> dict:
    """What this machine has (printed as JSON by ``--probe``, run as its own process: a
    broken CUDA library fails that process, not the check)."""
    import importlib
    import platform

    import torch

    info: dict = {"python": platform.python_version(), "torch": torch.__version__,
                  "cuda": torch.cuda.is_available(),
                  "device": (torch.cuda.get_device_name() if torch.cuda.is_available()
                             else "cpu")}
    for name in ("triton", "av", "faster_whisper", "ctranslate2"):
        try:
            info[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as exc:  # noqa: BLE001 - any failure means: not usable here
            info[name] = None
            info.setdefault("missing", []).append(f"{name} ({type(exc).__name__}: {exc})")
    info["whisper"] = whisper_blocker(info)
    return info


def whisper_blocker(info: dict) -> str | None:
    """Why Whisper cannot run on CUDA here ("skipped: ..."), or None."""
    if not info["cuda"]:
        return "skipped: no CUDA device"
    if info.get("missing") and any(not info[n] for n in ("av", "faster_whisper",
                                                          "ctranslate2")):
        return ("skipped: not importable here: " + "; ".join(info["missing"]) + " (their "
                "wheels and the Whisper model, about 145 MB together, exceed the device "
                "tool's 64 MiB carry limit; see docs/benchmarks.md)")
    import ctranslate2

    if ctranslate2.get_cuda_device_count() < 1:
        return (f"skipped: CTranslate2 {info['ctranslate2']} sees no CUDA device (its wheels "
                "are built for CUDA 12; this torch brings CUDA 13)")
    from realtime.assets import AssetMissing, whisper_model_dir

    try:
        whisper_model_dir("tiny.en")
    except AssetMissing as exc:
        return f"skipped: {exc}"
    return None


def slug(device: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")


def steps(info: dict, out: Path, gpu: Path, quick: bool) -> list[Step]:
    """The steps for a machine described by ``info`` (`probe`)."""
    dev = slug(info["device"])
    cuda = "cuda" if info["cuda"] else "cpu"
    kernel = ["--sizes", "1,8"] if quick else []
    streams = (["--streams", "1,2", "--seconds", "0.5", "--max-batch", "8"] if quick else
               ["--streams", "250,500,1000,2000,4000", "--seconds", "6", "--max-batch", "1024",
                "--max-wait-ms", "5"])
    whisper = ["--k", "1,2", "--rounds", "1"] if quick else ["--k", "1,4,8", "--rounds", "2"]
    return [
        Step("kernel", ["benchmarks.kernel", *kernel, "--json",
                        str(out / f"kernels_gate_mask_{dev}.json")], 150,
             f"kernels_gate_mask_{dev}.json"),
        Step("check_gpu", ["benchmarks.check_gpu", "--json",
                           str(out / f"kernels_check_gpu_{dev}.json")], 90,
             f"kernels_check_gpu_{dev}.json"),
        Step("streams", ["benchmarks.streams", "--device", cuda, "--windows",
                         str(gpu / "windows_demo.npz"), *streams, "--json",
                         str(out / f"streams_{dev}.json")], 200, f"streams_{dev}.json"),
        Step("expression", ["benchmarks.expression_gpu", "--crops", str(gpu / "crops.npz"),
                            "--weights", str(gpu / "emotion_model.hdf5"),
                            *(["--repeats", "5"] if quick else []), "--json",
                            str(out / f"expression_gpu_{dev}.json")], 60,
             f"expression_gpu_{dev}.json"),
        Step("whisper", ["benchmarks.whisper_batch", "--device", cuda, *whisper, "--json",
                         str(out / f"whisper_batch_{dev}.json")], 120,
             f"whisper_batch_{dev}.json", skip=info["whisper"]),
    ]


def run_step(python: str, args: list[str], limit_s: float) -> tuple[int | None, str, float]:
    """(exit status or None when it ran past ``limit_s``, its output, seconds). The step runs
    in a process group of its own, killed whole when its time is up."""
    clock = SessionClock()
    start_s = clock.now_s()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([python, "-m", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=limit_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = None
    return code, output or "", round(clock.now_s() - start_s, 1)


def outcome(step: Step, code: int | None, output: str, seconds: float,
            limit_s: float) -> Outcome:
    tail = output[-TAIL_CHARS:]
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    skipped = [ln for ln in lines if ln.startswith("skipped") or ln.endswith("; skipped")]
    if code is None:
        return Outcome("failed", f"timed out after {limit_s:.0f} s", seconds, step.file, tail)
    if code != 0:
        last = lines[-1] if lines else "no output"
        return Outcome("failed", f"exit status {code}: {last}", seconds, step.file, tail)
    if skipped:
        return Outcome("skipped", skipped[-1], seconds, step.file, tail)
    return Outcome("ok", "", seconds, step.file, tail)


def run_all(python: str, plan: list[Step], out: Path, device: str, budget_s: float,
            clock: SessionClock | None = None) -> dict[str, Outcome]:
    """Runs ``plan`` in order within ``budget_s``; writes each step's file when the step did
    not (its status and why) and returns the outcomes."""
    clock = clock or SessionClock()
    end_s = clock.now_s() + budget_s
    results: dict[str, Outcome] = {}
    for step in plan:
        left_s = end_s - clock.now_s()
        if step.skip:
            result = Outcome("skipped", step.skip, 0.0, step.file)
        elif left_s < MIN_STEP_S:
            result = Outcome("skipped", f"skipped: {left_s:.0f} s left of the budget",
                             0.0, step.file)
        else:
            limit_s = min(step.limit_s, left_s)
            print(f"[gpu-check] {step.name}: python -m {' '.join(step.args)} "
                  f"(limit {limit_s:.0f} s)", flush=True)
            result = outcome(step, *run_step(python, step.args, limit_s), limit_s)
        path = out / step.file
        if result.status != "ok" and not path.is_file():
            path.write_text(json.dumps({"device": device, "step": step.name,
                                        **asdict(result)}, indent=1) + "\n")
        print(f"[gpu-check] {step.name}: {result.status} {result.reason} "
              f"({result.seconds} s)", flush=True)
        results[step.name] = result
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    ap.add_argument("--gpu", type=Path, default=REPO / ".gpu",
                    help="what `make gpu-windows` recorded (windows, crops, weights)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="all steps together")
    ap.add_argument("--quick", action="store_true", help="small sizes (tests)")
    ap.add_argument("--python", default=sys.executable, help="the Python of the steps")
    ap.add_argument("--probe", action="store_true", help="only print the probe's JSON")
    args = ap.parse_args(argv)
    if args.probe:
        print(json.dumps(probe()))
        return 0
    clock = SessionClock()
    args.out.mkdir(parents=True, exist_ok=True)
    code, output, seconds = run_step(args.python, ["benchmarks.gpu_check", "--probe"], 60)
    try:
        info = json.loads(output.strip().splitlines()[-1]) if code == 0 else None
    except (json.JSONDecodeError, IndexError):
        info = None
    if info is None:
        info = {"device": "unknown", "cuda": False, "whisper": "skipped: the probe failed"}
        probed = Outcome("failed", f"exit status {code}", seconds, SUMMARY,
                         output[-TAIL_CHARS:])
    else:
        probed = Outcome("ok", "", seconds, SUMMARY, extra=info)
    plan = steps(info, args.out, args.gpu, args.quick)
    results = {"probe": probed, **run_all(args.python, plan, args.out, info["device"],
                                          args.budget_s - seconds, clock)}
    summary = {"device": info["device"], "started": wall_time_iso(),
               "total_s": round(clock.now_s(), 1), "budget_s": args.budget_s,
               "steps": {name: asdict(r) for name, r in results.items()}}
    (args.out / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({n: f"{r.status} {r.reason}".strip() for n, r in results.items()},
                     indent=1))
    print(f"wrote {args.out / SUMMARY}")
    return 1 if any(r.status == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
