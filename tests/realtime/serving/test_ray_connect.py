"""Joining a Ray cluster that cannot be reached is bounded (issue #25, defect 6): `python -m
realtime --serve ray --ray-address ADDR` with nothing listening at ADDR fails with one line
and exit 2 within --ray-connect-timeout-s, instead of retrying "Failed to connect to GCS"
for minutes. No Ray instance is started here."""

from __future__ import annotations

import socket
import time

import pytest

import realtime.engine
from tests.helpers import media
from tests.realtime.test_cli import run_main
from tests.realtime.test_pipeline import fake_engine

pytest.importorskip("ray.serve", reason="ray[serve] is not installed (make setup)")

from realtime.serving.ray_serve import RayServeError, check_reachable  # noqa: E402

BOUND_S = 30.0  # the bound; the command lines below ask for far less


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("form", ["127.0.0.1:{}", "ray://127.0.0.1:{}"])
def test_an_unreachable_address_is_refused_at_once(form):
    address = form.format(closed_port())
    with pytest.raises(RayServeError, match=f"cannot reach the Ray cluster at {address} "
                                            "within 2 s"):
        check_reachable(address, 2.0)


def test_a_listening_address_and_one_ray_resolves_pass():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}", 2.0)
    check_reachable("auto", 2.0)  # no port: Ray finds the cluster itself


def test_the_command_line_fails_with_one_line_and_exit_2_within_the_bound(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(realtime.engine.Engine, "load",
                        classmethod(lambda cls, *a, **k: fake_engine()))
    wav = media.speech_wav(tmp_path, "hello")
    address = f"127.0.0.1:{closed_port()}"
    start = time.monotonic()
    code, _, err = run_main("--source", str(wav), "--fast", "--quiet", "--serve", "ray",
                            "--ray-address", address, "--ray-connect-timeout-s", "5")
    elapsed_s = time.monotonic() - start
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and f"cannot reach the Ray cluster at {address}" \
        in lines[0]
    assert elapsed_s < BOUND_S


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(value, capsys):
    with pytest.raises(SystemExit) as done:
        run_main("--source", "x.wav", "--serve", "ray", "--ray-connect-timeout-s", value)
    assert done.value.code == 2
    assert "--ray-connect-timeout-s must be a positive number" in capsys.readouterr().err
