"""The Ray Serve path (realtime.serving.ray_serve, realtime.serving.backend, --serve ray) on a
local Ray instance started once for this module and shut down at its end (Serve, then Ray): answers
equal the in-process engine's, concurrent callers share batches, a `Pipeline` and the
command line work through it unchanged. The option checks at the end need no Ray."""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest

from realtime.serving.backend import ServingError, open_models
from realtime.serving.executor import BatchConfig
from realtime.types import Word
from tests.helpers.required import require


@pytest.fixture(scope="module")
def ray_serve():
    require("ray.serve", "ray[serve] serves the batched models (--serve ray); make setup")
    import ray
    from ray import serve

    from realtime.serving.ray_serve import RayServe, RayServeConfig

    connection = RayServe.connect(RayServeConfig(num_gpus=0.0))
    yield connection
    connection.close()
    assert not ray.is_initialized()  # the local instance is gone
    assert serve.context._global_client is None


@pytest.fixture(scope="module")
def engine():
    from realtime.engine import Engine

    return Engine.load(stages=False, device="cpu")


def windows(engine, lengths=(1, 5, 12, 20)):
    rng = np.random.default_rng(7)
    lay = engine.layout
    return [tuple(rng.standard_normal((n, d)).astype(np.float32)
                  for d in (lay.text_dim, lay.audio_dim, lay.video_dim)) for n in lengths]


def test_the_deployment_answers_as_the_engine_does(ray_serve, engine):
    assert ray_serve.models.describe() == (engine.model_name, "cpu")
    for w in windows(engine):
        served, local = ray_serve.models.predict(*w), engine.predict(*w)
        assert abs(served.sentiment - local.sentiment) <= 1e-5
        assert served.model_name == local.model_name
        assert served.masks.keys() == local.masks.keys()
        for m in local.masks:
            assert served.masks[m].shape == (w[0].shape[0], local.masks[m].shape[1])
            np.testing.assert_allclose(served.masks[m], local.masks[m], atol=1e-5)
    words = [Word(0.0, 0.3, "what", True), Word(0.3, 0.6, "a", True),
             Word(0.6, 1.0, "lovely", True), Word(1.0, 1.4, "day", True)]
    vectors = ray_serve.models.encode_words(words)
    assert vectors.shape == (4, engine.layout.text_dim)
    np.testing.assert_allclose(vectors, engine.encode_words(words), atol=1e-4)


def test_concurrent_callers_are_batched(ray_serve, engine):
    before = ray_serve.models.stats()
    batch = windows(engine, lengths=tuple(range(1, 25)))
    answers: dict[int, float] = {}
    start = threading.Barrier(len(batch))

    def caller(i):
        start.wait()
        answers[i] = ray_serve.models.predict(*batch[i]).sentiment

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(batch))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = ray_serve.models.stats()
    assert after.windows - before.windows == len(batch)
    assert after.batches - before.batches < len(batch)  # some answers shared a forward
    assert after.max_batch > 1 and after.drops == 0
    for i, w in enumerate(batch):  # each caller got its own window's answer
        assert abs(answers[i] - engine.predict(*w).sentiment) <= 1e-5


def test_submit_gives_futures_like_the_local_executor(ray_serve, engine):
    futures = [ray_serve.models.submit(w) for w in windows(engine)]
    got = [f.result(timeout=60).sentiment for f in futures]
    want = [engine.predict(*w).sentiment for w in windows(engine)]
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_cli_serve_ray_gives_the_local_predictions(ray_serve, tmp_path):
    """--serve ray (here joining the module's Ray, which it leaves running) writes the same
    lines as the in-process run."""
    from realtime.__main__ import main
    from tests.helpers import media

    wav = media.speech_wav(tmp_path, "what a lovely day, I am so happy to see you")
    rows = {}
    for serve in ("local", "ray"):
        out = tmp_path / f"{serve}.jsonl"
        code = main(["--source", str(wav), "--fast", "--quiet", "--device", "cpu",
                     "--jsonl", str(out), "--serve", serve], out=sys.stdout, err=sys.stderr)
        assert code == 0
        rows[serve] = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows["ray"]) == len(rows["local"]) >= 5
    for r, loc in zip(rows["ray"], rows["local"], strict=True):
        assert (r["t"], r["words"], r["model"]) == (loc["t"], loc["words"], loc["model"])
        assert abs(r["sentiment"] - loc["sentiment"]) <= 2e-4  # JSON keeps 4 decimals
    assert ray_serve.models.describe()[1] == "cpu"  # the module's connection still answers


def test_ray_address_needs_serve_ray():
    from app import parse_args as app_args
    from realtime.__main__ import parse_args

    for parse in (parse_args, app_args):
        with pytest.raises(SystemExit) as exit_info:
            parse(["--source", "x.mp4", "--ray-address", "head:6379"])
        assert exit_info.value.code == 2
        args = parse(["--source", "x.mp4", "--serve", "ray", "--ray-address", "head:6379"])
        assert (args.serve, args.ray_address) == ("ray", "head:6379")
        assert parse(["--source", "x.mp4"]).serve == "local"
    with pytest.raises(ServingError, match="--ray-address only applies"):
        open_models("local", "head:6379")
    with pytest.raises(ServingError, match="--serve must be one of local, ray"):
        open_models("triton")
    assert open_models("local", batch=BatchConfig()) is None


def test_the_wait_for_a_batch_is_split_between_client_and_replica():
    require("ray.serve", "ray[serve] serves the batched models (--serve ray); make setup")
    from realtime.serving.ray_serve import RayServeConfig, split_wait

    config = BatchConfig(max_batch=32, max_wait_ms=10.0, max_queue=100)
    client, replica = split_wait(config, 0.0)  # the default: the client waits it all
    assert (client.max_wait_ms, replica.max_wait_ms) == (10.0, 0.0)
    client, replica = split_wait(config, 0.25)
    assert (client.max_wait_ms, replica.max_wait_ms) == (7.5, 2.5)
    assert client.max_batch == replica.max_batch == 32 and client.max_queue == 100
    assert RayServeConfig().replica_wait_share == 0.0
    with pytest.raises(ValueError, match="replica_wait_share in"):
        RayServeConfig(replica_wait_share=1.5)


def test_serve_ray_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "realtime.serving.ray_serve", None)  # import fails
    with pytest.raises(ServingError, match=r"needs ray\[serve\].*make setup"):
        open_models("ray")
