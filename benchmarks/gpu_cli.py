"""The command-line frame the GPU-only benchmarks share (`benchmarks.kernel`,
`benchmarks.check_gpu`): the results-file arguments, the log level, the clean skip without
CUDA and the results file named after the device.

`add_results_args(ap, name)` adds ``--out DIR`` (default benchmarks/results) and ``--json
FILE`` (default ``DIR/<name>_<device>.json``) and ``--log-level``. `parse_on_cuda(ap, argv)`
parses, configures logging and returns the arguments; without a CUDA device it prints
"no CUDA device; skipped" and returns None (the caller exits 0, writing nothing).
`results_path(args, name, device)` is the results file, its folder created;
`write_report(args, name, report, ok)` writes ``report`` (its ``device`` names the file) there,
prints it and returns the exit status (0 when ``ok``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from models.env import add_log_level, configure_logging

RESULTS = Path(__file__).resolve().parent / "results"


def add_results_args(ap: argparse.ArgumentParser, name: str, extra_help: str = "") -> None:
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    ap.add_argument("--json", type=Path,
                    help=f"the results file (default: OUT/{name}_<device>.json){extra_help}")
    add_log_level(ap)


def parse_on_cuda(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace | None:
    args = ap.parse_args(argv)
    configure_logging(args.log_level)
    if not torch.cuda.is_available():
        print("no CUDA device; skipped")
        return None
    return args


def results_path(args: argparse.Namespace, name: str, device: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
    path = args.json or args.out / f"{name}_{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_report(args: argparse.Namespace, name: str, report: dict, ok: bool) -> int:
    """``report`` as JSON in `results_path` (named after ``report["device"]``), printed with
    an OK/FAILED line; 0 when ``ok``, else 1."""
    path = results_path(args, name, report["device"])
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(f"{'OK' if ok else 'FAILED'}; wrote {path}")
    return 0 if ok else 1
