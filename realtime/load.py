"""Open degradation under load: a live session that falls behind lowers its face tracker's
and expression network's rates a step at a time, says so, and restores them once it keeps up.

`LoadGovernor` is fed, on the session's tick thread, each published prediction's capture ->
prediction latency (``total``, ms) and each missed tick, with the session time. It decides on
the last ``window_s`` seconds of what it was fed:

* overloaded: at least half of them over ``high_ms`` (a missed tick counts as over);
* calm: all of them under ``low_ms``, for ``calm_s`` seconds.

Overloaded -> one step down the ladder (`LoadConfig.divisors`: the stage rates divided by 2,
then 4; from step ``asr_step`` on, a session with speech streams it by the cheaper
``asr_policy``: words come later, see `realtime.extract.asr.ASR_POLICIES`); calm -> one step
back up. It judges only ``hold_s`` (>= ``window_s``) after its
first tick and after each change, on ticks seen since, so a change can show first. `step` is
the current step (0: the configured rates), `describe` what was cut, in words, for the
session's health (None at step 0). It never reads the clock: the caller passes the session
time. The replay (`Pipeline.run_to_end`) never degrades.

The rates cut are the stages' own (`realtime.extract.face.FaceExtractor.max_rate_hz`,
`realtime.extract.expression.ExpressionExtractor.max_rate_hz`); a rate of None (every frame)
counts as ``full_rate_hz``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

NAN = float("nan")


@dataclass(frozen=True)
class LoadConfig:
    """high_ms / low_ms: the capture -> prediction latency over which a session is behind and
    under which it is calm (ms); window_s: the span of recent ticks judged (s); calm_s: how long
    it must stay calm to restore a step (s); hold_s: the least time between two changes (s);
    divisors: each step's divisor of the stage rates (the first 1); full_rate_hz: the rate
    that "every frame" counts as; asr_policy: the cheaper ASR policy from step ``asr_step``
    on (None: the ASR is never changed)."""

    high_ms: float = 250.0
    low_ms: float = 150.0
    window_s: float = 2.0
    calm_s: float = 6.0
    hold_s: float = 3.0
    divisors: tuple[float, ...] = (1.0, 2.0, 4.0)
    full_rate_hz: float = 10.0
    asr_policy: str | None = "sparse"
    asr_step: int = 2

    def __post_init__(self) -> None:
        if not (0 < self.low_ms <= self.high_ms and self.window_s > 0 and self.calm_s > 0
                and self.hold_s >= self.window_s and self.divisors and self.divisors[0] == 1.0
                and all(d > 0 for d in self.divisors) and self.full_rate_hz > 0):
            raise ValueError(f"LoadConfig needs 0 < low_ms <= high_ms, positive spans, "
                             f"hold_s >= window_s and divisors starting at 1 (got {self})")


class LoadGovernor:
    """See the module doc. rates: each stage's configured rate by its name, in the order
    `describe` names them (None: every frame). Thread-safe: fed by the tick thread, read by
    the health table's."""

    def __init__(self, rates: dict[str, float | None],
                 config: LoadConfig | None = None, *, speech: bool = False) -> None:
        self.config = config or LoadConfig()
        self._base = dict(rates)
        self._speech = speech
        self._seen: deque[tuple[float, bool, bool]] = deque()  # (t_s, over, calm)
        self._step = 0
        self._changed_s = NAN  # the first tick, then each change
        self._calm_since_s = NAN
        self._lock = threading.Lock()

    @property
    def step(self) -> int:
        with self._lock:
            return self._step

    def rates(self, step: int | None = None) -> dict[str, float | None]:
        """Each stage's rate at ``step`` (default: the current one)."""
        step = self.step if step is None else step
        if step == 0:
            return dict(self._base)
        divisor = self.config.divisors[step]
        return {name: round((r or self.config.full_rate_hz) / divisor, 3)
                for name, r in self._base.items()}

    def asr_policy(self, step: int | None = None) -> str | None:
        """The ASR policy to stream by at ``step`` (default: the current one); None: the
        session's own."""
        step = self.step if step is None else step
        cfg = self.config
        return cfg.asr_policy if self._speech and step >= cfg.asr_step else None

    def describe(self) -> str | None:
        """What is cut, in words (None when nothing is)."""
        step = self.step
        if step == 0:
            return None
        cuts = [f"{name} {rate:g}/s" for name, rate in self.rates(step).items()]
        policy = self.asr_policy(step)
        if policy is not None:
            cuts.append(f"speech by the {policy} policy")
        cut = ", ".join(cuts)
        return f"{cut} (capture to prediction over {self.config.high_ms:g} ms)"

    def observe(self, t_s: float, latency_ms: float | None) -> int | None:
        """One tick at session time ``t_s``: its latency (ms), or None for a missed tick.
        Returns the new step when this observation changed it, else None."""
        cfg = self.config
        over = latency_ms is None or latency_ms > cfg.high_ms
        calm = latency_ms is not None and latency_ms < cfg.low_ms
        with self._lock:
            if self._changed_s != self._changed_s:
                self._changed_s = t_s
            self._seen.append((t_s, over, calm))
            while self._seen and self._seen[0][0] < t_s - cfg.window_s:
                self._seen.popleft()
            if not calm:
                self._calm_since_s = NAN
            elif self._calm_since_s != self._calm_since_s:
                self._calm_since_s = t_s
            if t_s - self._changed_s < cfg.hold_s:
                return None
            overs = sum(o for _, o, _ in self._seen)
            if 2 * overs >= len(self._seen) and self._step + 1 < len(cfg.divisors):
                self._step += 1
            elif (self._step > 0 and t_s - self._calm_since_s >= cfg.calm_s
                  and all(c for _, _, c in self._seen)):
                self._step -= 1
                self._calm_since_s = t_s
            else:
                return None
            self._changed_s = t_s
            self._seen.clear()
            return self._step
