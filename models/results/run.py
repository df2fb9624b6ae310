"""The results table: every model x seed on mosi-utt and mosi-text -> docs/results.md.

    python -m models.results                      # 5 seeds, 2 parallel single-thread jobs
    python -m models.results --seeds 1 --models mmlatch late_fusion --data mosi-utt

Each run is ``python -m models.train`` in a subprocess (one CPU thread); its metrics (the
JSON last line) are stored in RUNS/results.json as they finish, so an interrupted table resumes
where it stopped. The markdown reports mean ± std over seeds (accuracies and F1 in %), the
per-seed binary accuracy, and the anchors from the literature with their sources
(models.results.report writes the page). mosi-utt is shown three ways: with the epoch chosen on
its validation videos (the issue's protocol); with cross-fitted epoch selection
(models.training.crossfit), because those validation videos are contaminated
(models.training.leakage, whose
probe table is printed with it); and, for RECIPE_MODELS, with a cross-fitted choice over the
epochs of every training recipe of models.training.recipes (extra runs; ``--no-recipes`` skips
them).
Run folders are keyed by a hash of the training arguments (`run_dir`), so a changed recipe
never resumes from old runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from models.data.base import DataError
from models.data.registry import load_dataset
from models.env import OFFLINE_ENV, REPO_ROOT, add_log_level, cache_dir, configure_logging
from models.results.report import render
from models.training import leakage, recipes

logger = logging.getLogger(__name__)

# The experiment grid: every model on every dataset.
MODELS = ("mmlatch", "mmmie", "late_fusion", "text_only", "mult", "mmlatch_nofb")
DATA = ("mosi-utt", "mosi-text")
# Per-dataset training arguments, the same for every model. mosi-text costs ~15x more per
# epoch than mosi-utt (1284 word sequences of 384-d MiniLM vectors vs 54 video sequences), so
# its epochs are capped, its batches length-bucketed (about 1.7x faster for MMLatch: the
# packed LSTMs loop over a batch's longest sequence) and its all-zero audio/video LSTMs run
# once per batch (same maths, model option zero_input_shortcut; another ~1.7x), to keep
# the table near an hour on 2 cores; early stopping still picks the best epoch. mosi-utt also
# scores the test videos with cross-fitted epoch selection (models.training.crossfit: its
# validation videos are contaminated).
DATA_ARGS: dict[str, list[str]] = {
    "mosi-utt": ["--crossfit"],
    "mosi-text": ["--max-epochs", "15", "--bucket", "--zero-input-shortcut"]}

# Run order within a dataset: mosi-utt seed by seed (every model on seed 0 first, so a partial
# table still compares models on the same seeds); mosi-text model by model, cheapest first, so
# that as many models as possible have all their seeds when time runs short.
COST_ORDER = ("text_only", "late_fusion", "mmmie", "mult", "mmlatch", "mmlatch_nofb")


def schedule(models: list[str], datasets: list[str], seeds: int) -> list[tuple[str, str, int]]:
    jobs = []
    for d in datasets:
        if d == "mosi-text":
            ranked = sorted(models, key=lambda m: COST_ORDER.index(m) if m in COST_ORDER
                            else len(COST_ORDER))
            jobs += [(m, d, s) for m in ranked for s in range(seeds)]
        else:
            jobs += [(m, d, s) for s in range(seeds) for m in models]
    return jobs


def run_dir(runs: Path, data: str, model: str, seed: int, extra: list[str]) -> Path:
    """RUNS/<data>/<hash of the training arguments>/<model>/seed<N>: a changed recipe never
    resumes from runs made with another."""
    key = hashlib.sha1(json.dumps(extra).encode()).hexdigest()[:8]
    return runs / data / f"args-{key}" / model / f"seed{seed}"


def _record(model: str, meta: dict, metrics: dict) -> dict:
    record = {"model": model, "data": meta["data"], "seed": meta["seed"], "metrics": metrics,
              "best_epoch": meta["best_epoch"], "epochs": meta["epochs"],
              "description": meta.get("description", "")}
    if "test_crossfit" in meta:
        record["metrics_crossfit"] = meta["test_crossfit"]
        record["crossfit_epochs"] = meta["crossfit_epochs"]
    return record


def finished(out: Path) -> dict | None:
    """The record of a finished run folder (metrics.json, or a checkpoint whose config.json
    holds the test metrics: a run that finished after its parent process was stopped)."""
    done = out / "metrics.json"
    if done.is_file():
        return json.loads(done.read_text())
    config = out / "config.json"
    if config.is_file():
        meta = json.loads(config.read_text()).get("meta", {})
        if "test" in meta:
            record = _record(json.loads(config.read_text())["model"], meta, meta["test"])
            done.write_text(json.dumps(record) + "\n")
            return record
    return None


def run_one(model: str, data: str, seed: int, runs: Path, extra: list[str]) -> dict:
    """One run; ``extra``: all its extra training arguments (see `train_args`)."""
    out = run_dir(runs, data, model, seed, extra)
    done = out / "metrics.json"
    record = finished(out)
    if record is not None:
        return record
    cmd = [sys.executable, "-m", "models.training.train", "--model", model, "--data", data,
           "--seed", str(seed), "--out", str(out), "--no-progress", "--threads", "1", *extra]
    env = {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": "1"}
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    meta = json.loads((out / "config.json").read_text())["meta"]
    record = _record(model, meta, metrics)
    done.write_text(json.dumps(record) + "\n")
    return record


def train_args(data: str, train_arg: list[str], words: str) -> list[str]:
    """The extra models.train arguments of a run on ``data``: DATA_ARGS, then the user's."""
    return [*DATA_ARGS.get(data, []), *train_arg,
            *(["--words", words] if data == "mosi-text" else [])]


def recipe_jobs(models: list[str], seeds: int) -> list[tuple[str, str, int]]:
    """(recipe, model, seed) of the extra mosi-utt recipe runs (the issue recipe's runs are
    the main table's)."""
    return [(r, m, s) for s in range(seeds) for r in recipes.RECIPES if r != "issue"
            for m in recipes.RECIPE_MODELS if m in models]


def attach_pooled(records: list[dict], runs: Path, extra_of: dict[str, list[str]]) -> None:
    """Adds ``metrics_pooled`` / ``pooled_chosen`` (models.training.recipes.pooled over every
    recipe)
    to each mosi-utt record of a RECIPE_MODELS model whose recipe runs all finished;
    ``extra_of``: recipe -> its models.training.train arguments."""
    for r in records:
        if r["data"] != "mosi-utt" or r["model"] not in recipes.RECIPE_MODELS:
            continue
        dirs = {name: run_dir(runs, "mosi-utt", r["model"], r["seed"], extra)
                for name, extra in extra_of.items()}
        if all((d / recipes.EPOCH_PREDS).is_file() for d in dirs.values()):
            result = recipes.pooled(dirs)
            r["metrics_pooled"], r["pooled_chosen"] = result.metrics, result.chosen


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--data", nargs="+", default=list(DATA))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2, help="parallel single-thread runs")
    p.add_argument("--runs", default=str(cache_dir() / "runs"), help="run folders")
    p.add_argument("--out", default=str(REPO_ROOT / "docs" / "results.md"))
    p.add_argument("--words", default="timestamped", choices=("timestamped", "transcripts"),
                   help="mosi-text word source (transcripts.csv where h5py is missing)")
    p.add_argument("--note", default="", help="a paragraph to print under the header")
    p.add_argument("--render-only", action="store_true",
                   help="write the table from the runs already finished; train nothing")
    p.add_argument("--train-arg", action="append", default=[],
                   help="extra argument for models.train (repeatable), e.g. --max-epochs=5")
    p.add_argument("--no-recipes", action="store_true",
                   help="skip the other mosi-utt training recipes (models.training.recipes)")
    args = add_log_level(p).parse_args(argv)
    configure_logging(args.log_level)
    runs = Path(args.runs)
    extra_of = {r: train_args("mosi-utt", [*args.train_arg, *recipes.RECIPES[r]], args.words)
                for r in recipes.RECIPES}
    # (recipe, model, data, seed, training arguments); the issue recipe's runs first
    jobs = [("issue", m, d, s, train_args(d, args.train_arg, args.words))
            for m, d, s in schedule(args.models, args.data, args.seeds)]
    if "mosi-utt" in args.data and not args.no_recipes:
        jobs += [(r, m, "mosi-utt", s, extra_of[r]) for r, m, s in
                 recipe_jobs(args.models, args.seeds)]
    records, failures = [], []
    recipe_records: dict[str, list[dict]] = {}

    def keep(recipe: str, record: dict) -> None:
        (records if recipe == "issue" else recipe_records.setdefault(recipe, [])).append(record)

    if args.render_only:
        for recipe, m, d, s, extra in jobs:
            record = finished(run_dir(runs, d, m, s, extra))
            if record is not None:
                keep(recipe, record)
        jobs = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, m, d, s, runs, extra): recipe
                   for recipe, m, d, s, extra in jobs}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="runs", file=sys.stderr):
            try:
                keep(futures[fut], fut.result())
            except RuntimeError as exc:
                failures.append(str(exc))
                logger.error("%s", exc)
    if recipe_records:
        attach_pooled(records, runs, extra_of)
    given = list(argv if argv is not None else sys.argv[1:])
    shown = [a for i, a in enumerate(given) if a != "--render-only"
             and not a.startswith("--note") and (i == 0 or given[i - 1] != "--note")]
    command = "python -m models.results " + " ".join(shown)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    probe = None
    if "mosi-utt" in args.data:
        try:
            probe = leakage.markdown(leakage.probe(load_dataset("mosi-utt")))
        except DataError as exc:
            logger.warning("leakage probe skipped: %s", exc)
    Path(args.out).write_text(render(records, args.models, args.data, command.strip(),
                                     args.note, probe, recipe_records, data_args=DATA_ARGS,
                                     grid_models=MODELS))
    print(f"wrote {args.out}: {len(records)} runs, {len(failures)} failed")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
