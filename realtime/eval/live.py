"""End-to-end measurement of the default model on spoken MOSI's test split.

    python -m realtime.eval.live --text-only DIR --robust 24 --write-doc

Each test segment (or the first ``--limit`` of a fixed random order, `ordered`: subsets are
nested) is read by the TEST voice (`spoken_mosi.TEST_VOICE`, never used for training or
selection) into a WAV file replayed through the full live pipeline (`Pipeline.run_to_end`:
streaming Whisper, acoustic features, the word window, the model); the prediction is the last
one published. Reported with the MOSI metrics: ``live``; ``oracle``: the same model on the
oracle transcript with the same audio (the gap is the ASR's cost); ``text_only``: a text-only
model (``--text-only DIR``) on the live final windows; robustness (``--robust N``, first N
segments): the change of the live prediction with a face stream added (assets/demo.mp4 muxed
under the audio) and with another unseen voice (`ALT_TEST_VOICE`).

The final window is taken from the pipeline's window subscribers (`Pipeline.subscribe`: the
`Window` the model was given with the `Prediction` made from it). Final windows are cached
per clip (`Replayer`; they do not depend on the model), so runs
resume, ``--windows-only`` replays without scoring, and ``--split valid`` writes the
validation voice's live windows as a spoken-MOSI file for model selection
(`models.training.train_spoken --score`). Results: docs/spoken_mosi.json, docs/spoken_mosi.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.data.spoken import Segment, read_segments, spoken_dir
from models.env import REPO_ROOT
from models.metrics import compute, paired_acc2
from realtime.assets import demo_recording
from realtime.clock import ReplayClock, perf_s
from realtime.engine import Engine
from realtime.eval.spoken_mosi import (
    ALT_TEST_VOICE,
    TEST_VOICE,
    VALID_VOICES,
    Featurizer,
    Voice,
    acoustic_frames,
    oracle_words,
    render,
    wav_path,
)
from realtime.eval.wer import normalize_words, wer
from realtime.extract.asr import DEFAULT_ASR_POLICY
from realtime.types import Prediction, Window

logger = logging.getLogger(__name__)
ProgressLog = Callable[[str], None]  # a line of progress (the CLI prints them)


class LastWindow:
    """A window subscriber keeping the latest window the live model was given and the
    prediction made from it (at the end of a replay: the final ones)."""

    def __init__(self) -> None:
        self.last: tuple[Window, Prediction] | None = None

    def __call__(self, window: Window, prediction: Prediction) -> None:
        self.last = (window, prediction)


@dataclass(frozen=True)
class LiveResult:
    """The last published prediction of one replay and the window behind it."""

    sentiment: float
    words: tuple[str, ...]
    window: Window
    seconds: float


@dataclass(frozen=True)
class FinalWindow:
    """The live model's input at the end of one replay: (T, D_m) arrays per modality, the
    words it holds, and the replay's compute time in seconds. The window does not depend on
    the model (the ASR, extractors and window never read the prediction), so any model can
    be scored on it: the live prediction is ``clip(model(window), -3, 3)``."""

    text: np.ndarray
    audio: np.ndarray
    video: np.ndarray
    words: tuple[str, ...]
    replay_s: float

    def tensors(self) -> tuple[torch.Tensor, ...]:
        arrays = (self.text, self.audio, self.video)
        return (*(torch.from_numpy(np.ascontiguousarray(x))[None] for x in arrays),
                torch.tensor([len(self.text)]))


class Replayer:
    """Replays clips through the live pipeline (`Pipeline.run_to_end`) and caches each final
    window under ``root/live/<kind>/<id>.npz``, so runs resume and every candidate model is
    scored on the same windows. The pipeline (Whisper, MiniLM, extractors) loads on the first
    clip that is not cached, as `realtime.runtime.Runtime.open` loads it."""

    def __init__(self, root: Path, checkpoint: Path | None = None,
                 asr_policy: str = DEFAULT_ASR_POLICY) -> None:
        self.root, self.checkpoint, self.asr_policy = root, checkpoint, asr_policy
        self._engine: Engine | None = None

    def window(self, media: Path, kind: str, segment_id: str) -> FinalWindow:
        path = self.root / "live" / self.asr_policy / kind / f"{segment_id}.npz"
        if path.is_file():
            with np.load(path) as z:
                return FinalWindow(z["text"], z["audio"], z["video"],
                                   tuple(str(w) for w in z["words"]), float(z["replay_s"]))
        if self._engine is None:
            from realtime.runtime import Runtime, RuntimeConfig

            logger.info("loading the live pipeline's models (%s)", self.checkpoint or "default")
            # the runtime's engine (nothing else of it runs: no session, executor or backend)
            self._engine = Runtime.open(RuntimeConfig(
                checkpoint_dir=self.checkpoint, asr_policy=self.asr_policy)).engine
        res = replay(media, self._engine)
        win = FinalWindow(*(np.asarray(x, np.float32) for x in (
            res.window.text, res.window.audio, res.window.video)), res.words, res.seconds)
        again = predict_window(self._engine.model, win.tensors())
        if abs(again - res.sentiment) > 1e-4:  # the cached window must reproduce the output
            raise RuntimeError(f"{media}: final window gives {again}, published {res.sentiment}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, text=win.text, audio=win.audio, video=win.video,
                 words=np.asarray(win.words, dtype=str), replay_s=win.replay_s)
        tmp.replace(path)
        return win


def replay(path: Path, engine: Engine) -> LiveResult:
    """One file through the live pipeline (replay mode, data-driven clock)."""
    from realtime.pipeline import Pipeline
    from realtime.sources.file import FileSource

    clock = ReplayClock()
    source = FileSource(path, realtime=False, clock=clock)
    final = LastWindow()
    pipe = Pipeline(source, engine, on_window=(final,))
    start = perf_s()
    pipe.run_to_end()
    latest = pipe.store.latest()
    if pipe.error or latest is None or final.last is None:
        raise RuntimeError(f"{path}: the pipeline gave no prediction ({pipe.error})")
    window, prediction = final.last
    if prediction is not latest:
        raise RuntimeError(f"{path}: the final window is not the last prediction's")
    return LiveResult(latest.sentiment, latest.words, window, perf_s() - start)


def with_face(wav: Path, video: Path, out: Path) -> Path:
    """The clip with the bundled face video (looped, cut to the audio) as its picture."""
    if out.is_file():
        return out
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


def _rounded(values: dict) -> dict:
    """Floats (also inside tuples) to 4 decimals, for the JSON."""
    def r(v):
        return round(v, 4) if isinstance(v, float) else [r(x) for x in v] \
            if isinstance(v, tuple) else v
    return {k: r(v) for k, v in values.items()}


def _metrics(pred: Sequence[float], label: Sequence[float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in compute(pred, label).as_dict().items()}


def clip_of(seg: Segment, voice: Voice, root: Path) -> Path:
    """The segment read by ``voice`` (rendered once, kept as WAV)."""
    wav = wav_path(seg.id, voice, root)
    if not wav.is_file():
        render(seg.transcript, voice, wav)
    return wav


def ordered(segments: Sequence[Segment], limit: int | None, seed: int) -> list[Segment]:
    """The segments in a fixed random order (``seed``), cut to the first ``limit``: subsets of
    different sizes are nested, so a run cut short has replayed a random subset, and a
    later run with that ``limit`` finds every window cached."""
    out = sorted(segments, key=lambda s: s.id)
    random.Random(seed).shuffle(out)
    return out[:limit] if limit is not None else out


def live_windows(segments: Sequence[Segment], voice: Voice, split: str, rep: Replayer,
                 log: ProgressLog = logger.info) -> list[FinalWindow]:
    out = []
    for i, seg in enumerate(segments):
        out.append(rep.window(clip_of(seg, voice, rep.root), f"{split}/{voice.tag}", seg.id))
        if (i + 1) % 25 == 0 or i + 1 == len(segments):
            log(f"  live windows {split} {voice}: {i + 1}/{len(segments)}")
    return out


def corpus_wer(segments: Sequence[Segment], wins: Sequence[FinalWindow]) -> float:
    """Word error rate over all segments together (edits / reference words) of the words in
    each final window against the segment's transcript. The final window holds the last
    utterance's words, so this counts what the model was given, as the Acc2 does."""
    edits = sum(wer(s.transcript, " ".join(w.words)) * max(len(normalize_words(s.transcript)), 1)
                for s, w in zip(segments, wins, strict=True))
    return round(edits / max(sum(max(len(normalize_words(s.transcript)), 1)
                                 for s in segments), 1), 4)


def compare_policies(segments: Sequence[Segment], policies: Sequence[str], model, root: Path,
                     log: ProgressLog = logger.info) -> tuple[dict, dict[str, list]]:
    """Each ASR policy's word error rate and live metrics on the same segments, and the
    first policy paired with each other one on the same segments (`models.metrics.
    paired_acc2`: Acc2 non0 with 95% intervals, the exact McNemar test on the segments whose
    sign only one policy got right). Also returns, per policy, each segment's
    (prediction, words), for the per-segment rows (kept out of the repository)."""
    labels = [s.label for s in segments]
    out: dict = {}
    rows: dict[str, list] = {}
    for policy in policies:
        wins = live_windows(segments, TEST_VOICE, "test", Replayer(root, asr_policy=policy), log)
        preds = [predict_window(model, w.tensors()) for w in wins]
        rows[policy] = [(p, " ".join(w.words)) for p, w in zip(preds, wins, strict=True)]
        out[policy] = {"wer": corpus_wer(segments, wins), "live": _metrics(preds, labels)}
    first = policies[0] if policies else None
    for other in policies[1:]:
        paired = paired_acc2([p for p, _ in rows[first]], [p for p, _ in rows[other]], labels)
        out.setdefault("paired_acc2_non0", {})[f"{first}_vs_{other}"] = _rounded(
            paired.as_dict())
    return out, rows


def run(segments: Sequence[Segment], checkpoint: Path | None, text_only: Path | None,
        robust: int, root: Path, face_video: Path, log: ProgressLog = logger.info,
        also: Sequence[Path] = (), asr_policy: str = DEFAULT_ASR_POLICY,
        policies: Sequence[str] = ()) -> dict:
    from models import checkpoint as ckpt
    from realtime.assets import default_model_dir

    folder = checkpoint or default_model_dir()
    model, rep = ckpt.load(folder).eval(), Replayer(root, asr_policy=asr_policy)
    extra = ckpt.load(text_only).eval() if text_only else None
    feat = Featurizer()
    wins = live_windows(segments, TEST_VOICE, "test", rep, log)
    labels = [s.label for s in segments]
    live = [predict_window(model, w.tensors()) for w in wins]
    oracle = [oracle_prediction(s, TEST_VOICE, feat, model, root) for s in segments]
    rows = [{"id": s.id, "label": s.label, "live": round(p, 4), "oracle": round(o, 4),
             "words": " ".join(w.words), "transcript": s.transcript.lower(),
             "replay_s": round(w.replay_s, 2)}
            for s, p, o, w in zip(segments, live, oracle, wins, strict=True)]
    out = {"segments": len(segments), "test_voice": str(TEST_VOICE),
           "checkpoint": folder.name, "live": _metrics(live, labels),
           "asr_policy": asr_policy, "wer": corpus_wer(segments, wins),
           "oracle": _metrics(oracle, labels), "model": model.config.name,
           "replay_s": {"total": round(sum(w.replay_s for w in wins), 1),
                        "median": round(float(np.median([w.replay_s for w in wins])), 2)},
           "per_segment": rows}
    if extra is not None:
        out["text_only"] = _metrics([predict_window(extra, w.tensors()) for w in wins], labels)
    for other in also:  # other candidates on the same windows (reported, never for choosing)
        m = ckpt.load(other).eval()
        out.setdefault("also", {})[other.name] = {
            "live": _metrics([predict_window(m, w.tensors()) for w in wins], labels),
            "oracle": _metrics([oracle_prediction(s, TEST_VOICE, feat, m, root)
                                for s in segments], labels)}
    if policies:  # the ASR policies side by side on the same segments
        out["asr_policies"], by_policy = compare_policies(segments, policies, model, root, log)
        for i, row in enumerate(rows):
            for policy, values in by_policy.items():
                row[f"live_{policy}"] = round(values[i][0], 4)
                row[f"words_{policy}"] = values[i][1]
    if robust:
        out["robustness"] = robustness(segments[:robust], live[:robust], model, rep,
                                       face_video, log)
    return out


def robustness(segments: Sequence[Segment], live: Sequence[float], model, rep: Replayer,
               face_video: Path, log: ProgressLog = logger.info) -> dict:
    face_d, voice_d, acoustic_d = [], [], []
    feat, root = Featurizer(), rep.root
    for seg, base in zip(segments, live, strict=True):
        wav = clip_of(seg, TEST_VOICE, root)
        muxed = with_face(wav, face_video, root / "faced" / TEST_VOICE.tag / f"{seg.id}.mp4")
        faced = rep.window(muxed, f"test/{TEST_VOICE.tag}+face", seg.id)
        face_d.append(predict_window(model, faced.tensors()) - base)
        alt = rep.window(clip_of(seg, ALT_TEST_VOICE, root), f"test/{ALT_TEST_VOICE.tag}", seg.id)
        voice_d.append(predict_window(model, alt.tensors()) - base)
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
    scope = (f"the first {n} of the 686 test segments in a fixed random order (seed "
             f"{result['seed']}, `realtime.eval.live.ordered`)" if limit and limit < 686
             else f"all {n} test segments")
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
    if result.get("also"):
        lines += ["", "Other candidates on the same windows (for reference; the choice was made "
                  "on validation before these were computed):", "",
                  "| candidate | live Acc2 non0 | live MAE | oracle Acc2 non0 | oracle MAE |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {k} | {v['live']['acc2_non0']:.3f} | {v['live']['mae']:.3f} | "
                  f"{v['oracle']['acc2_non0']:.3f} | {v['oracle']['mae']:.3f} |"
                  for k, v in result["also"].items()]
    block = "\n".join(lines)
    begin, end = "<!-- eval_live:begin -->", "<!-- eval_live:end -->"
    text = path.read_text() if path.is_file() else f"# Spoken MOSI results\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n{block}\n{end}{tail}")
    return path


def write_live_split(segments: Sequence[Segment], voice: Voice, split: str, rep: Replayer,
                     log: ProgressLog = logger.info) -> Path:
    """The live pipeline's final windows of ``segments`` as a spoken-MOSI file with word
    source ``live`` (`models.data.spoken`): the most realistic validation set."""
    from models.data.spoken import SpokenMeta, SpokenSplit, file_name, write_split
    from realtime.extract.acoustic import FEATURE_NAMES as ACOUSTIC_NAMES
    from realtime.extract.face import FEATURE_NAMES as FACE_NAMES

    wins = live_windows(segments, voice, split, rep, log)
    meta = SpokenMeta(split, voice.name, voice.rate_wpm, "live", "tiny.en streaming",
                      tuple(ACOUSTIC_NAMES), tuple(FACE_NAMES))
    data = SpokenSplit(meta, tuple(s.id for s in segments),
                       np.array([s.label for s in segments], np.float32),
                       tuple(" ".join(w.words) for w in wins), tuple(w.text for w in wins),
                       tuple(w.audio for w in wins), tuple(w.video for w in wins))
    return write_split(rep.root / file_name(split, voice.name, voice.rate_wpm, "live"), data)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="default: assets/model")
    p.add_argument("--text-only", type=Path, default=None, help="a text-only checkpoint")
    p.add_argument("--also", type=Path, nargs="*", default=[], metavar="DIR",
                   help="other checkpoints to report on the same windows")
    p.add_argument("--split", choices=("test", "valid"), default="test",
                   help="valid: write VALID_VOICES' live windows as a spoken-MOSI file (word "
                        "source 'live') for model selection; no scores")
    p.add_argument("--write-split", action="store_true",
                   help="test: write TEST_VOICE's live windows as a spoken-MOSI file; no scores")
    p.add_argument("--limit", type=int, default=None, help="random subset of N segments")
    p.add_argument("--asr-policy", default=DEFAULT_ASR_POLICY,
                   help="the streaming ASR policy of the live windows (realtime.extract.asr)")
    p.add_argument("--compare-asr", default="", metavar="P1,P2",
                   help="also report these ASR policies' WER and live metrics side by side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--robust", type=int, default=0, help="robustness on the first N segments")
    p.add_argument("--windows-only", action="store_true",
                   help="only replay and cache the final windows (no scores)")
    p.add_argument("--mosi-dir", type=Path, default=None)
    p.add_argument("--face-video", type=Path, default=demo_recording())
    p.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "spoken_mosi.json")
    p.add_argument("--write-doc", action="store_true", help="rewrite docs/spoken_mosi.md")
    a = p.parse_args(argv)
    from realtime.runtime import apply_process_settings

    apply_process_settings()  # as a live session process (torch's and BLAS's threads, malloc)
    torch.set_num_threads(1)
    segments = ordered([s for s in read_segments(a.mosi_dir) if s.split == a.split],
                       a.limit, a.seed)
    root = spoken_dir()
    if a.split == "valid" or a.write_split:
        for voice in VALID_VOICES if a.split == "valid" else (TEST_VOICE,):
            print(f"wrote {write_live_split(segments, voice, a.split, Replayer(root), print)}")
        return 0
    if a.windows_only:  # robustness clips first: the live windows may then run to a cutoff
        rep = Replayer(root)
        for seg in segments[: a.robust]:
            wav = clip_of(seg, TEST_VOICE, root)
            muxed = with_face(wav, a.face_video, root / "faced" / TEST_VOICE.tag / f"{seg.id}.mp4")
            rep.window(muxed, f"test/{TEST_VOICE.tag}+face", seg.id)
            rep.window(clip_of(seg, ALT_TEST_VOICE, root), f"test/{ALT_TEST_VOICE.tag}", seg.id)
        live_windows(segments, TEST_VOICE, "test", rep, print)
        return 0
    result = run(segments, a.checkpoint, a.text_only, a.robust, root, a.face_video, print,
                 also=a.also, asr_policy=a.asr_policy,
                 policies=[x for x in a.compare_asr.split(",") if x])
    result.update({"limit": a.limit, "seed": a.seed})
    # per-segment rows (MOSI transcripts, labels) stay in the user cache, never in the repo
    rows_path = root / "eval" / f"per_segment-{result['checkpoint']}-{a.limit}-{a.seed}.json"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    rows_path.write_text(json.dumps(result.pop("per_segment"), indent=1) + "\n")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"per-segment results: {rows_path}")
    if a.write_doc:
        write_doc(result, REPO_ROOT / "docs" / "spoken_mosi.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
