"""The session log: what a monitoring session keeps, its rolling aggregates and its export.

A `SessionLog` holds one `LogRow` per published prediction: timestamps, the sentiment, the
recognised words, the display signals, latencies and drop counts. It never holds images or
audio (nor the model's masks). Rows carry ``t_s``, seconds since the session started; a
session can span several pipelines (a looped recording, a source switch), each one's
``t_end_s`` being shifted by the session time at which it started (``offset_s``).

Aggregates for monitoring are kept incrementally as rows arrive: rolling means over the last
1 and 5 minutes, and the share of time the sentiment was negative (each row weighs the time to
the next row, capped at ``max_gap_s``). `SessionLog.alert` says whether the 1-minute rolling
mean has stayed below a threshold for ``hold_s`` seconds; the same rule runs on the face
valence's 1-minute mean (below a threshold) and on the voice arousal's (above one).

Each row also keeps the model's own sentiment, the facial expression (7 probabilities), the
face valence and the voice arousal (heuristic, not validated). The stress view is the share
of time with high voice arousal (>= ``STRESS_AROUSAL``) and a negative shown sentiment.

The log is bounded (``max_rows``, 4 h at 5 Hz by default); rows beyond it drop the oldest and
are counted in ``dropped_rows``. Thread-safe.

A session of a person starts with their consent (`realtime.personal.consent.ConsentRecord`,
in the header of the export). Given a ``path`` at `reset`, the log is also written there as
it grows (the JSONL export's header, then a line per row; the file is 0600 in a 0700
folder: `realtime.personal.storage.open_private`), so a monitoring session's log survives
the page and the server until retention deletes it. `erase` deletes the rows and that file
at once ("Delete my data").
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.expression import EXPRESSIONS
from realtime.personal.consent import ConsentRecord
from realtime.personal.storage import open_private
from realtime.types import Prediction

SIGNAL_FIELDS = ("pitch_hz", "energy_db", "smile", "brow", "jaw", "face_present")
ROLLING_SHORT_S = 60.0
ROLLING_LONG_S = 300.0
STRESS_AROUSAL = 1.0  # z-score units of `realtime.extract.arousal`
ALERT_FIELDS = ("mean_1min", "valence_1min", "arousal_1min")


@dataclass(frozen=True)
class LogRow:
    """One prediction as logged. Times in seconds, latencies in ms; no media."""

    t_s: float
    t_end_s: float
    emitted_at_s: float
    sentiment: float
    mean_1min: float
    words: tuple[str, ...]
    new_words: tuple[str, ...]
    tentative: tuple[str, ...]
    face: bool
    pitch_hz: float
    energy_db: float
    smile: float
    brow: float
    jaw: float
    face_present: bool
    latency_ms: dict[str, float] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    model_name: str = ""
    source: str = ""
    model_sentiment: float = float("nan")
    expression: tuple[float, ...] | None = None
    face_valence: float = float("nan")
    voice_arousal: float = float("nan")
    valence_1min: float = float("nan")
    arousal_1min: float = float("nan")


@dataclass(frozen=True)
class Aggregates:
    """Rolling means (nan until there is a row in the window) and the negative share."""

    rows: int
    duration_s: float
    mean_1min: float
    mean_5min: float
    negative_share: float
    dropped_rows: int
    valence_1min: float = float("nan")
    arousal_1min: float = float("nan")
    stress_share: float = float("nan")
    """Share of time with voice arousal >= STRESS_AROUSAL and a negative sentiment."""


@dataclass(frozen=True)
class AlertState:
    active: bool
    threshold: float
    hold_s: float
    below_for_s: float
    mean_1min: float


class _Rolling:
    """Mean of the values whose time is within the last ``window_s`` of the newest (NaN
    values are skipped by `add_finite`)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    def add(self, t_s: float, value: float) -> float:
        self._items.append((t_s, value))
        self._sum += value
        while self._items and self._items[0][0] <= t_s - self.window_s:
            self._sum -= self._items.popleft()[1]
        return self.mean

    def add_finite(self, t_s: float, value: float) -> float:
        if math.isfinite(value):
            return self.add(t_s, value)
        while self._items and self._items[0][0] <= t_s - self.window_s:
            self._sum -= self._items.popleft()[1]
        return self.mean

    @property
    def mean(self) -> float:
        return self._sum / len(self._items) if self._items else float("nan")


class SessionLog:
    def __init__(self, max_rows: int = 72_000, max_gap_s: float = 1.0,
                 max_transcript_words: int = 500) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.max_rows = max_rows
        self.max_transcript_words = max_transcript_words
        self.max_gap_s = max_gap_s
        self._lock = threading.Lock()
        self.reset()

    def reset(self, started_wall: str = "", source: str = "",
              consent: ConsentRecord | None = None, path: Path | None = None) -> None:
        """Starts an empty session (``started_wall``: ISO wall time, for the export;
        ``consent``: the person's agreement, None for a recording). ``path``: also write the
        log to this file (see the module doc); OSError when it cannot be created."""
        with self._lock:
            self._close_file()
            self.consent = consent
            self.path = path
            self._rows: list[LogRow] = []
            self._transcript: deque[str] = deque(maxlen=self.max_transcript_words)
            self._times: list[float] = []
            self._short = _Rolling(ROLLING_SHORT_S)
            self._long = _Rolling(ROLLING_LONG_S)
            self._neg_s = 0.0
            self._stress_s = 0.0
            self._valence = _Rolling(ROLLING_SHORT_S)
            self._arousal = _Rolling(ROLLING_SHORT_S)
            self._total_s = 0.0
            self.dropped_rows = 0
            self.started_wall = started_wall
            self.source = source
            self.version = 0
            if path is not None:
                self._file = open_private(path)
                self._file.write(json.dumps(self._header(0)) + "\n")
                self._file.flush()

    def _close_file(self) -> None:
        file, self._file = getattr(self, "_file", None), None
        if file is not None:
            file.close()

    def erase(self) -> Path | None:
        """Deletes every row and the log's file (if any); the log is empty and writes
        nothing more until the next `reset`. Returns the deleted file."""
        with self._lock:
            path = self.path
            self._close_file()
            if path is not None:
                path.unlink(missing_ok=True)
        self.reset(started_wall=self.started_wall, source=self.source)
        return path

    def close(self) -> None:
        """Closes the log's file (its rows stay)."""
        with self._lock:
            self._close_file()

    def append(self, prediction: Prediction, offset_s: float = 0.0, source: str = "") -> LogRow:
        """Logs one prediction at session time ``offset_s + prediction.t_end_s``."""
        s = prediction.signals
        value = float(prediction.sentiment)
        with self._lock:
            t_s = offset_s + float(prediction.t_end_s)
            if self._times and t_s < self._times[-1]:
                t_s = self._times[-1]  # a new pipeline never moves session time backwards
            if self._rows:
                prev = self._rows[-1]
                dt = min(max(t_s - prev.t_s, 0.0), self.max_gap_s)
                self._total_s += dt
                self._neg_s += dt if prev.sentiment < 0 else 0.0
                self._stress_s += dt if _stressed(prev) else 0.0
            self._long.add(t_s, value)
            row = LogRow(
                t_s=t_s,
                t_end_s=float(prediction.t_end_s),
                emitted_at_s=float(prediction.emitted_at_s),
                sentiment=value,
                mean_1min=self._short.add(t_s, value),
                words=tuple(prediction.words),
                new_words=tuple(getattr(prediction, "new_words", ())),
                tentative=tuple(prediction.tentative),
                face=bool(prediction.face),
                pitch_hz=float(s.pitch_hz),
                energy_db=float(s.energy_db),
                smile=float(s.smile),
                brow=float(s.brow),
                jaw=float(s.jaw),
                face_present=bool(s.face_present),
                latency_ms={k: float(v) for k, v in prediction.latency_ms.items()},
                drops={k: int(v) for k, v in prediction.drops.items()},
                model_name=prediction.model_name,
                source=source or self.source,
                model_sentiment=float(prediction.model_sentiment),
                expression=prediction.expression,
                face_valence=float(prediction.face_valence),
                voice_arousal=float(prediction.voice_arousal),
                valence_1min=self._valence.add_finite(t_s, float(prediction.face_valence)),
                arousal_1min=self._arousal.add_finite(t_s, float(prediction.voice_arousal)),
            )
            self._rows.append(row)
            self._times.append(t_s)
            if self._file is not None:
                self._file.write(json.dumps({"type": "prediction", **_finite(asdict(row))})
                                 + "\n")
                self._file.flush()
            self._transcript.extend(row.new_words)
            if len(self._rows) > self.max_rows:
                cut = max(1, self.max_rows // 10)
                del self._rows[:cut]
                del self._times[:cut]
                self.dropped_rows += cut
            self.version += 1
            return row

    def extend(self, predictions: Iterable[Prediction], offset_s: float = 0.0,
               source: str = "") -> int:
        n = 0
        for p in predictions:
            self.append(p, offset_s, source)
            n += 1
        return n

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def transcript(self, max_words: int = 60) -> list[str]:
        """The newest committed words of the session (``new_words`` of every row)."""
        with self._lock:
            n = min(max_words, len(self._transcript))
            return list(self._transcript)[len(self._transcript) - n:]

    @property
    def last_t_s(self) -> float:
        with self._lock:
            return self._times[-1] if self._times else 0.0

    def rows(self, since_s: float | None = None) -> list[LogRow]:
        """Rows oldest first; only those with ``t_s > since_s`` when given."""
        with self._lock:
            start = 0 if since_s is None else bisect_right(self._times, since_s)
            return self._rows[start:]

    def aggregates(self) -> Aggregates:
        with self._lock:
            last = self._rows[-1] if self._rows else None
            total = self._total_s
            neg, stress = self._neg_s, self._stress_s
            if last is not None and len(self._rows) > 1:
                # the newest row weighs the mean step so far
                step = min(total / (len(self._rows) - 1), self.max_gap_s)
                total += step
                neg += step if last.sentiment < 0 else 0.0
                stress += step if _stressed(last) else 0.0
            return Aggregates(
                rows=len(self._rows),
                duration_s=(self._times[-1] - self._times[0]) if self._times else 0.0,
                mean_1min=self._short.mean,
                mean_5min=self._long.mean,
                negative_share=(neg / total) if total > 0 else float("nan"),
                dropped_rows=self.dropped_rows,
                valence_1min=self._valence.mean,
                arousal_1min=self._arousal.mean,
                stress_share=(stress / total) if total > 0 else float("nan"),
            )

    def alert(self, threshold: float, hold_s: float = 10.0, field: str = "mean_1min",
              above: bool = False) -> AlertState:
        """Active when every 1-minute rolling mean (``field``: one of ALERT_FIELDS) of the
        last ``hold_s`` seconds (and at least ``hold_s`` of them) is below ``threshold``
        (above it with ``above``)."""
        if field not in ALERT_FIELDS:
            raise ValueError(f"alert field must be one of {ALERT_FIELDS}, got {field!r}")
        with self._lock:
            if not self._rows:
                return AlertState(False, threshold, hold_s, 0.0, float("nan"))
            newest = self._rows[-1]
            first_below = None
            for row in reversed(self._rows):
                value = getattr(row, field)
                if not (value > threshold if above else value < threshold):
                    break
                first_below = row
                if newest.t_s - row.t_s >= hold_s:
                    break
            below_for = 0.0 if first_below is None else newest.t_s - first_below.t_s
            return AlertState(below_for >= hold_s, threshold, hold_s, below_for,
                              getattr(newest, field))

    # -- export ---------------------------------------------------------------------
    def to_jsonl(self) -> str:
        """A header line (``"type": "session"``) then one ``"type": "prediction"`` object per
        row. Non-finite numbers are written as null."""
        rows = self.rows()
        lines = [json.dumps(self._header(len(rows)))]
        for row in rows:
            lines.append(json.dumps({"type": "prediction", **_finite(asdict(row))}))
        return "\n".join(lines) + "\n"

    def _header(self, rows: int) -> dict:
        return {"type": "session", "started": self.started_wall, "source": self.source,
                "rows": rows, "dropped_rows": self.dropped_rows,
                "consent": None if self.consent is None else self.consent.to_json(),
                "units": {"t_s": "s since session start", "latency_ms": "ms",
                          "pitch_hz": "Hz", "energy_db": "dB",
                          "expression": "probabilities of " + ", ".join(EXPRESSIONS),
                          "face_valence": "P(happy) - P(angry, disgust, fear, sad), [-1, 1]",
                          "voice_arousal": "voice arousal (heuristic, not validated): mean "
                                           "z-score against the session's baseline"}}

    def to_csv(self) -> str:
        """One row per prediction; words (the model's window), new_words (committed since
        the previous row: together, the whole transcript) and tentative space-joined; one
        column per latency stage (``latency_<stage>_ms``) and per drop queue
        (``drops_<queue>``); empty = unknown."""
        rows = self.rows()
        stages: dict[str, None] = {}
        queues: dict[str, None] = {}
        for row in rows:
            stages.update(dict.fromkeys(row.latency_ms))
            queues.update(dict.fromkeys(row.drops))
        base = ["t_s", "t_end_s", "emitted_at_s", "sentiment", "mean_1min", "words",
                "new_words", "tentative", "face", *SIGNAL_FIELDS, "model_name", "source",
                "model_sentiment", "face_valence", "valence_1min", "voice_arousal",
                "arousal_1min"]
        header = (base + [f"expression_{e}" for e in EXPRESSIONS]
                  + [f"latency_{s}_ms" for s in stages] + [f"drops_{q}" for q in queues])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            d = _finite(asdict(row))
            d["words"] = " ".join(row.words)
            d["new_words"] = " ".join(row.new_words)
            d["tentative"] = " ".join(row.tentative)
            values = [d[k] for k in base]
            values += list(row.expression) if row.expression else [""] * len(EXPRESSIONS)
            values += [_cell(row.latency_ms.get(s)) for s in stages]
            values += [row.drops.get(q, "") for q in queues]
            writer.writerow(["" if v is None else v for v in values])
        return out.getvalue()


def _stressed(row: LogRow) -> bool:
    return row.voice_arousal >= STRESS_AROUSAL and row.sentiment < 0


def _cell(value: float | None) -> float | str:
    return value if value is not None and math.isfinite(value) else ""


def _finite(obj):
    """Replaces nan/inf by None, recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
