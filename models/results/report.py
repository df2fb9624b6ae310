"""The results page (docs/results.md): what the table holds and how it is written.

Rendering only; `models.results.run` owns the experiment grid, runs the trainings and calls
`render` (this module never imports it). Tables are mean ± std
over seeds (accuracies and F1 in %), per-seed binary accuracy, the anchors from the literature
with their sources, and the issue's goals checked against the runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from models.metrics import KEYS
from models.training import recipes

PERCENT = {"acc2_has0", "acc2_non0", "f1_has0", "f1_non0", "acc7"}
HEADERS = {"acc2_has0": "Acc2 has0", "acc2_non0": "Acc2 non0", "f1_has0": "F1 has0",
           "f1_non0": "F1 non0", "acc7": "Acc7", "mae": "MAE", "corr": "Corr"}
ANCHORS = {
    "mosi-utt": [
        "bc-LSTM: 80.3% binary accuracy on exactly these utterance features (Poria et al., "
        "\"Context-Dependent Sentiment Analysis in User-Generated Videos\", ACL 2017). In these "
        "files the binary label is (score >= 0), so it compares with Acc2 has0.",
        "Logistic regression on the three feature sets concatenated, no context: 75.7% "
        "(measured on these files, shared/data/mosi/README.md).",
    ],
    "mosi-text": [
        "Ridge regression on the mean-pooled MiniLM sentence embedding: Acc2 has0 78.4, Acc2 "
        "non0 79.4, MAE 0.974, Corr 0.710 on the 686 test segments (shared/data/mosi/README.md).",
        "MMLatch: 82.4 Acc2 on CMU-MOSEI (Paraskevopoulos et al., ICASSP 2022), for context "
        "only: another dataset, with GloVe/COVAREP/FACET features.",
    ],
}


def fmt(values: list[float], key: str) -> str:
    v = np.asarray(values) * (100.0 if key in PERCENT else 1.0)
    digits = 1 if key in PERCENT else 3
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _rows(records: list[dict], model: str, data: str, field: str) -> list[dict]:
    return sorted((r for r in records if r["model"] == model and r["data"] == data
                   and field in r), key=lambda r: r["seed"])


def table(records: list[dict], data: str, models: list[str],
          field: str = "metrics") -> list[str]:
    """Mean ± std per model; ``field``: "metrics" (the epoch chosen on validation) or
    "metrics_crossfit" (models.training.crossfit) or "metrics_pooled" (models.training.recipes)."""
    lines = ["| model | seeds | " + " | ".join(HEADERS[k] for k in KEYS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in KEYS) + " |"]
    for m in models:
        rs = _rows(records, m, data, field)
        if rs:
            cells = [fmt([r[field][k] for r in rs], k) for k in KEYS]
            lines.append(f"| {m} | {len(rs)} | " + " | ".join(cells) + " |")
    return lines


def per_seed(records: list[dict], data: str, models: list[str], key: str,
             field: str = "metrics") -> list[str]:
    seeds = sorted({r["seed"] for r in records if r["data"] == data and field in r})
    lines = [f"Per seed, {HEADERS[key]} (%):", "",
             "| model | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "| --- | " + " | ".join("---" for _ in seeds) + " |"]
    for m in models:
        by = {r["seed"]: r[field][key] for r in _rows(records, m, data, field)}
        if by:
            lines.append(f"| {m} | " + " | ".join(
                f"{100 * by[s]:.1f}" if s in by else "–" for s in seeds) + " |")
    return lines


def _mean(records: list[dict], model: str, data: str, key: str,
          field: str = "metrics") -> tuple[float, list[int]]:
    rs = _rows(records, model, data, field)
    if not rs:
        return float("nan"), []
    return float(np.mean([r[field][key] for r in rs])), [r["seed"] for r in rs]


PROTOCOLS = {"metrics": "epoch chosen on the validation videos (the issue's protocol)",
             "metrics_crossfit": "cross-fitted epoch choice (models.training.crossfit)",
             "metrics_pooled": "cross-fitted choice of recipe and epoch (models.training.recipes)"}


def goals(records: list[dict], grid_models: Sequence[str]) -> list[str]:
    """The issue's goals, checked against the measured runs; ``grid_models``: the models of
    the experiment grid, among which the best mosi-text model is named."""
    out = ["## Goals, checked against these runs", ""]
    for field, protocol in PROTOCOLS.items():
        for m in ("mmlatch", "mmmie"):
            acc, seeds = _mean(records, m, "mosi-utt", "acc2_has0", field)
            if not seeds:
                continue
            late = {r["seed"]: r[field]["acc2_has0"]
                    for r in _rows(records, "late_fusion", "mosi-utt", field)}
            mine = {r["seed"]: r[field]["acc2_has0"] for r in _rows(records, m, "mosi-utt", field)}
            common = sorted(set(late) & set(mine))
            late_mean = float(np.mean([late[s] for s in common])) if common else float("nan")
            mine_mean = float(np.mean([mine[s] for s in common])) if common else float("nan")
            wins = sum(mine[s] > late[s] for s in common)
            out.append(
                f"- mosi-utt, {m}, {protocol}: Acc2 has0 {100 * acc:.1f} over seeds {seeds} "
                f"({'meets' if acc >= 0.81 else 'misses'} the 81% goal; "
                f"{'above' if acc > 0.803 else 'not above'} bc-LSTM's 80.3). Against late fusion "
                f"on the same seeds {common}: {100 * mine_mean:.1f} vs {100 * late_mean:.1f}, "
                f"higher on {wins} of {len(common)} seeds.")
    best = max(((m, *_mean(records, m, "mosi-text", "acc2_non0")) for m in grid_models),
               key=lambda x: -1 if np.isnan(x[1]) else x[1])
    if best[2]:
        out.append(f"- mosi-text: best mean Acc2 non0 {100 * best[1]:.1f} ({best[0]}, seeds "
                   f"{best[2]}); goal >= 80: {'met' if best[1] >= 0.80 else 'not met'}.")
    return out + [""]


CROSSFIT_TEXT = (
    "The validation videos of mosi-utt cannot choose anything: the bc-LSTM feature extractors "
    "were trained on the labels of all 62 bc-LSTM train videos, so the features of the 8 "
    "validation videos carved from them are in-sample. A ridge probe per feature set "
    "(`python -m models.training.leakage`) shows it: it scores like the train videos on them, "
    "far above "
    "the test videos. Early stopping on them therefore keeps the epoch that best exploits the "
    "leaked labels. The table above keeps the issue's protocol; the table below scores the "
    "same runs with cross-fitted epoch selection (models.training.crossfit): the 31 test videos "
    "are "
    "split once into two fixed halves, each half is scored with the epoch whose predictions "
    "have the lowest L1 on the other half, and training itself (early stopping, LR schedule) "
    "is unchanged, so no prediction is chosen with its own labels.")


def recipe_section(records: list[dict], recipe_records: dict[str, list[dict]],
                   models: list[str]) -> list[str]:
    """mosi-utt: every recipe's mean Acc2 has0, then the pooled cross-fitted choice."""
    shown = [m for m in recipes.RECIPE_MODELS if m in models]
    out = [f"### {PROTOCOLS['metrics_pooled'].capitalize()}", "", RECIPE_TEXT, "",
           "| recipe | models.training.train arguments | " + " | ".join(
               f"{m}: validation epoch / cross-fitted epoch" for m in shown) + " |",
           "| --- | --- | " + " | ".join("---" for _ in shown) + " |"]
    for name, recs in {"issue": records, **recipe_records}.items():
        cells = []
        for m in shown:
            a = _mean(recs, m, "mosi-utt", "acc2_has0")[0]
            b = _mean(recs, m, "mosi-utt", "acc2_has0", "metrics_crossfit")[0]
            cells.append(f"{100 * a:.1f} / {100 * b:.1f}")
        args = " ".join(recipes.RECIPES[name]) or "(none)"
        out.append(f"| {name} | `{args}` | " + " | ".join(cells) + " |")
    out += ["", "Chosen by cross-fitting over every (recipe, epoch) of a run:", ""]
    out += table(records, "mosi-utt", shown, "metrics_pooled") + [""]
    out += per_seed(records, "mosi-utt", shown, "acc2_has0", "metrics_pooled") + [""]
    out += ["(recipe, epoch) used for test half A / half B:", ""]
    for m in shown:
        picks = [f"seed {r['seed']}: {a[0]}@{a[1]} / {b[0]}@{b[1]}"
                 for r in _rows(records, m, "mosi-utt", "metrics_pooled")
                 for a, b in [r["pooled_chosen"]]]
        out.append(f"- {m}: " + "; ".join(picks))
    return out + [""]


RECIPE_TEXT = (
    "Other training recipes may be reported only this way, since no clean validation video "
    "exists to choose them. The recipes were fixed before any was scored on test, each for a "
    "reason in the issue recipe's training curves (models/training/recipes.py). For each model and "
    "seed, the test predictions of every epoch of every recipe are candidates, and each test "
    "half is scored with the candidate of lowest L1 on the other half.")


def render(records: list[dict], models: list[str], datasets: list[str], command: str,
           note: str = "", probe: list[str] | None = None,
           recipe_records: dict[str, list[dict]] | None = None, *,
           data_args: Mapping[str, list[str]], grid_models: Sequence[str]) -> str:
    """The markdown page; ``probe``: the markdown lines of models.training.leakage, if measured;
    ``recipe_records``: mosi-utt runs of the other recipes (models.training.recipes), by recipe;
    ``data_args`` and ``grid_models``: the grid's per-dataset training arguments (shown in the
    header) and its models (`models.results.run.DATA_ARGS`, `MODELS`)."""
    out = ["# Results", "",
           "Generated by `python -m models.results` (every number below was measured by it; "
           "regenerate rather than edit). Metrics follow the MMSA / MMLatch conventions "
           "(models/metrics.py): Acc2 has0 = (pred >= 0) vs (label >= 0) on all test "
           "samples, Acc2 non0 = (pred > 0) vs (label > 0) on nonzero labels, weighted F1 for "
           "both, Acc7 after clipping to [-3, 3], MAE, Pearson correlation. Accuracies and F1 "
           "in %, mean ± sample std over seeds. Training: L1, Adam 5e-4, batch 32, early "
           "stopping on validation L1 (patience 10), ReduceLROnPlateau; one CPU thread per run; "
           f"extra per-dataset arguments: {dict(data_args)}.",
           "", f"Command: `{command}`", ""] + ([note, ""] if note else [])
    for data in datasets:
        rs = [r for r in records if r["data"] == data]
        if not rs:
            out += [f"## {data}", "", "Not run.", ""]
            continue
        key = "acc2_has0" if data == "mosi-utt" else "acc2_non0"
        out += [f"## {data}", "", rs[0]["description"] + ".", ""]
        crossfit = any("metrics_crossfit" in r for r in rs)
        if crossfit:
            out += [f"### {PROTOCOLS['metrics'].capitalize()}", ""]
        out += table(records, data, models) + [""]
        out += per_seed(records, data, models, key) + [""]
        if crossfit:
            out += [f"### {PROTOCOLS['metrics_crossfit'].capitalize()}", "", CROSSFIT_TEXT, ""]
            out += (probe or []) + ([""] if probe else [])
            out += table(records, data, models, "metrics_crossfit") + [""]
            out += per_seed(records, data, models, key, "metrics_crossfit") + [""]
        if any("metrics_pooled" in r for r in rs):
            out += recipe_section(records, recipe_records or {}, models)
        out += ["Anchors:", ""] + [f"- {a}" for a in ANCHORS.get(data, [])] + [""]
    out += goals(records, grid_models)
    return "\n".join(out) + "\n"
