"""The pipeline's latency while K people watch the dashboard (issue 16, defect 6).

    python -m benchmarks.viewers [--viewers 0,10] [--seconds 60] [--rounds 1]
                                 [--client browser|http] [--variant NAME[=DIR]] ...
                                 [--browser-nice 0] [--profile]
                                 [--json benchmarks/results/viewers.json]

It serves ``app.py`` on the bundled recording (loop on, as ``make demo`` does) and, for
each K of ``--viewers``, opens K viewers, waits (up to 3 minutes) until each shows a
prediction, and then for ``--seconds`` measures:

* the pipeline's total latency p50/p95 (``latency_ms.total``) and the longest gap between
  published predictions (``emitted_at_s``; gaps across a loop of the recording, where a new
  pipeline starts, are left out and counted), from the session log exported before and
  after the window (the Export JSONL button's API);
* each viewer's refresh rate (answers to the page's fast timer);
* the app process's CPU (cores) and resident memory, the viewers' CPU, and the whole
  machine's busy cores and load average (on a shared machine they decide the figures).

Viewers (``--client``): ``browser`` (default): headless Chromium pages, one browser, each
page in a browser context of its own (contexts do not share Chromium's six connections per
host, so the server sees K separate browsers: K page sessions with their own streams and
timers); refresh from the ``data-tick`` counter of ``#status``. ``http``: the same
requests without a browser (`HttpViewer`: the page and its config, the heartbeat stream,
the load events and every timer's event, queued or not as the page's config says), about
0.02 cores a viewer against Chromium's 0.12; on a 2-core machine ten Chromium pages take
more CPU than the server they measure.

Every K is measured against the same app process, one after another (``--rounds`` repeats
the whole sequence), so the comparison holds on a noisy machine. ``--variant NAME=DIR``
serves the ``app.py`` of another checkout (e.g. a ``git worktree`` of the commit before a
fix) beside this one (``--variant after``); the variants take turns in each round.
``--browser-nice N`` runs the browser nicer (default 0: as this process; niced on a loaded
machine, pages never showed a prediction). ``--profile`` samples the app process with
py-spy during the largest K (per thread and watched functions, into the JSON). The servers
are always stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.ui_refresh import CHROMIUM, CHROMIUM_ARGS, REPO, AppServer
from models.env import add_log_level, configure_logging
from realtime.clock import perf_s

log = logging.getLogger(__name__)

TARGET_P95_MS = 250.0
CLOCK_TICKS_S = os.sysconf("SC_CLK_TCK")
PAGE_SIZE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20
FIRST_PREDICTION_S = 180.0
EXPORT_TIMEOUT_S = 120.0


# -- the session log's figures (pure) ---------------------------------------------------
@dataclass(frozen=True)
class LogFigures:
    """What the pipeline published in a window: ``rows`` predictions, their total latency
    (ms) p50/p95/max, the longest gap between two predictions of the same pipeline (s) and
    how many times a new pipeline started (a loop of the recording; that gap is left out)."""

    rows: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    longest_gap_s: float
    pipeline_restarts: int
    updates_per_s: float

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else
                    (None if isinstance(v, float) else v)) for k, v in vars(self).items()}


def parse_log(text: str) -> list[dict]:
    """The prediction rows of an exported session log (JSONL; the header row is skipped)."""
    rows = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("type") == "prediction":
                rows.append(row)
    return rows


def rows_after(rows: list[dict], t_s: float) -> list[dict]:
    """The rows logged after session time ``t_s`` (the log's ``t_s`` never goes back)."""
    return [r for r in rows if r["t_s"] > t_s]


def log_figures(rows: list[dict]) -> LogFigures:
    """`LogFigures` of ``rows`` (in log order). ``emitted_at_s`` is the clock of the pipeline
    that published the row: when it goes back, a new pipeline started (the recording
    looped) and that gap is counted as a restart, not as a gap."""
    totals = [float(r["latency_ms"]["total"]) for r in rows
              if r.get("latency_ms", {}).get("total") is not None]
    totals = [x for x in totals if math.isfinite(x)]
    gaps, restarts, run_s = [], 0, 0.0
    for prev, row in zip(rows, rows[1:], strict=False):
        dt = float(row["emitted_at_s"]) - float(prev["emitted_at_s"])
        if dt < 0:
            restarts += 1
        else:
            gaps.append(dt)
            run_s += dt
    p50, p95 = (np.percentile(totals, [50, 95]) if totals else (math.nan, math.nan))
    return LogFigures(
        rows=len(rows), latency_p50_ms=float(p50), latency_p95_ms=float(p95),
        latency_max_ms=float(max(totals)) if totals else math.nan,
        longest_gap_s=float(max(gaps)) if gaps else math.nan, pipeline_restarts=restarts,
        updates_per_s=len(gaps) / run_s if run_s > 0 else math.nan)


# -- processes (Linux /proc) -------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) used by process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_S


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE_MIB


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu_s(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_s(pid)
        except (OSError, ValueError, IndexError):
            pass
    return out


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS_S, total / CLOCK_TICKS_S


class Meter:
    """CPU of the app process, of the viewers' processes (``client_pids()``) and of the
    machine over a window, and the app's RSS (sampled every second: mean and peak)."""

    def __init__(self, app_pid: int, client_pids: Callable[[], list[int]]) -> None:
        self.app_pid, self._client_pids = app_pid, client_pids
        self._stop = threading.Event()
        self._rss: list[float] = []
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while True:
            try:
                self._rss.append(rss_mib(self.app_pid))
            except OSError:
                return
            if self._stop.wait(1.0):
                return

    def __enter__(self) -> Meter:
        self._t0 = perf_s()
        self._app0 = cpu_s(self.app_pid)
        self._client0 = tree_cpu_s(self._client_pids())
        self._machine0 = machine_busy_s()
        self._load0 = os.getloadavg()[0]
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5.0)
        elapsed = perf_s() - self._t0
        client1 = tree_cpu_s(self._client_pids())
        client_s = sum(v - self._client0.get(pid, 0.0) for pid, v in client1.items())
        busy1, total1 = machine_busy_s()
        busy_s, total_s = busy1 - self._machine0[0], total1 - self._machine0[1]
        cores = os.cpu_count() or 1
        self.figures = {
            "seconds": round(elapsed, 2),
            "app_cpu_cores": round((cpu_s(self.app_pid) - self._app0) / elapsed, 3),
            "app_rss_mib_mean": round(float(np.mean(self._rss)), 1) if self._rss else None,
            "app_rss_mib_peak": round(max(self._rss), 1) if self._rss else None,
            "viewers_cpu_cores": round(client_s / elapsed, 3),
            "machine_busy_cores": round(cores * busy_s / max(total_s, 1e-9), 3),
            "load_avg_1min_start_end": [round(self._load0, 2), round(os.getloadavg()[0], 2)],
        }


# -- the app and its viewers -------------------------------------------------------------
def export_rows(client) -> list[dict]:
    """The presenter session's log, through the Export JSONL button's API."""
    result = client.predict(api_name="/export_jsonl")
    path = result.get("value") if isinstance(result, dict) else result
    return parse_log(Path(path).read_text(encoding="utf-8"))


def _tick(page) -> int:
    try:
        return int(page.get_attribute("#status .sx-status", "data-tick", timeout=5000) or 0)
    except Exception:  # noqa: BLE001 - a page that shows no status yet has no ticks
        return 0


class BrowserViewers:
    """K headless Chromium pages, each in a browser context of its own, loading at once;
    each page's refresh count is the ``data-tick`` counter of its ``#status``."""

    kind = "browser"

    def __init__(self, browser, url: str, k: int) -> None:
        self.browser, self.pages = browser, []
        for _ in range(k):
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.goto(url, wait_until="commit")
            self.pages.append(page)
        end_s = perf_s() + FIRST_PREDICTION_S
        self.live = 0  # pages that showed a prediction in time
        for page in self.pages:
            try:
                page.wait_for_function(
                    "() => document.querySelector('#sentiment [data-value]')?.dataset.value",
                    timeout=max(1.0, end_s - perf_s()) * 1000)
                self.live += 1
            except Exception:  # noqa: BLE001 - counted: a page the server could not serve
                log.warning("a viewer showed no prediction in %.0f s", FIRST_PREDICTION_S)

    def ticks(self) -> list[int]:
        return [_tick(p) for p in self.pages]

    def pids(self) -> list[int]:
        root = getattr(self.browser, "_sx_pid", None)
        return [] if root is None else [root, *descendants(root)]

    def close(self) -> None:
        for page in self.pages:
            try:
                page.context.close()
            except Exception:  # noqa: BLE001 - a page already gone is closed
                log.debug("closing a viewer failed", exc_info=True)


@dataclass(frozen=True)
class PageEvent:
    """A timer or load event of the dashboard's main page, as the page's JavaScript sends
    it: dependency ``fn_index`` with the inputs' initial values, through Gradio's queue or
    not, every ``interval_s`` (None: once, at load)."""

    fn_index: int
    trigger_id: int
    data: tuple
    queue: bool
    every_s: float | None
    multiple: bool


def page_events(config: dict) -> list[PageEvent]:
    """The load and timer events of the main page (``""``) in a Gradio ``/config``."""
    comps = {c["id"]: c for c in config["components"]}
    main = set(config.get("page", {}).get("", {}).get("dependencies", range(10**6)))
    events = []
    for i, dep in enumerate(config["dependencies"]):
        if dep.get("id", i) not in main or not dep.get("backend_fn", True):
            continue
        for target, name in dep["targets"]:
            comp = comps.get(target, {})
            if name == "tick" and comp.get("type") == "timer":
                every_s = float(comp["props"]["value"])
            elif name == "load":
                every_s = None
            else:
                continue
            data = tuple(None if comps[j]["type"] == "state" else comps[j]["props"].get("value")
                         for j in dep["inputs"])
            events.append(PageEvent(dep.get("id", i), target, data, bool(dep.get("queue", True)),
                                    every_s, dep.get("trigger_mode") == "multiple"))
            break
    return events


class HttpViewer:
    """One viewer without a browser: the requests a page makes, from this process. It
    loads the page and its config, holds the heartbeat stream, sends the load events once
    and each timer's event every interval (queued ones through ``queue/join`` with the
    session's event stream open while any is pending, as the page does; the others as one
    POST to ``run/predict``), and counts the answers per event. Threads: one per timer, the
    event stream, the heartbeat; `close` stops and joins them."""

    def __init__(self, url: str, config: dict, events: list[PageEvent]) -> None:
        import httpx

        self.url, self.api = url, url + config.get("api_prefix", "/gradio_api").lstrip("/")
        self.session = os.urandom(6).hex()
        self.http = httpx.Client(timeout=60.0)
        self.done: Counter = Counter()  # answers per fn_index
        self.failed = 0
        self._pending: dict[str, int] = {}  # queued event id -> fn_index
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = []
        self.http.get(url)
        self.http.get(url + "config")
        self._spawn(self._heartbeat)
        self._spawn(self._stream)
        for ev in events:
            if ev.every_s is None:
                self._send(ev)
        for ev in events:
            if ev.every_s is not None:
                self._spawn(self._timer, ev)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name="http-viewer")
        t.start()
        self._threads.append(t)

    def _body(self, ev: PageEvent) -> dict:
        return {"data": list(ev.data), "fn_index": ev.fn_index, "trigger_id": ev.trigger_id,
                "session_hash": self.session, "event_data": None}

    def _send(self, ev: PageEvent) -> None:
        try:
            if not ev.queue:
                r = self.http.post(f"{self.api}/run/predict", json=self._body(ev))
                ok = r.status_code == 200
                with self._cond:
                    self.done[ev.fn_index] += ok
                    self.failed += not ok
                return
            r = self.http.post(f"{self.api}/queue/join", json=self._body(ev))
            r.raise_for_status()
            with self._cond:
                self._pending[r.json()["event_id"]] = ev.fn_index
                self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - counted; the server was too busy
            log.debug("viewer event %d failed: %s", ev.fn_index, exc)
            with self._cond:
                self.failed += 1

    def _timer(self, ev: PageEvent) -> None:
        from concurrent.futures import ThreadPoolExecutor

        busy: set = set()
        with ThreadPoolExecutor(4, thread_name_prefix="http-viewer") as pool:
            next_s = perf_s()
            while not self._stop.is_set():
                with self._cond:
                    waiting = ev.fn_index in self._pending.values()
                busy = {f for f in busy if not f.done()}
                if ev.multiple or not (waiting or busy):
                    busy.add(pool.submit(self._send, ev))
                next_s += ev.every_s
                self._stop.wait(max(0.0, next_s - perf_s()))

    def _stream(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._pending:
                    self._cond.wait(0.2)
                    continue
            try:
                with self.http.stream("GET", f"{self.api}/queue/data",
                                      params={"session_hash": self.session}) as r:
                    if r.status_code != 200:
                        self._stop.wait(0.01)
                        continue
                    for line in r.iter_lines():
                        if self._read(line) or self._stop.is_set():
                            break
            except Exception as exc:  # noqa: BLE001 - reopened while events are pending
                log.debug("viewer stream: %s", exc)
                self._stop.wait(0.05)

    def _read(self, line: str) -> bool:
        """One line of the event stream; True when the server closes it."""
        if not line.startswith("data:"):
            return False
        msg = json.loads(line[5:])
        if msg.get("msg") == "process_completed":
            with self._cond:
                fn = self._pending.pop(msg.get("event_id"), None)
                if fn is not None:
                    self.done[fn] += bool(msg.get("success", True))
                    self.failed += not msg.get("success", True)
        return msg.get("msg") in ("close_stream", "unexpected_error")

    def _heartbeat(self) -> None:
        try:
            with self.http.stream("GET", f"{self.api}/heartbeat/{self.session}") as r:
                for _ in r.iter_lines():
                    if self._stop.is_set():
                        return
        except Exception:  # noqa: BLE001 - the server went away or we closed
            return

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self.http.close()
        for t in self._threads:
            t.join(5.0)


class HttpViewers:
    """K `HttpViewer`; a viewer's refresh count is the answers to the page's fastest timer."""

    kind = "http"

    def __init__(self, url: str, k: int) -> None:
        import httpx

        config = httpx.get(url + "config", timeout=60.0).json()
        self.events = page_events(config)
        timers = [e for e in self.events if e.every_s is not None]
        self.tick_fn = min(timers, key=lambda e: e.every_s).fn_index if timers else None
        self.viewers = [HttpViewer(url, config, self.events) for _ in range(k)]
        end_s = perf_s() + FIRST_PREDICTION_S
        while perf_s() < end_s and min(self.ticks(), default=1) == 0:
            threading.Event().wait(0.2)
        self.live = sum(t > 0 for t in self.ticks())

    def ticks(self) -> list[int]:
        return [v.done[self.tick_fn] for v in self.viewers]

    def pids(self) -> list[int]:
        return [os.getpid()]

    def close(self) -> None:
        for v in self.viewers:
            v.close()


def profile_app(pid: int, seconds: float, out: Path) -> dict | None:
    """py-spy samples of ``pid`` for ``seconds`` (per thread, idle excluded): the 15
    functions seen most, per thread name, as shares of that thread's samples."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        log.warning("py-spy not found: no profile")
        return None
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
           "--format", "raw", "--threads", "--output", str(out), "--nonblocking"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        log.warning("py-spy failed: %s", done.stderr[-500:])
        return None
    return summarize_profile(out.read_text())


# where a viewer's tick goes (inclusive shares of all samples)
WATCHED = ("_bind_refresh.<locals>.on_tick", "calibration_panel.<locals>.on_tick", "fast_panels",
           "slow_panels", "Blocks.process_api", "postprocess_data",
           "Queue.process_events", "compute_analytics_summary", "sse_stream",
           "Request.is_disconnected", "Pipeline._spawn.<locals>.run")


def summarize_profile(collapsed: str, top: int = 12) -> dict:
    """From py-spy's collapsed stacks (``thread (TID): NAME;frame;...;frame COUNT`` lines):
    each thread name's share of all samples (numbers in names folded: ``Thread-1 (run)`` ->
    ``Thread-N (run)``) and its ``top`` leaf functions (self time, shares of all samples),
    and the inclusive share of each `WATCHED` function (a qualified name ending so). A
    thread waiting for the GIL counts as busy, so shares say where threads are, not who
    runs."""
    leaves: dict[str, Counter] = {}
    samples: Counter = Counter()
    watched: Counter = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = re.sub(r"-\d+", "-N", re.sub(r"^thread \(\d+\):\s*", "", frames[0]))
        n = int(count)
        samples[thread] += n
        names = {f.split(" (")[0] for f in frames[1:]}
        for w in WATCHED:
            if any(name.endswith(w) for name in names):
                watched[w] += n
        leaves.setdefault(thread, Counter())[frames[-1]] += n
    total = sum(samples.values()) or 1
    return {
        "samples": total,
        "threads": {t: {"share": round(samples[t] / total, 3),
                        "self": {f: round(c / total, 4)
                                 for f, c in leaves[t].most_common(top)}}
                    for t in sorted(samples, key=samples.get, reverse=True)},
        "watched": {w: round(watched[w] / total, 4) for w in WATCHED},
    }


def measure_window(server: AppServer, client, open_viewers: Callable, k: int, seconds: float,
                   profile_to: Path | None) -> dict:
    """One window of ``seconds`` with K viewers (``open_viewers(url, k)``) against the
    running ``server``."""
    t0 = perf_s()
    viewers = open_viewers(server.url, k)
    log.info("%d of %d viewers live in %.1f s", viewers.live, k, perf_s() - t0)
    try:
        before = export_rows(client)
        start_t_s = before[-1]["t_s"] if before else -math.inf
        ticks0 = viewers.ticks()
        profile: dict | None = None
        with Meter(server.proc.pid, viewers.pids) as meter:
            t0 = perf_s()
            if profile_to is not None:
                profile = profile_app(server.proc.pid, seconds, profile_to)
            left_s = seconds - (perf_s() - t0)
            if left_s > 0:
                threading.Event().wait(left_s)
        elapsed = meter.figures["seconds"]
        ticks = [t1 - t0 for t1, t0 in zip(viewers.ticks(), ticks0, strict=True)]
        rows = rows_after(export_rows(client), start_t_s)
    finally:
        viewers.close()
    rates = sorted(t / elapsed for t in ticks)
    figures = log_figures(rows)
    return {
        "viewers": k, "viewers_live": viewers.live, **figures.as_dict(),
        "latency_p95_within_target": bool(figures.latency_p95_ms <= TARGET_P95_MS),
        "page_refresh_hz_median": round(rates[len(rates) // 2], 2) if rates else None,
        "page_refresh_hz_min": round(rates[0], 2) if rates else None,
        **meter.figures, **({"profile": profile} if profile else {}),
    }


def nice_chromium(folder: Path, nice: int) -> str:
    """A launcher that runs Debian's Chromium at ``nice`` (its processes inherit it)."""
    path = folder / "chromium-nice"
    path.write_text(f'#!/bin/sh\nexec nice -n {int(nice)} {CHROMIUM} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def browser_root_pid(before: set[int]) -> int | None:
    """The browser process started since ``before`` (the newest child of this process)."""
    new = [p for p in descendants(os.getpid()) if p not in before]
    return min(new) if new else None


@dataclass(frozen=True)
class Variant:
    """An ``app.py`` to serve: ``name`` and the checkout it lives in."""

    name: str
    root: Path


def parse_variant(text: str) -> Variant:
    name, sep, root = text.partition("=")
    path = Path(root).resolve() if sep else REPO
    if not name or not (path / "app.py").exists():
        raise argparse.ArgumentTypeError(f"--variant {text!r}: NAME or NAME=DIR with an "
                                         "app.py in DIR")
    return Variant(name, path)


def run_variant(variant: Variant, viewers: list[int], seconds: float,
                open_viewers: Callable, log_path: Path, profile_dir: Path | None,
                warmup_s: float) -> dict:
    from gradio_client import Client

    with AppServer(log_path=log_path, root=variant.root) as server:
        # a server busy with viewers may take seconds to take the export's event
        client = Client(server.url, verbose=False, httpx_kwargs={"timeout": EXPORT_TIMEOUT_S})
        # the first prediction, then a warm-up with no viewer (models, caches)
        open_viewers(server.url, 1).close()
        threading.Event().wait(warmup_s)
        windows = []
        for k in viewers:
            prof = (profile_dir / f"{variant.name}-{k}.txt"
                    if profile_dir is not None and k == max(viewers) else None)
            log.info("%s: %d viewers for %.0f s", variant.name, k, seconds)
            windows.append({"variant": variant.name,
                            **measure_window(server, client, open_viewers, k, seconds, prof)})
            log.info("%s", json.dumps(windows[-1]))
        client.close()
    return {"variant": variant.name, "windows": windows}


CLIENTS = {
    "browser": "one headless Chromium, one browser context per viewer (a page session, "
               "its own event streams and timers each)",
    "http": "the page's requests from threads of this process (page and config once, the "
            "heartbeat stream, load events, each timer's event through the queue or "
            "run/predict as the page's config says); no rendering",
}


def run(viewers: list[int], seconds: float, variants: list[Variant], rounds: int,
        client: str, browser_nice: int, profile: bool, warmup_s: float,
        log_dir: Path) -> dict:
    results = []
    with contextlib.ExitStack() as stack:
        if client == "browser":
            from playwright.sync_api import sync_playwright

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viewers-")))
            p = stack.enter_context(sync_playwright())
            before = set(descendants(os.getpid()))
            executable = nice_chromium(tmp, browser_nice) if browser_nice else CHROMIUM
            browser = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
            stack.callback(browser.close)
            browser._sx_pid = browser_root_pid(before)

            def open_viewers(url: str, k: int):
                return BrowserViewers(browser, url, k)
        else:
            open_viewers = HttpViewers
        for r in range(rounds):
            for v in variants:
                res = run_variant(v, viewers, seconds, open_viewers,
                                  log_dir / f"viewers_app_{v.name}.log",
                                  log_dir if profile else None, warmup_s)
                results.append({"round": r + 1, **res})
    load1, load5, load15 = os.getloadavg()
    return {
        "viewers": viewers, "seconds": seconds, "rounds": rounds,
        "variants": {v.name: str(v.root) for v in variants},
        "target_latency_p95_ms": TARGET_P95_MS, "runs": results,
        "client": client, "client_means": CLIENTS[client],
        **({"browser_nice": browser_nice} if client == "browser" else {}),
        "cpu_count": os.cpu_count(),
        "load_avg_1_5_15_end": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "machine": platform.machine(),
    }


def _viewer_list(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--viewers: integers, e.g. 0,10; got {text!r}") from None
    if not ks or min(ks) < 0:
        raise argparse.ArgumentTypeError(f"--viewers: integers >= 0, got {text!r}")
    return ks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", type=_viewer_list, default=[0, 10],
                    help="viewer counts, measured in this order (default 0,10)")
    ap.add_argument("--seconds", type=float, default=60.0, help="one window per count")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every variant and count")
    ap.add_argument("--variant", type=parse_variant, action="append", default=[],
                    help="NAME (this checkout) or NAME=DIR (another checkout's app.py); "
                    "repeatable; default: this checkout as 'current'")
    ap.add_argument("--warmup-s", type=float, default=10.0,
                    help="after the first prediction, before the first window")
    ap.add_argument("--client", choices=sorted(CLIENTS), default="browser",
                    help="browser: headless Chromium pages; http: the pages' requests "
                    "without rendering (cheap on a small machine)")
    ap.add_argument("--browser-nice", type=int, default=0,
                    help="the browser's niceness (0: as this process)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the app during the largest viewer count")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks/results/viewers.json")
    ap.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the app's output (and profiles) go")
    add_log_level(ap)
    args = ap.parse_args(argv)
    configure_logging(args.log_level)
    variants = args.variant or [Variant("current", REPO)]
    if len({v.name for v in variants}) != len(variants):
        ap.error("--variant names must differ")
    result = run(args.viewers, args.seconds, variants, max(1, args.rounds), args.client,
                 args.browser_nice, args.profile, args.warmup_s, args.log_dir)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for run_ in result["runs"]:
        for w in run_["windows"]:
            print(f"round {run_['round']} {w['variant']:>10} K={w['viewers']:>2}: "
                  f"p50 {w['latency_p50_ms']} ms, p95 {w['latency_p95_ms']} ms, "
                  f"longest gap {w['longest_gap_s']} s, pages {w['page_refresh_hz_min']}-"
                  f"{w['page_refresh_hz_median']} Hz ({w['viewers_live']} live), "
                  f"app {w['app_cpu_cores']} cores, "
                  f"{w['app_rss_mib_peak']} MiB, machine {w['machine_busy_cores']} cores busy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
