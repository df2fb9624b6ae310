"""What each viewer of the dashboard costs the server (issue 16, defect 6): the refresh tick
skips Gradio's queue, the queue never summarises its event records, and pages showing the
same session share its panels. Latency under viewers is measured by benchmarks.viewers."""

from __future__ import annotations

import os

import gradio as gr
import gradio.queueing

import app
from realtime.dashboard import gradio6_internals as internals
from realtime.dashboard import page
from realtime.dashboard.controller import SourceChoice
from tests.helpers.fakes import FakePipeline
from tests.test_app_security import served  # noqa: F401  (the fixture: a real server)


def _tick_fn(blocks: gr.Blocks):
    timer = next(b for b in blocks.blocks.values()
                 if isinstance(b, gr.Timer) and b.value == page.FAST_TICK_S)
    return next(fn for fn in blocks.fns.values()
                if any(t[0] == timer._id for t in fn.targets))


def test_the_refresh_tick_skips_the_queue_and_postprocessing():
    demo = app.build_demo(FakePipeline(), SourceChoice("recording", path=app.DEMO_RECORDING))
    try:
        fn = _tick_fn(demo.page)
        assert fn.name == "on_tick" and fn.queue is False
        assert fn.trigger_mode == "multiple"
        assert fn.postprocess is False  # HTML strings sent as they are
    finally:
        app.close_demo(demo)


def test_the_queue_keeps_few_event_records_and_never_summarises_them(served,  # noqa: F811
                                                                      monkeypatch):
    # defect: after every event Gradio built a pandas DataFrame of up to 10,000 records
    from gradio_client import Client

    port, demo = served
    frames = []
    real = gradio.queueing.Queue._get_df
    monkeypatch.setattr(gradio.queueing.Queue, "_get_df",
                        staticmethod(lambda records: frames.append(len(records))
                                     or real(records)))
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    try:
        for _ in range(3):
            client.predict(api_name="/export_jsonl")  # a queued event
    finally:
        client.close()
    assert frames == []
    queue = demo.page._queue
    assert queue.ANALYTICS_MAX_EVENTS == int(internals.QUEUE_ENV["GRADIO_ANALYTICS_MAX_EVENTS"])
    for name in internals.QUEUE_ENV:  # set only while the queue was made
        assert name not in os.environ
