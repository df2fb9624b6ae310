"""Many streams on one engine: batching across sessions, the sessions themselves, and
where the per-tick models run (this process or a Ray Serve deployment)."""
