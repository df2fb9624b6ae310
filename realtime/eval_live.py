"""End-to-end measurement of the default model on spoken MOSI's test split.

    python -m realtime.eval_live --limit 100 --write-doc

For each test segment (or a fixed-seed random subset, ``--limit``), the transcript is read by
the TEST voice (`realtime.spoken_mosi.TEST_VOICE`, never used for training or validation) into
a WAV file, and that file goes through the full live pipeline in replay mode
(`Pipeline.run_to_end`: streaming Whisper with its commit policy, acoustic features, the
word window, the model); the prediction is the last one published, at the segment's end.
Reported, with the MOSI metrics (Acc2 has0/non0, F1, Acc7, MAE, Corr):

* ``live``: the default model through the live pipeline;
* ``oracle``: the same model on the oracle transcript (the MOSI words, timed over the voiced
  span) with the same audio features: the gap to ``live`` is the ASR's cost;
* ``text_only``: a text-only model (``--text-only DIR``) on the live pipeline's final windows;
* robustness (``--robust N``, on the first N segments): the change of the live prediction
  when a face stream is added (the bundled assets/demo.mp4 video muxed under the audio) and
  when a different, also unseen, voice reads the transcript (`ALT_TEST_VOICE`).

Results go to docs/spoken_mosi.json and, with ``--write-doc``, docs/spoken_mosi.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from models.data_spoken import Segment, read_segments, spoken_dir
from models.metrics import compute
from realtime.calibration import TapModel
from realtime.clock import ReplayClock, perf_s
from realtime.spoken_mosi import (
    ALT_TEST_VOICE,
    TEST_VOICE,
    Featurizer,
    Voice,
    acoustic_frames,
    oracle_words,
    pick,
    render,
    wav_path,
)

REPO = Path(__file__).resolve().parents[1]


class LastWindow:
    """Keeps the inputs of the live model's latest call (the final window of a replay)."""

    def __init__(self) -> None:
        self.last: tuple[torch.Tensor, ...] | None = None

    def __call__(self, text, audio, video, lengths) -> None:
        self.last = (text, audio, video, lengths)


@dataclass(frozen=True)
class LiveResult:
    """The last published prediction of one replay and the window behind it."""

    sentiment: float
    words: tuple[str, ...]
    window: tuple[torch.Tensor, ...] | None
    seconds: float


def replay(path: Path, engine, tap: LastWindow) -> LiveResult:
    """One file through the live pipeline (replay mode, data-driven clock)."""
    from realtime.pipeline import Pipeline
    from realtime.sources.file import FileSource

    clock = ReplayClock()
    source = FileSource(path, realtime=False, clock=clock)
    pipe = Pipeline(source, engine)
    tap.last = None
    start = perf_s()
    pipe.run_to_end()
    latest = pipe.store.latest()
    if pipe.error or latest is None:
        raise RuntimeError(f"{path}: the pipeline gave no prediction ({pipe.error})")
    return LiveResult(latest.sentiment, latest.words, tap.last, perf_s() - start)


def with_face(wav: Path, video: Path, out: Path) -> Path:
    """The clip with the bundled face video (looped, cut to the audio) as its picture."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-stream_loop", "-1", "-i", str(video),
           "-i", str(wav), "-map", "0:v", "-map", "1:a", "-shortest", "-r", "15",
           "-vf", "scale=320:-2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def predict_window(model: torch.nn.Module, window: tuple[torch.Tensor, ...]) -> float:
    with torch.inference_mode():
        out = model(*window)
    return float(np.clip(out.sentiment.reshape(-1)[0].item(), -3, 3))


def oracle_prediction(seg: Segment, voice: Voice, feat: Featurizer, model, root: Path) -> float:
    frames, end_s = acoustic_frames(seg, voice, root, wav_path(seg.id, voice, root))
    win = feat.window(oracle_words(seg.transcript, frames), frames, end_s)
    tensors = tuple(torch.from_numpy(x)[None] for x in (win.text, win.audio, win.video))
    return predict_window(model, (*tensors, torch.tensor([win.steps])))


def _metrics(pred: Sequence[float], label: Sequence[float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in compute(pred, label).as_dict().items()}


def run(segments: Sequence[Segment], checkpoint: Path | None, text_only: Path | None,
        robust: int, root: Path, face_video: Path, log=print) -> dict:
    from models import checkpoint as ckpt
    from realtime.engine import Engine

    engine, tap = Engine.load(checkpoint), LastWindow()
    base = engine.model
    engine = replace(engine, model=TapModel(base, tap))
    extra = ckpt.load(text_only) if text_only else None
    feat = Featurizer()
    labels, live, oracle, texto, rows = [], [], [], [], []
    for i, seg in enumerate(segments):
        wav = wav_path(seg.id, TEST_VOICE, root)
        if not wav.is_file():
            render(seg.transcript, TEST_VOICE, wav)
        res = replay(wav, engine, tap)
        labels.append(seg.label)
        live.append(res.sentiment)
        oracle.append(oracle_prediction(seg, TEST_VOICE, feat, base, root))
        if extra is not None and res.window is not None:
            texto.append(predict_window(extra, res.window))
        rows.append({"id": seg.id, "label": seg.label, "live": round(res.sentiment, 4),
                     "oracle": round(oracle[-1], 4), "words": " ".join(res.words),
                     "transcript": seg.transcript.lower(), "replay_s": round(res.seconds, 2)})
        log(f"{i + 1}/{len(segments)} {seg.id}: label {seg.label:+.2f} live "
            f"{res.sentiment:+.2f} oracle {oracle[-1]:+.2f} ({res.seconds:.1f} s)")
    out = {"segments": len(segments), "test_voice": str(TEST_VOICE),
           "live": _metrics(live, labels), "oracle": _metrics(oracle, labels),
           "model": engine.model_name, "per_segment": rows}
    if texto:
        out["text_only"] = _metrics(texto, labels)
    if robust:
        out["robustness"] = robustness(segments[:robust], live[:robust], engine, tap, root,
                                       face_video, log)
    return out


def robustness(segments: Sequence[Segment], live: Sequence[float], engine, tap: LastWindow,
               root: Path, face_video: Path, log=print) -> dict:
    face_d, voice_d, acoustic_d = [], [], []
    feat, model = Featurizer(), engine.model.inner
    for seg, base in zip(segments, live, strict=True):
        wav = wav_path(seg.id, TEST_VOICE, root)
        muxed = with_face(wav, face_video, root / "faced" / TEST_VOICE.tag / f"{seg.id}.mp4")
        face_d.append(replay(muxed, engine, tap).sentiment - base)
        alt = wav_path(seg.id, ALT_TEST_VOICE, root)
        if not alt.is_file():
            render(seg.transcript, ALT_TEST_VOICE, alt)
        voice_d.append(replay(alt, engine, tap).sentiment - base)
        # the voice alone (same oracle words, so no ASR difference): what the audio branch does
        acoustic_d.append(oracle_prediction(seg, ALT_TEST_VOICE, feat, model, root)
                          - oracle_prediction(seg, TEST_VOICE, feat, model, root))
        log(f"  robustness {seg.id}: face {face_d[-1]:+.3f} voice {voice_d[-1]:+.3f} "
            f"(same words {acoustic_d[-1]:+.3f})")

    def summary(d: list[float]) -> dict[str, float]:
        a = np.abs(np.asarray(d))
        return {"mean_abs": round(float(a.mean()), 4), "p90_abs": round(float(
            np.quantile(a, 0.9)), 4), "max_abs": round(float(a.max()), 4)}

    return {"segments": len(segments), "face_added": summary(face_d),
            "alt_voice": {**summary(voice_d), "voice": str(ALT_TEST_VOICE)},
            "alt_voice_same_words": summary(acoustic_d)}


def _row(name: str, m: dict[str, float]) -> str:
    return (f"| {name} | {m['acc2_has0']:.3f} | {m['acc2_non0']:.3f} | {m['f1_has0']:.3f} | "
            f"{m['f1_non0']:.3f} | {m['acc7']:.3f} | {m['mae']:.3f} | {m['corr']:.3f} |")


def write_doc(result: dict, path: Path) -> Path:
    """Replaces the generated block of the results doc (between the markers) with tables."""
    n, limit = result["segments"], result.get("limit")
    scope = (f"a fixed random subset of {n} of the 686 test segments (seed {result['seed']})"
             if limit else f"all {n} test segments")
    lines = [
        f"Test split: {scope}; test voice `{result['test_voice']}` (unseen in training and "
        f"validation); model `{result['model']}`.", "",
        "| variant | Acc2 has0 | Acc2 non0 | F1 has0 | F1 non0 | Acc7 | MAE | Corr |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        _row("live pipeline (streaming ASR, replay)", result["live"]),
        _row("same model, oracle transcript", result["oracle"]),
    ]
    if "text_only" in result:
        lines.append(_row("text-only model, live windows", result["text_only"]))
    gap = 100 * (result["oracle"]["acc2_non0"] - result["live"]["acc2_non0"])
    lines += ["", f"ASR gap (oracle - live, Acc2 non0): {gap:+.1f} points."]
    rob = result.get("robustness")
    if rob:
        f, v = rob["face_added"], rob["alt_voice"]
        lines += ["", f"Robustness on {rob['segments']} of these segments (|change| of the "
                  "final live prediction, sentiment units on [-3, 3]):", "",
                  "| perturbation | mean | p90 | max |", "| --- | --- | --- | --- |",
                  f"| face stream added (assets/demo.mp4) | {f['mean_abs']:.3f} | "
                  f"{f['p90_abs']:.3f} | {f['max_abs']:.3f} |",
                  f"| other unseen voice (`{v['voice']}`), live ASR | {v['mean_abs']:.3f} | "
                  f"{v['p90_abs']:.3f} | {v['max_abs']:.3f} |"]
        if "alt_voice_same_words" in rob:
            w = rob["alt_voice_same_words"]
            lines.append(f"| other unseen voice, same (oracle) words | {w['mean_abs']:.3f} | "
                         f"{w['p90_abs']:.3f} | {w['max_abs']:.3f} |")
    block = "\n".join(lines)
    begin, end = "<!-- eval_live:begin -->", "<!-- eval_live:end -->"
    text = path.read_text() if path.is_file() else f"# Spoken MOSI results\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n{block}\n{end}{tail}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="default: assets/model")
    p.add_argument("--text-only", type=Path, default=None, help="a text-only checkpoint")
    p.add_argument("--limit", type=int, default=None, help="random subset of N test segments")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--robust", type=int, default=0, help="robustness on the first N segments")
    p.add_argument("--mosi-dir", type=Path, default=None)
    p.add_argument("--face-video", type=Path, default=REPO / "assets" / "demo.mp4")
    p.add_argument("--json", type=Path, default=REPO / "docs" / "spoken_mosi.json")
    p.add_argument("--write-doc", action="store_true", help="rewrite docs/spoken_mosi.md")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    segments = pick([s for s in read_segments(a.mosi_dir) if s.split == "test"], a.limit, a.seed)
    result = run(segments, a.checkpoint, a.text_only, a.robust, spoken_dir(), a.face_video)
    result.update({"limit": a.limit, "seed": a.seed})
    # Per-segment rows hold MOSI transcripts and labels: they stay in the user cache, never
    # in the repository; the repository gets the aggregate figures only.
    rows_path = spoken_dir() / "eval" / f"per_segment-{a.limit}-{a.seed}.json"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    rows_path.write_text(json.dumps(result.pop("per_segment"), indent=1) + "\n")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"per-segment results: {rows_path}")
    if a.write_doc:
        write_doc(result, REPO / "docs" / "spoken_mosi.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
