"""Live multimodal sentiment dashboard (Gradio).

    python app.py [--source PATH | --camera N [--mic NAME] | --browser] [--host H]
                  [--port P] [--auth-file F] [--allowed-host NAME] [--share] [--model DIR]
                  [--max-upload-mb MB] [--log-level L]

Default: the bundled recording (assets/demo.mp4) on http://127.0.0.1:7860. The page reads
only the pipeline's prediction store (through `realtime.dashboard.controller.Dashboard`); no
model work happens in a web handler. Binding anything but loopback, or sharing, needs --auth
or SENTIMENT_AUTH=user:pass (or --auth-file, a file of accounts, one USER:PASS a line;
--auth USER:PASS works but is visible in `ps`); passwords have at least 8 characters.
Requests whose Host header is not the bound address (or a name given with --allowed-host)
are refused, and failed logins are throttled (`realtime.dashboard.http_guard`). Exports
live in a temporary folder deleted at exit. Uploads past --max-upload-mb (default 200) are
refused. Analytics are off; the page loads nothing from the internet and describes none of
its endpoints.
The "Personal calibration" panel (`realtime.dashboard.calibration_panel`) records labelled feature
windows, calibrates a personal model in a subprocess and switches the live model.

People: capture of a person (the browser's webcam and microphone, or this machine's) starts
only after they agree to the consent notice (`elem_id="consent"`; the agreement goes in the
session log). A visitor streaming their own browser gets a session of their own
(`realtime.dashboard.people`): only their page (with --auth: only their login) sees it and
exports it; the shared presenter view (the bundled recording, a file, this machine's camera)
stays as it is for demos. "Withdraw consent" stops the capture and deletes the session's
data; "Delete my data" deletes it at once. Consented session logs are written to the user
data folder and deleted after --retention-days (default 7) by a job that runs at start and
daily. The operator page (/operator) lists sessions with their health only.

Where things are: the page's handlers in `realtime.dashboard.page` (no Gradio), its
components in `realtime.dashboard.layout`, its controllers put together in
`realtime.dashboard.demo`, the command line, logins and server in
`realtime.dashboard.server`, and what relies on Gradio's internals in
`realtime.dashboard.gradio6_internals`.
"""

from __future__ import annotations

import sys
from typing import Any

# this module's public names, imported on first use (`__getattr__`): importing app changes
# nothing process-wide and imports no Gradio; `main` applies the process settings first
_EXPORTS = {
    "DEMO_RECORDING": "realtime.dashboard.demo",
    "Demo": "realtime.dashboard.demo",
    "PeopleOptions": "realtime.dashboard.demo",
    "build_demo": "realtime.dashboard.demo",
    "close_demo": "realtime.dashboard.demo",
    "parse_args": "realtime.dashboard.server",
}
__all__ = ["main", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)


def main(argv: list[str] | None = None) -> int:
    """``python app.py [ARGS]``: applies the process settings
    (`realtime.runtime.apply_process_settings`: the offline and analytics variables, threads,
    malloc) before Gradio, transformers or huggingface_hub is imported (they read the
    variables at import), then runs `realtime.dashboard.server.main`."""
    from realtime.runtime import apply_process_settings

    apply_process_settings()
    from realtime.dashboard import server

    return server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
