"""The microphone path without a sound card: an ALSA `type file` capture device in a test
.asoundrc (subprocess, so PortAudio reads the new HOME), and a patched sounddevice stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from realtime.sources import MicrophoneSource, SourceError
from tests.helpers import REPO  # noqa: E402

ASOUNDRC = """
pcm.!default {{
  type plug
  slave {{ pcm "filemic" format S16_LE rate 16000 channels 1 }}
}}
pcm.filemic {{
  type file
  slave.pcm "null"
  file "/dev/null"
  infile "{infile}"
  format "raw"
}}
"""

CHILD = r"""
import json, sys, threading
import numpy as np
from realtime.sources import MicrophoneSource
out = {}
mic = MicrophoneSource("default", audio_queue_len=100000)
mic.start()
chunks = []
while sum(len(c.samples) for c in chunks) < 16000:
    chunks += mic.read_audio(timeout_s=0.5)
    if mic.ended:
        break
out["joined"] = mic.stop(2.0)
out["alive"] = [t.name for t in mic.threads if t.is_alive()]
x = np.concatenate([c.samples for c in chunks])[:16000]
out["first"] = x.tolist()
out["rate"] = chunks[0].rate_hz
out["contiguous"] = all(abs(b.t0_s - a.t1_s) < 1e-6 for a, b in zip(chunks, chunks[1:]))
small = MicrophoneSource("default", audio_queue_len=5)
small.start()
threading.Event().wait(0.5)
out["small_len"] = len(small.read_audio())
out["small_drops"] = small.drops["audio_queue"]
out["small_joined"] = small.stop(2.0)
out["error"] = small.error
print(json.dumps(out))
"""


def test_microphone_through_an_alsa_file_device(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)
    infile = tmp_path / "mic.raw"
    (tone * 32767).astype("<i2").tofile(infile)
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(infile=infile))
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["joined"] and out["alive"] == [] and out["rate"] == 16000 and out["contiguous"]
    np.testing.assert_allclose(out["first"], tone[:16000], atol=2e-4)
    # the virtual device is not paced, so it floods: the queue stays bounded, drops counted
    assert out["small_len"] <= 5 and out["small_drops"] > 0 and out["small_joined"]


def test_unknown_microphone_is_a_clear_error():
    with pytest.raises(SourceError, match="could not be opened.*python -m sounddevice"):
        MicrophoneSource("no such microphone 1234").start()


class FakeFlags:
    input_overflow = False


class DyingStream:
    """Calls back 5 times with a ramp, then goes silent like an unplugged device."""

    def __init__(self, callback, samplerate, **kwargs):
        self.callback, self.samplerate, self.active = callback, samplerate, False
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        for i in range(5):
            self.callback(np.full((800, 1), i / 10, np.float32), 800, None, FakeFlags())

    def start(self):
        self.active = True
        self._thread.start()

    def abort(self):
        self.active = False

    def close(self):
        self._thread.join()


def test_microphone_that_disappears_ends_with_an_error(monkeypatch):
    import sounddevice as sd

    monkeypatch.setattr(sd, "InputStream", DyingStream)
    mic = MicrophoneSource("default", lost_after_s=0.2)
    mic.start()
    while not mic.ended:
        threading.Event().wait(0.02)
    chunks = mic.read_audio()
    assert [round(float(c.samples[0]), 2) for c in chunks] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert chunks[1].t0_s == pytest.approx(chunks[0].t1_s)
    assert "delivered no audio" in mic.error
    assert mic.stop(2.0) and not any(t.is_alive() for t in mic.threads)
