"""Everything the dashboard does with Gradio 6's internals (pinned: gradio==6.31.0 in
requirements.txt), in one place to check when Gradio is upgraded: private attributes of a
`gr.Blocks`, Gradio's upload folder, and environment variables Gradio reads but does not
document.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

log = logging.getLogger(__name__)

# Gradio's queue keeps a record of each event (up to 10,000) for its monitoring page (off
# here) and, after every event, summarises all of them in a pandas DataFrame (6.7 ms of CPU
# per event at 10,000 records, holding the GIL the pipeline needs). Few records, and the
# summary never recomputed: read by Gradio when its queue is made (`queue_settings`).
QUEUE_ENV = {"GRADIO_ANALYTICS_MAX_EVENTS": "64",
             "GRADIO_ANALYTICS_CACHE_FREQUENCY": str(2**62)}


def prune_closed_pages(blocks: gr.Blocks) -> int:
    """Frees at once what the server keeps for pages that were closed; returns how many.

    Gradio keeps each browser session (a copy of the page's whole config, about 200 KiB,
    plus its page state) after its page has closed, until ``state_session_capacity``
    sessions have piled up; it only marks a closed one (``is_closed``). Reads
    ``blocks.state_holder.session_data`` and ``time_last_used`` (private)."""
    holder = getattr(blocks, "state_holder", None)
    data = getattr(holder, "session_data", None)
    if data is None:
        return 0
    closed = [sid for sid, session in list(data.items()) if getattr(session, "is_closed", False)]
    for sid in closed:
        data.pop(sid, None)
        holder.time_last_used.pop(sid, None)
    if closed:
        log.debug("freed the sessions of %d closed pages", len(closed))
    return len(closed)


def cache_folder() -> Path:
    """Gradio's cache folder (`upload_folder`, created if missing). A file a handler returns
    from inside it is served where it is (``Block.move_resource_to_block_cache`` copies
    only files from elsewhere, to ``<cache>/<sha256 of the content>/<name>``, a copy that
    outlives the original until Gradio's cache expiry), so a file written here and deleted
    here leaves no copy that ``/gradio_api/file=`` still serves."""
    folder = upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def upload_folder() -> Path:
    """The folder Gradio writes uploads to (its microphone chunks among them): Gradio's
    temporary folder (``GRADIO_TEMP_DIR``, read when this is called)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


@contextlib.contextmanager
def queue_settings() -> Iterator[None]:
    """`QUEUE_ENV` in the environment while Gradio's queue is made (unless the user set
    them), then the environment as it was: nothing else in the process sees them."""
    added = {k: v for k, v in QUEUE_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)
