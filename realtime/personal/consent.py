"""The consent gate: what the page tells a person before any capture of them, and the record
of their agreement that goes in their session log.

Capture of a person (this machine's camera or microphone, or the browser's) starts only
after the person has read `consent_text` and agreed; the agreement is kept as a
`ConsentRecord` (when, which version of the text, and the text's SHA-256, so the exact words
agreed to can be shown later) in the first line of the session log. Withdrawing stops the
capture and deletes what the session kept.

``CONSENT_VERSION`` changes whenever the text changes in substance.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

CONSENT_VERSION = "2026-12-08.1"
PERSON_KINDS = ("devices", "browser")  # source kinds that capture a person


@dataclass(frozen=True)
class ConsentRecord:
    """One person's agreement: ``given_at`` (ISO wall time), the text's ``version`` and
    ``text_sha256`` (hex digest of the exact text shown)."""

    given_at: str
    version: str
    text_sha256: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ConsentTerms:
    """What the consent text states: how long logs are kept (days; 0 = not kept after the
    session, while saved calibration recordings stay until deleted by hand: see
    `realtime.personal.retention`), where (a folder on this server, or None when nothing is
    written), and whether a login separates people (``per_user``)."""

    retention_days: int
    log_dir: Path | None
    per_user: bool = False


def consent_text(terms: ConsentTerms) -> str:
    """The notice shown before capture (Markdown)."""
    if terms.log_dir is not None and terms.retention_days > 0:
        kept = (f"Your session log is written on this server, in `{terms.log_dir}`, and "
                f"deleted automatically after **{terms.retention_days} days**. Labelled "
                "calibration recordings you choose to save (features only) follow the same "
                "rule.")
        if not terms.per_user:
            kept += (" Without a login this browser tab is your session's only key, so "
                     "**closing the tab deletes your session log** at once.")
    else:
        kept = ("Your session log is kept in this server's memory only while the server runs; "
                "nothing of it is written to disk unless you export it.")
    if terms.retention_days == 0:
        kept += (" Labelled calibration recordings you choose to save (features only) stay "
                 "on this server until they are deleted by hand.")
    who = ("Only you, logged in as yourself, see your session and can export it, with your "
           "browser's camera or this machine's."
           if terms.per_user else
           "With your browser's camera, only this browser tab sees your session and can "
           "export it. With *this machine's camera + microphone*, everyone who opens this "
           "page sees the session (the presenter view).")
    return "\n".join([
        f"**Before we start (consent, version {CONSENT_VERSION})**",
        "",
        "- **What is processed:** your camera image (face landmarks, facial expression), your "
        "voice (pitch, loudness, a speech-arousal heuristic) and your words (speech "
        "recognition), to estimate sentiment in [-3, +3] a few times a second.",
        "- **What is kept:** a log of times, sentiment, recognised words and those signals. "
        "No video and no audio are ever stored.",
        f"- **Where and how long:** {kept}",
        f"- **Who sees it:** {who} The operator page shows only the health of sessions "
        "(running time, updates/s, latency, drops), never your sentiment, words or signals.",
        "- **Your choice:** nothing is captured until you agree. *Withdraw consent* stops the "
        "capture and deletes what this session kept; *Delete my data* deletes it at once.",
        "- **Not for:** decisions about employees or students, or inferring the emotions of "
        "workers in the EU outside medical or safety use (AI Act, Art. 5(1)(f)). This is not "
        "a medical device.",
    ])


def consent_record(text: str, given_at: str) -> ConsentRecord:
    """The record of agreeing to ``text`` at ``given_at`` (ISO wall time)."""
    return ConsentRecord(given_at=given_at, version=CONSENT_VERSION,
                         text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def needs_consent(kind: str) -> bool:
    """Whether a source of ``kind`` captures a person."""
    return kind in PERSON_KINDS
