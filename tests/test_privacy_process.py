"""The privacy section's claims (docs/privacy.md) against a real ``python app.py --browser``
process, driven through the page's API with a raw HTTP client (about 40 s, most of it the
models loading; marked slow).

Every folder the product writes to (``$SENTIMENT_DATA_DIR``: session logs and calibration;
``$TMPDIR``: Gradio's private folder with its uploads, the microphone chunks and the
exports) is listed before a person starts and after they withdraw or close their tab:

1. Ann consents, streams (a microphone chunk uploaded but never handed over, as under
   load), exports; her export's link answers. She withdraws: nothing of hers is left
   anywhere and her export's link no longer answers.
2. Bob does the same; a page with no session of its own can neither delete his export
   nor stop the presenter's session. Bob closes his tab: his session is stopped, his log,
   export and chunk deleted (without a login the tab was his session's only credential).
3. Cat starts and sends nothing: the idle reaper stops her session.
4. Bob's personal model (planted in his calibration folder before the server starts): Eve, a
   script with a session of her own, can neither list it nor load it, by name or by path;
   her session and the presenter view keep the default model, and no page shows a path
   of the server's data folder.
5. SIGTERM: Gradio's private folder (uploads, exports) is gone.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ui_refresh import AppServer
from realtime.clock import perf_s

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

IDLE_TIMEOUT_S = 2.0


def _files(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*") if p.is_file()}


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.sin(np.arange(24000) / 9.0) * 8000).astype(np.int16).tobytes())
    return out.getvalue()


def _find(value, key: str):
    """The first ``key`` in a nested JSON value."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find(item, key)
            if found is not None:
                return found
    return None


class Tab:
    """One browser tab, as its requests: a session hash, the heartbeat Gradio watches to
    know the tab is open, and the page's events through the queue."""

    def __init__(self, server: AppServer, config: dict, name: str) -> None:
        import httpx

        self.server, self.config, self.session = server, config, f"{name}-tab"
        self.api = server.url + "gradio_api"
        self.http = httpx.Client(timeout=60.0)
        self.beat = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.beat.request("GET", f"/gradio_api/heartbeat/{self.session}")
        response = self.beat.getresponse()
        assert response.status == 200 and b"ALIVE" in response.readline()

    def close(self) -> None:
        """The tab closes: its heartbeat connection drops."""
        self.beat.sock.close()
        self.beat.close()
        self.http.close()

    def _fn(self, elem_id: str, event: str) -> tuple[int, int]:
        """The event ``event`` on #``elem_id`` (for a timer's tick: the one that fills
        #``elem_id``): its fn_index and trigger id."""
        comps = {c["id"]: c for c in self.config["components"]}
        ids = {i for i, c in comps.items() if c.get("props", {}).get("elem_id") == elem_id}
        for i, dep in enumerate(self.config["dependencies"]):
            for target, name in dep["targets"]:
                if name == event and (target in ids or event == "tick"
                                      and ids & set(dep["outputs"])):
                    return dep.get("id", i), target
        raise KeyError(f"no {event} event on #{elem_id}")

    def call(self, elem_id: str, data: list, event: str = "click", ok: bool = True):
        """The event's output data, as the page receives it; ``ok=False``: the whole
        completion message, whether the event succeeded or not."""
        fn_index, trigger = self._fn(elem_id, event)
        joined = self.http.post(f"{self.api}/queue/join", json={
            "data": data, "fn_index": fn_index, "trigger_id": trigger,
            "session_hash": self.session, "event_data": None})
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", f"{self.api}/queue/data",
                              params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                    if not ok:
                        return msg
                    assert msg.get("success"), msg
                    return msg["output"]["data"]
        raise AssertionError(f"#{elem_id}: no answer")

    def start(self) -> str:
        return self.call("start", ["browser", None, 0, "", False, True])[0]

    def upload_chunk(self) -> Path:
        """A microphone chunk uploaded as the page's recorder does, never handed over."""
        answer = self.http.post(f"{self.api}/upload",
                                files={"files": ("audio.wav", _wav(), "audio/wav")})
        answer.raise_for_status()
        return Path(answer.json()[0])

    def export(self) -> str:
        """The exported log's link."""
        url = _find(self.call("export-jsonl", []), "url")
        assert url, "the export gave no link"
        return url

    def get(self, url: str) -> tuple[int, str]:
        answer = self.http.get(url if url.startswith("http") else self.server.url + url)
        return answer.status_code, answer.text


def _wait(check, timeout_s: float = 20.0) -> bool:
    end_s = perf_s() + timeout_s
    while perf_s() < end_s:
        if check():
            return True
        threading.Event().wait(0.25)
    return check()


def _plant_personal_model(data: Path, owner: str) -> Path:
    """A personal model of ``owner`` (the bundled model, with calibration's meta and a face
    weight) where the calibration of that owner's page keeps them."""
    from models import checkpoint
    from models.env import DEFAULT_MODEL_DIR
    from realtime.calibration.controller import owner_folder
    from realtime.personal.storage import CALIBRATION_DIR, MODEL_PREFIX

    folder = owner_folder(data / CALIBRATION_DIR, owner) / f"{MODEL_PREFIX}bob-1"
    checkpoint.save(checkpoint.load(DEFAULT_MODEL_DIR), folder,
                    meta={"session_samples": 120, "face_weight": 0.15})
    return folder


def test_nothing_of_a_person_is_left_after_withdraw_tab_close_and_exit(tmp_path, monkeypatch):
    tmp, data = tmp_path / "tmp", tmp_path / "data"
    tmp.mkdir()
    bobs_model = _plant_personal_model(data, "tab:bob-tab")
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)  # the app makes its private one
    server = AppServer(args=("--browser", "--idle-timeout-s", str(IDLE_TIMEOUT_S)),
                       env={"TMPDIR": str(tmp), "SENTIMENT_DATA_DIR": str(data)},
                       log_path=tmp_path / "app.log")
    server.start()
    try:
        import httpx

        config = httpx.get(server.url + "config", timeout=30).json()
        private = [p for p in tmp.iterdir() if p.name.startswith("sentiment-gradio-")]
        assert len(private) == 1, list(tmp.iterdir())
        before = _files(tmp, data)

        # 1. withdraw
        ann = Tab(server, config, "ann")
        assert "only you see it" in ann.start(), server.log()
        chunk = ann.upload_chunk()
        assert chunk.is_relative_to(private[0]) and chunk.exists()
        link = ann.export()
        status, text = ann.get(link)
        assert status == 200 and '"consent"' in text, (status, text[:200])
        assert any("session-logs" in f for f in _files(data) - before)
        assert ann.call("withdraw", [])[0].startswith("Consent withdrawn")
        assert _files(tmp, data) == before, _files(tmp, data) - before
        assert ann.get(link)[0] != 200
        ann.close()

        # 2. a closed tab
        bob = Tab(server, config, "bob")
        assert "only you see it" in bob.start()
        bob_chunk, bob_link = bob.upload_chunk(), bob.export()
        # a page with no session of its own: Delete my data deletes nobody's (#25 item 5)
        watcher = Tab(server, config, "watcher")
        assert watcher.call("delete-data", [])[0].startswith("**Not your session:**")
        assert watcher.call("stop", [])[0].startswith("**Not your session:**")
        assert watcher.get(bob_link)[0] == 200
        bob.close()
        assert _wait(lambda: not bob_chunk.exists()
                     and _files(tmp, data) == before), _files(tmp, data) - before
        assert watcher.get(bob_link)[0] != 200

        # 3. the idle reaper
        cat = Tab(server, config, "cat")
        started = cat.start()
        cat_id = started.split("(session ", 1)[1].split(";", 1)[0]
        operator = lambda: watcher.call("operator", [], event="tick")[0]  # noqa: E731
        assert cat_id in operator()
        assert _wait(lambda: cat_id not in operator(), IDLE_TIMEOUT_S + 15), operator()
        cat.close()

        # 4. someone else's personal model (#25 item 3)
        eve = Tab(server, config, "eve")
        assert "only you see it" in eve.start()
        listed = json.dumps(eve.call("calib-refresh", []))
        assert bobs_model.name not in listed and str(data) not in listed, listed
        for choice in (bobs_model.name, str(bobs_model)):
            # refused (by Gradio's list of her choices, or by her calibrator); what comes
            # back, less her own input echoed, names nothing of the server's or of Bob's
            answer = json.dumps(eve.call("calib-load", [choice], ok=False))
            assert "Live model" not in answer and "+0.15" not in answer, answer
            rest = answer.replace(json.dumps(choice)[1:-1], "")
            assert str(data) not in rest and "personal-bob" not in rest, answer
        after = eve.call("calib-refresh", [])
        assert _find(after, "value") == "default", after  # her live model is unchanged
        bob = Tab(server, config, "bob")  # the model's owner, back: he lists and loads it
        assert "only you see it" in bob.start()
        assert bobs_model.name in json.dumps(bob.call("calib-refresh", []))
        loaded = json.dumps(bob.call("calib-load", [bobs_model.name]))
        assert "personal-bob-1" in loaded and "+0.15" in loaded, loaded
        assert _find(eve.call("calib-refresh", []), "value") == "default"  # Eve's: unchanged
        bob.close()
        eve.close()
        watcher.close()
    finally:
        server.stop()  # SIGTERM
    assert server.proc.returncode == 0, server.log()
    assert not private[0].exists(), server.log()
    assert not [p for p in tmp.rglob("*") if "sentiment" in p.name], list(tmp.rglob("*"))
