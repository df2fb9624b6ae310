"""SharedPanels: pages showing the same dashboard with the same settings share its panels
(computed once per moment), while each page keeps its own refresh figures."""

from __future__ import annotations

import pytest

from realtime.dashboard.controller import Dashboard, SourceChoice
from realtime.dashboard.panels import (
    FAST_PANELS,
    RefreshMeter,
    SharedPanels,
    ViewSettings,
    fast_panels,
    slow_panels,
)
from tests.helpers import REPO
from tests.helpers.fakes import FakePipeline, make_prediction


@pytest.fixture
def dash():
    d = Dashboard(FakePipeline(), SourceChoice("recording", path=REPO / "assets/demo.mp4"))
    d.start_session()
    yield d
    d.close()


def _publish(dash: Dashboard, t_s: float, value: float) -> None:
    dash.pipeline.store.publish(make_prediction(t_s, value, latency_total_ms=100.0 + t_s))
    dash.sync()


def _meter(ticks: int) -> RefreshMeter:
    meter = RefreshMeter()
    for i in range(ticks):
        meter.tick(0.2 * i)
    return meter


def test_pages_of_one_dashboard_share_its_panels_but_not_their_refresh(dash):
    _publish(dash, 0.2, 1.5)
    shared = SharedPanels()
    a, b = _meter(3), _meter(6)
    page_a = fast_panels(dash, ViewSettings(), a, shared)
    page_b = fast_panels(dash, ViewSettings(), b, shared)
    assert (shared.computed, shared.reused) == (1, 1)
    assert page_a == fast_panels(dash, ViewSettings(), a)  # the same as computed alone
    for name in set(FAST_PANELS) - {"status", "latency"}:
        assert page_a[name] == page_b[name], name
    assert 'data-tick="3"' in page_a["status"] and 'data-tick="6"' in page_b["status"]
    slow_a = slow_panels(dash, ViewSettings(), shared)
    assert slow_panels(dash, ViewSettings(), shared) is slow_a
    assert slow_a == slow_panels(dash, ViewSettings())
    assert (shared.computed, shared.reused) == (2, 2)


def test_a_new_prediction_or_other_settings_are_computed_afresh(dash):
    shared = SharedPanels()
    _publish(dash, 0.2, 1.5)
    first = fast_panels(dash, ViewSettings(), _meter(2), shared)
    _publish(dash, 0.4, -2.25)
    second = fast_panels(dash, ViewSettings(), _meter(2), shared)
    assert 'data-value="+1.50"' in first["sentiment"]
    assert 'data-value="-2.25"' in second["sentiment"]
    strict = ViewSettings(threshold=-0.5)
    fast_panels(dash, strict, _meter(2), shared)
    assert (shared.computed, shared.reused) == (3, 0) and len(shared) == 2
    dash.delete_data()  # an emptied log is a new moment too
    after = fast_panels(dash, ViewSettings(), _meter(2), shared)
    assert shared.computed == 4 and after["aggregates"] != second["aggregates"]


def test_entries_are_bounded_and_hold_no_dashboard():
    import gc
    import weakref

    shared = SharedPanels(max_entries=2)
    boards = [Dashboard(FakePipeline()) for _ in range(3)]
    for d in boards:
        fast_panels(d, ViewSettings(), RefreshMeter(), shared)
    assert len(shared) == 2
    gone = weakref.ref(boards[2])
    del boards[:], d
    gc.collect()
    assert gone() is None
