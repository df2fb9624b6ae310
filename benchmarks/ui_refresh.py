"""Measures how often the dashboard page really refreshes, in a headless Chromium.

    python -m benchmarks.ui_refresh [--seconds 10] [--repeats 3] [--source PATH] [--checkpoint DIR]
                                    [--json benchmarks/results/ui_refresh.json] [--screenshot PNG]
                                    [--log-level INFO]

It starts ``app.py`` on a free port (the pipeline replaying the bundled recording, as
``make demo`` does), opens the page in Debian's Chromium (never a downloaded browser),
waits for the first prediction, then in ``--repeats`` consecutive windows of ``--seconds``
counts the refresh ticks the page received (the ``data-tick`` counter of #status) and the
changes of the #sentiment number, and reads the pipeline's own update rate. The machine's
load average is recorded with them (on a shared CPU it decides the figures). The server is
always stopped.

The helpers (`AppServer`, `launch_chromium`, `CHROMIUM_ARGS`) are shared with the
end-to-end tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from models.env import OFFLINE_ENV, add_log_level, configure_logging
from realtime.clock import perf_s

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AppServer:
    """``python app.py ARGS --port P`` in a subprocess; use as a context manager. ``root``:
    the checkout whose ``app.py`` (and code) runs."""

    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    root: Path = REPO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 240.0) -> AppServer:
        env = {**os.environ, **OFFLINE_ENV, **self.env}
        log.info("starting app.py %s on port %d", " ".join(self.args), self.port)
        out = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(self.root / "app.py"), *self.args, "--port", str(self.port)],
            cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait = threading.Event()
        end_s = perf_s() + timeout_s
        while perf_s() < end_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:  # noqa: S310 - loopback
                    if r.status == 200:
                        return self
            except OSError:
                pass
            wait.wait(0.5)
        self.stop()
        raise TimeoutError(f"app.py did not answer on {self.url} in {timeout_s:.0f} s: "
                           f"{self.log()}")

    def log(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-3000:]
        return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright, extra_args: tuple[str, ...] = ()):
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM,
                                      args=[*CHROMIUM_ARGS, *extra_args])


# Counts #sentiment changes in the page; the tick counter is read from #status.
_OBSERVE = """() => {
  window.__sxChanges = 0;
  const el = document.querySelector('#sentiment');
  let last = el.querySelector('[data-value]')?.dataset.value;
  new MutationObserver(() => {
    const v = el.querySelector('[data-value]')?.dataset.value;
    if (v !== last) { window.__sxChanges += 1; last = v; }
  }).observe(el, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def _tick(page) -> int:
    return int(page.get_attribute("#status .sx-status", "data-tick") or 0)


def measure_page(page, seconds: float) -> dict:
    """Ticks and sentiment changes per second seen by ``page`` over ``seconds``."""
    page.evaluate(_OBSERVE)
    t0, tick0 = perf_s(), _tick(page)
    page.wait_for_timeout(seconds * 1000.0)
    elapsed = perf_s() - t0
    ticks = _tick(page) - tick0
    changes = page.evaluate("window.__sxChanges")
    updates = page.inner_text("#latency [data-rate=updates]")
    return {"seconds": round(elapsed, 2), "ui_ticks": ticks,
            "ui_refresh_hz": round(ticks / elapsed, 2),
            "sentiment_changes_per_s": round(changes / elapsed, 2),
            "pipeline_updates_per_s_reported": _number(updates)}


def save_screenshot(page, path: Path, colours: int = 256) -> Path:
    """The full page as a PNG with a ``colours`` palette (small enough for docs/)."""
    import io

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def run(seconds: float, app_args: tuple[str, ...], log_path: Path,
        screenshot: Path | None = None, repeats: int = 3) -> dict:
    from playwright.sync_api import sync_playwright

    with AppServer(app_args, log_path=log_path) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(server.url)
            log.info("page open at %s; waiting for the first prediction", server.url)
            page.wait_for_function(
                "() => document.querySelector('#sentiment [data-value]')?.dataset.value",
                timeout=180_000)
            windows = [measure_page(page, seconds) for _ in range(max(1, repeats))]
            rates = sorted(w["ui_refresh_hz"] for w in windows)
            result = {"ui_refresh_hz_median": rates[len(rates) // 2],
                      "ui_refresh_hz_min": rates[0], "windows": windows}
            if screenshot is not None:
                save_screenshot(page, screenshot)
        finally:
            browser.close()
    load1, load5, _ = os.getloadavg()
    return {**result, "target_hz": 5.0, "app_args": list(app_args),
            "cpu_count": os.cpu_count(), "load_avg_1min": round(load1, 2),
            "load_avg_5min": round(load5, 2), "machine": platform.machine(),
            "chromium_args": list(CHROMIUM_ARGS)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="one measuring window")
    ap.add_argument("--repeats", type=int, default=3, help="consecutive windows")
    ap.add_argument("--source", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--json", "--out", dest="json", type=Path,
                    default=REPO / "benchmarks/results/ui_refresh.json", help="results file")
    ap.add_argument("--log", type=Path, default=Path("/tmp/ui_bench_app.log"))
    ap.add_argument("--screenshot", type=Path, help="save the page as PNG after measuring")
    add_log_level(ap)
    args = ap.parse_args(argv)
    configure_logging(args.log_level)
    app_args: tuple[str, ...] = ()
    if args.source:
        app_args += ("--source", str(args.source))
    if args.checkpoint:
        app_args += ("--checkpoint", str(args.checkpoint))
    result = run(args.seconds, app_args, args.log, args.screenshot, args.repeats)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
