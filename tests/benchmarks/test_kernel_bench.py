"""benchmarks.kernel: every shape and grad mode the benchmark times is compiled (none falls
back to eager code past Dynamo's recompile limit) and called before it is timed. On the CPU,
with a counting torch.compile backend that runs the graph it is given."""

from __future__ import annotations

import torch

from benchmarks.kernel import bench_size, compile_every_shape

SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)  # 10 shapes x 2 grad modes: past the limit of 8


def test_every_shape_is_compiled_and_warmed_before_timing():
    graphs, timed = [], []

    def counting(gm, _example_inputs):
        graphs.append(gm)
        return gm.forward

    def do_bench(fn, **_kwargs):
        timed.append(len(graphs))
        fn()
        return 1.0

    rows = []
    with compile_every_shape():
        for b in SIZES:
            before = len(graphs)
            rows += bench_size(b, 4, 3, torch.float32, 0.0, ("eager", "compile"), do_bench,
                               copy_gbps=1.0, device="cpu", compile_backend=counting)
            assert len(graphs) - before >= 2  # this shape's forward, and forward+backward
    compiled = [r for r in rows if r.impl == "compile"]
    assert len(compiled) == 2 * len(SIZES) and {r.batch for r in compiled} == set(SIZES)
    # nothing was compiled while being timed: the graph count at each timing is the count
    # reached by the warm-up calls just before it
    assert len(timed) == 4 * len(SIZES) and timed[-1] == len(graphs)


def test_the_limits_are_raised_only_inside():
    config = torch._dynamo.config
    before = config.recompile_limit
    with compile_every_shape():
        assert config.recompile_limit == 64 and config.fail_on_recompile_limit_hit
    assert config.recompile_limit == before
