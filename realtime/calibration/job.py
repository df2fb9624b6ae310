"""A background calibration run for the dashboard, and the personal models it leaves.

`CalibrationJob` runs ``python -m models.calibrate --progress`` in a niced subprocess (so
training never holds the dashboard's interpreter or the pipeline's threads), follows its
``epoch E/N l1 X`` lines from a reader thread into a `Progress`, and has a stop path
(`stop`: the process is terminated and the reader ends with its output). The model is
written to a ``.tmp`` folder and renamed when the run succeeds, so a stopped or failed run
leaves no half-written model behind.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from models import checkpoint
from models.env import REPO_ROOT
from realtime.clock import perf_s
from realtime.serving.sessions import scrub_error

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) l1 ([0-9.eE+-]+|nan)$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """A calibration run: ``state`` idle | running | done | failed | stopped; epochs done of
    ``epochs``; ``l1``: the last epoch's mean training L1 (sentiment units); ``before`` /
    ``after``: the session's L1 with the base and the personal model (when done)."""

    state: str = "idle"
    session: Path | None = None
    samples: int = 0
    epoch: int = 0
    epochs: int = 0
    l1: float | None = None
    before: float | None = None
    after: float | None = None
    model_dir: Path | None = None
    message: str = ""
    elapsed_s: float = 0.0  # since the run started (compute time, `perf_s`)

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class PersonalModel:
    path: Path
    samples: int | None
    l1_before: float | None
    l1_after: float | None

    @property
    def label(self) -> str:
        parts = [self.path.name]
        if self.samples is not None:
            parts.append(f"{self.samples} windows")
        if self.l1_before is not None and self.l1_after is not None:
            parts.append(f"L1 {self.l1_before:.2f}\u2192{self.l1_after:.2f}")
        return " \u00b7 ".join(parts)


def read_personal(folder: Path) -> PersonalModel | None:
    """A personal model folder's summary from its config.json; None if it is not one
    (unreadable, or a checkpoint that calibration did not make)."""
    try:
        meta = checkpoint.read_meta(folder)
    except checkpoint.CheckpointError:
        return None
    if "session_samples" not in meta:
        return None  # not made by calibration
    return PersonalModel(folder, meta.get("session_samples"), meta.get("session_l1_before"),
                         meta.get("session_l1_after"))


class CalibrationJob:
    """``python -m models.calibrate`` in a niced subprocess writing to ``out`` + ".tmp",
    renamed to ``out`` when it succeeds. A reader thread follows its output; `stop` ends it
    (and the reader ends with the output)."""

    def __init__(self, session: Path, samples: int, base: Path, out: Path, epochs: int,
                 on_done: Callable[[Progress], None] | None = None) -> None:
        self.out = out
        self._tmp = out.with_name(out.name + ".tmp")
        self._cmd = [sys.executable, "-m", "models.training.calibrate", "--session", str(session),
                     "--base", str(base), "--out", str(self._tmp), "--epochs", str(epochs),
                     "--progress"]
        if os.name == "posix" and shutil.which("nice"):
            self._cmd = ["nice", "-n", "5", *self._cmd]
        self._progress = Progress("running", session, samples, 0, epochs,
                                  message="starting\u2026")
        self._tail: deque[str] = deque(maxlen=8)
        self._t0_s = perf_s()
        self._lock = threading.Lock()
        self._stopping = False
        self._on_done = on_done
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    def start(self) -> CalibrationJob:
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._t0_s = perf_s()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(self._cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._thread = threading.Thread(target=self._follow, name="calibration", daemon=True)
        self._thread.start()
        log.info("calibration started (pid %d): %s", self._proc.pid, " ".join(self._cmd))
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _set(self, **changes) -> None:
        with self._lock:
            self._progress = replace(self._progress, elapsed_s=perf_s() - self._t0_s,
                                     **changes)

    def _follow(self) -> None:
        proc = self._proc
        for line in proc.stdout:
            line = line.strip()
            m = EPOCH_LINE.match(line)
            if m:
                self._set(epoch=int(m[1]), epochs=int(m[2]), l1=float(m[3]),
                          message=f"epoch {m[1]}/{m[2]}")
            elif line:
                self._tail.append(line)
        rc = proc.wait()
        if self._stopping:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._set(state="stopped", message="calibration stopped; no model saved")
        elif rc != 0:
            shutil.rmtree(self._tmp, ignore_errors=True)
            why = scrub_error(self._tail[-1]) if self._tail else f"exit status {rc}"
            self._set(state="failed", message=f"calibration failed: {why}")  # no path shown
        else:
            self._finish()
        log.info("calibration %s: %s", self.progress.state, self.progress.message)
        if self.progress.state == "failed" and self._tail:
            log.warning("last output of the calibration run:\n%s", "\n".join(self._tail))
        if self._on_done is not None:
            self._on_done(self.progress)

    def _finish(self) -> None:
        try:
            self._tmp.rename(self.out)
        except OSError as exc:
            self._set(state="failed", message="could not save the personal model: "
                                              f"{scrub_error(str(exc))}")
            return
        info = read_personal(self.out)
        self._set(state="done", model_dir=self.out,
                  before=info.l1_before if info else None,
                  after=info.l1_after if info else None,
                  message=f"personal model saved: {self.out.name}")
