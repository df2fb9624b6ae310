"""The dashboard's server and command line: the arguments (`parse_args`), the logins
(`parse_auth`, `auth_value`), the refusal to serve beyond this machine without them
(`check_exposure`), and `launch`, which serves a `realtime.dashboard.demo.Demo` behind
`realtime.dashboard.http_guard`. `main` is ``python app.py``.

Logins: ``USER:PASS``, one account a line (--auth-file, or ${SENTIMENT_AUTH}; --auth takes
one); passwords have at least `MIN_PASSWORD_LEN` characters. Uploads larger than
--max-upload-mb are refused (HTTP 413, and by the page before it sends them).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import signal
import tempfile
from pathlib import Path

from models.env import add_log_level, configure_logging
from realtime.dashboard import http_guard
from realtime.dashboard.calibration_panel import presenter_models
from realtime.dashboard.controller import SourceChoice, engine_pipeline_factory
from realtime.dashboard.demo import (
    DEMO_RECORDING,
    Demo,
    PeopleOptions,
    build_demo,
    close_demo,
    default_max_sessions,
)
from realtime.dashboard.gradio6_internals import queue_settings
from realtime.dashboard.style import CSS, HEAD, theme
from realtime.personal.consent import needs_consent
from realtime.personal.retention import DEFAULT_RETENTION_DAYS
from realtime.serving.backend import add_serve_arguments, check_serve_arguments

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "SENTIMENT_AUTH"
MIN_PASSWORD_LEN = 8
CHECKPOINT_ENV = "SENTIMENT_CHECKPOINT"
PEOPLE_REAP_EVERY_S = 5.0  # how often idle visitors' sessions are looked for
MAX_PAGES = 64  # browser sessions the server keeps at once (Gradio's default: 10,000)
# A talk of several minutes in 1080p fits; a 1 GB file does not.
DEFAULT_MAX_UPLOAD_MB = 200

Logins = list[tuple[str, str]]


def parse_auth(value: str | None) -> Logins | None:
    """``USER:PASS`` lines -> [(user, pass), ...] (blank lines skipped); None/empty -> None.
    A malformed line, a short password or a user named twice is a ValueError naming the
    line (never its password)."""
    if not value or not value.strip():
        return None
    logins: Logins = []
    lines = value.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {number}: " if len(lines) > 1 else ""
        user, sep, password = line.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(f"{where}auth must be USER:PASS with both parts non-empty")
        if len(password) < MIN_PASSWORD_LEN:
            raise ValueError(f"{where}the password must have at least {MIN_PASSWORD_LEN} "
                             "characters")
        if any(user == known for known, _ in logins):
            raise ValueError(f"{where}the user {user!r} is named twice")
        logins.append((user, password))
    return logins


def auth_value(args: argparse.Namespace) -> str | None:
    """The logins' text: --auth-file, else ${AUTH_ENV}, else --auth (with a warning: the
    command line is visible to every user of the machine in `ps`)."""
    if args.auth_file is not None:
        try:
            return args.auth_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {args.auth_file}: {exc}") from None
    if os.environ.get(AUTH_ENV):
        return os.environ[AUTH_ENV]
    if args.auth:
        log.warning("--auth on the command line is visible to other users in `ps`; "
                    "prefer %s=USER:PASS or --auth-file FILE", AUTH_ENV)
    return args.auth


def check_exposure(host: str, share: bool, auth: Logins | tuple[str, str] | None) -> None:
    """Refuses to serve beyond this machine without a login."""
    if (host not in LOOPBACK or share) and not auth:
        where = "--share" if share else f"--host {host}"
        raise SystemExit(
            f"Refusing to start: {where} exposes the dashboard beyond this machine; "
            f"give --auth USER:PASS or set {AUTH_ENV}=USER:PASS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Live multimodal sentiment dashboard")
    p.add_argument("--source", type=Path, help="a video or audio file to replay live "
                   "(default: the bundled recording assets/demo.mp4)")
    p.add_argument("--browser", action="store_true",
                   help="start on the page's own webcam and microphone")
    p.add_argument("--camera", type=int, help="this machine's camera index")
    p.add_argument("--mic", help="this machine's microphone name (with --camera or alone)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help=f"USER:PASS (visible in `ps`: prefer {AUTH_ENV} or "
                   "--auth-file)")
    p.add_argument("--auth-file", type=Path,
                   help="a file of logins, one USER:PASS a line (each user has their own "
                        "sessions)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for this Host name (repeatable)")
    p.add_argument("--share", action="store_true", help="a public Gradio link (needs auth)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help="refuse uploaded files larger than this many MiB (default "
                        "%(default)s)")
    p.add_argument("--model", "--checkpoint", dest="checkpoint", type=Path,
                   default=os.environ.get(CHECKPOINT_ENV) or None,
                   help=f"model folder, e.g. a personal model (default: ${CHECKPOINT_ENV}, "
                   "else assets/model)")
    p.add_argument("--no-loop", action="store_true", help="play a recording once")
    p.add_argument("--face-weight", type=float, default=None, metavar="W",
                   help="add W * face valence (in [-1, 1]) to the shown sentiment while a face "
                        "is in view, with the default model (default 0: the model's "
                        "sentiment) and at start with a --checkpoint personal model (default: "
                        "the W its calibration fitted); a personal model loaded in the "
                        "calibration panel brings its own W")
    p.add_argument("--max-sessions", type=int, default=default_max_sessions(),
                   help="most visitors streaming their own capture at once (default: one "
                        "per CPU core, here %(default)s; each runs speech recognition and "
                        "face tracking)")
    p.add_argument("--idle-timeout-s", type=float, default=PeopleOptions.idle_timeout_s,
                   help="close a visitor's session after this long without input "
                        "(default %(default)s)")
    p.add_argument("--retention-days", type=int, default=DEFAULT_RETENTION_DAYS,
                   help="delete consented session logs and saved calibration sessions "
                        "older than this many days, at start and daily (default "
                        "%(default)s). 0: no session log is written to disk (any left by "
                        "an earlier run are deleted) and saved calibration sessions are "
                        "kept until deleted by hand; retention never deletes personal "
                        "models")
    add_serve_arguments(p)
    add_log_level(p)
    args = p.parse_args(argv)
    check_serve_arguments(p, args)
    if args.max_sessions < 1:
        p.error(f"--max-sessions must be >= 1, got {args.max_sessions}")
    if not (math.isfinite(args.idle_timeout_s) and args.idle_timeout_s > 0):
        p.error(f"--idle-timeout-s must be > 0, got {args.idle_timeout_s}")
    if not (math.isfinite(args.max_upload_mb) and args.max_upload_mb > 0):
        p.error(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.retention_days < 0:
        p.error(f"--retention-days must be >= 0, got {args.retention_days}")
    if args.face_weight is not None and not (math.isfinite(args.face_weight)
                                             and abs(args.face_weight) <= 6):
        p.error(f"--face-weight must be a number in [-6, 6], got {args.face_weight}")
    return args


def initial_choice(args: argparse.Namespace) -> SourceChoice:
    if args.browser:
        return SourceChoice("browser")
    if args.camera is not None or args.mic is not None:
        return SourceChoice("devices", camera=args.camera, mic=args.mic)
    if args.source is not None:
        if not args.source.exists():
            raise SystemExit(f"--source {args.source}: no such file")
        return SourceChoice("file", path=args.source, loop=not args.no_loop)
    if not DEMO_RECORDING.exists():
        raise SystemExit(f"the bundled recording {DEMO_RECORDING} is missing; "
                         "give --source PATH or --camera N")
    return SourceChoice("recording", path=DEMO_RECORDING, loop=not args.no_loop)


def max_upload_bytes(args: argparse.Namespace) -> int:
    return int(args.max_upload_mb * 1024 * 1024)


def launch(demo: Demo, args: argparse.Namespace, auth: Logins | tuple[str, str] | None,
           block: bool = True) -> None:
    """Serves the page as ``args`` say, behind `realtime.dashboard.http_guard`, to the
    ``auth`` logins (None: anyone who reaches it); ``block=False`` returns once the server
    is up (tests; close with demo.page.close())."""
    with queue_settings():
        demo.page.queue(default_concurrency_limit=4)
    demo.page.launch(server_name=args.host, server_port=args.port, share=args.share,
                     auth=auth, ssr_mode=False, theme=theme(), css=CSS, head=HEAD,
                     footer_links=[], show_error=True, quiet=False, enable_monitoring=False,
                     prevent_thread_lock=not block, state_session_capacity=MAX_PAGES,
                     max_file_size=max_upload_bytes(args),
                     app_kwargs={"middleware": http_guard.middleware(guard_config(args))})


def guard_config(args: argparse.Namespace) -> http_guard.GuardConfig:
    return http_guard.GuardConfig(bound_host=args.host, allowed_hosts=tuple(args.allowed_host),
                                  share=args.share)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop the pipeline and the server like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    """``python app.py``: parses ``argv``, serves until Ctrl-C or SIGTERM (130 on Ctrl-C
    before the server is up, else 0). Gradio's uploads go to a private temporary folder
    deleted at exit, unless GRADIO_TEMP_DIR names one. The caller has applied the process
    settings (`realtime.runtime.apply_process_settings`: app.py's `main`) before importing
    this module, which imports Gradio; this applies none."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    signal.signal(signal.SIGTERM, _interrupt)
    private_tmp = None
    if not os.environ.get("GRADIO_TEMP_DIR"):  # uploads and chunks: ours, gone at exit
        private_tmp = tempfile.mkdtemp(prefix="sentiment-gradio-")
        os.environ["GRADIO_TEMP_DIR"] = private_tmp
    try:
        return _serve(args)
    except KeyboardInterrupt:
        return 130
    finally:
        if private_tmp is not None:
            shutil.rmtree(private_tmp, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    try:
        auth = parse_auth(auth_value(args))
    except ValueError as exc:
        raise SystemExit(f"--auth/--auth-file/{AUTH_ENV}: {exc}") from None
    check_exposure(args.host, args.share, auth)
    choice = initial_choice(args)

    from realtime.engine import EngineError
    from realtime.runtime import Runtime, RuntimeConfig
    from realtime.serving.backend import ServingError
    from realtime.sources import SourceError

    log.info("loading models (once)")
    runtime = None
    try:
        # visitors' own sessions: sessions of the runtime's registry, the model and word
        # encoder batched across all of them
        runtime = Runtime.open(RuntimeConfig(
            checkpoint_dir=args.checkpoint, face_weight=args.face_weight, serve=args.serve,
            ray_address=args.ray_address, ray_connect_timeout_s=args.ray_connect_timeout_s,
            shared_models=True, max_sessions=args.max_sessions,
            idle_timeout_s=args.idle_timeout_s, reap_every_s=PEOPLE_REAP_EVERY_S))
        engine = runtime.engine
        # the presenter view's own model (its calibration loads personal models there only)
        presenter = presenter_models(
            engine, None if runtime.served is None else runtime.served.models)
        factory = engine_pipeline_factory(engine, models=presenter)
        pipeline = factory(choice)
    except (EngineError, ServingError, SourceError, FileNotFoundError, ValueError) as exc:
        if runtime is not None:
            runtime.close()
        raise SystemExit(f"Cannot start: {exc}") from None
    options = PeopleOptions(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout_s,
                            retention_days=args.retention_days, per_user=auth is not None)
    # each visitor: a model of their own over the shared batching executor
    demo = build_demo(pipeline, choice, factory, model_dir=args.checkpoint, options=options,
                      registry=runtime.sessions, presenter=presenter,
                      personal_models=runtime.models)
    try:
        if not needs_consent(choice.kind):  # a person is captured only once they agree
            demo.dashboard.start_session()
        launch(demo, args, auth)
    except KeyboardInterrupt:
        pass
    finally:
        close_demo(demo)
        runtime.close()
    return 0
