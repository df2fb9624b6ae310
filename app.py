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

from models.env import apply_offline_env

apply_offline_env()  # the process's settings, before gradio or transformers is imported

from realtime.dashboard import server  # noqa: E402
from realtime.dashboard.demo import (  # noqa: E402,F401  (this module's public names)
    DEMO_RECORDING,
    Demo,
    PeopleOptions,
    build_demo,
    close_demo,
)
from realtime.dashboard.server import parse_args  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """``python app.py [ARGS]``: see `realtime.dashboard.server.main`."""
    return server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
