"""Microphone chunks streamed by the page, read once and never left on disk.

Gradio's streaming microphone uploads every chunk (0.5 s in app.py) as a file ``audio.wav`` in
its own folder under Gradio's upload folder, then hands the newest one to the stream handler. A
chunk that arrives while the previous one is still being handled replaces it, so under load
some chunks are never handed over: their audio is lost (counted as dropped) and their files
would stay behind. `ChunkStore.take` reads a handed-over chunk and deletes its file at once;
`ChunkStore.sweep` deletes chunk files that were already there at the previous sweep (none
is handled that late) and counts them; ``sweep(final=True)`` deletes them all (at exit; with
several pages streaming at once, a page whose recording stops sweeps twice a second apart
instead, so it never deletes another page's chunk in flight). A chunk swept before it was
handled is counted as dropped, never an error. Only files inside the upload folder are ever
read or deleted.

A chunk is decoded under the sources' bounds (`realtime.sources.audio.decode_chunk_file`:
its rate and channels checked from the header before decoding, decoding stopped past 10 s),
so a chunk that claims 4 Hz or decodes to hours costs nothing; such a chunk, or one that
cannot be decoded, is refused: deleted, counted in ``refused`` and in ``dropped`` (its audio
is lost), the reason logged and kept in ``last_refusal``, never raised.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from realtime.sources.audio import decode_chunk_file

CHUNK_NAME = "audio.wav"
log = logging.getLogger(__name__)


class ChunkStore:
    def __init__(self, root: str | Path, sweep_every: int = 25) -> None:
        self.root = Path(root).resolve()
        self.sweep_every = sweep_every
        self.dropped = 0
        self.refused = 0
        self.last_refusal: str | None = None
        self.taken = 0
        self._seen: set[Path] = set()
        self._lock = threading.Lock()

    def _inside(self, path: Path) -> bool:
        return path.is_relative_to(self.root) and path != self.root

    def take(self, path: str | Path, keep: Path | None = None):
        """``(rate_hz, samples)`` of the chunk at ``path`` ((n,) or (n, channels), in the
        file's sample type: int16 for the page's WAV), whose file (and folder, when empty)
        is then deleted; None for a path outside the upload folder, a chunk swept meanwhile
        (dropped) or a refused one (see the module doc). Every ``sweep_every`` chunks, a
        sweep (sparing ``keep``)."""
        path = Path(path).resolve()
        if not self._inside(path):
            return None
        try:
            return decode_chunk_file(path)
        except Exception as exc:  # noqa: BLE001 - hostile input: a decoder raises any type
            swept = not path.exists()  # swept meanwhile (handled too late): lost, and counted
            with self._lock:
                self.dropped += 1
                if not swept:
                    self.refused += 1
                    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
                    self.last_refusal = f"{type(exc).__name__}: {first}".rstrip(": ")
            if not swept:
                log.warning("microphone chunk refused: %s", self.last_refusal)
            return None
        finally:
            _delete(path, self.root)
            with self._lock:
                self.taken += 1
                due = self.taken % self.sweep_every == 0
            if due:
                self.sweep(keep=keep)

    def sweep(self, final: bool = False, keep: Path | None = None) -> int:
        """Deletes chunk files left unhandled (all of them when ``final``); returns how
        many. ``keep``: a file to spare (an uploaded recording that is being replayed)."""
        spare = keep.resolve() if keep is not None else None
        with self._lock:
            now = {p.resolve() for p in self.root.glob(f"*/{CHUNK_NAME}")} - {spare}
            stale = now if final else now & self._seen
            for path in stale:
                _delete(path, self.root)
            self._seen = now - stale
            self.dropped += len(stale)
            if stale:
                log.debug("swept %d unhandled microphone chunk(s)", len(stale))
            return len(stale)


def _delete(path: Path, root: Path) -> None:
    path.unlink(missing_ok=True)
    folder = path.parent
    try:
        if folder != root and not any(folder.iterdir()):
            folder.rmdir()
    except OSError as err:  # gone already, or refilled meanwhile: nothing of ours is left
        log.debug("chunk folder %s not removed: %s", folder, err)
