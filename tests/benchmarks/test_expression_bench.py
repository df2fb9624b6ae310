"""benchmarks.expression on a few frames: it writes its JSON with the figures it prints."""

from __future__ import annotations

import json
import math

from benchmarks import expression


def test_a_short_run_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "expression.json"
    assert expression.main(["--frames", "3", "--repeats", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 3 and result["faces"] == 3  # the astronaut is in every frame
    assert result["recording_happy_share"] == 1.0
    assert result["fused_vs_unfused_max_abs_diff"] < 1e-4
    figures = [result["crop_ms"], *result["network_ms"].values(),
               *(v for v in result["frame_ms"].values() if isinstance(v, dict))]
    for f in figures:
        assert 0 < f["min"] <= f["median"] <= f["p90"] < 5000 and math.isfinite(f["median"])
    assert result["machine"]["torch_threads"] == 1 and len(result["machine"]
                                                           ["load_avg_1_5_15"]) == 3
    assert f"{result['network_ms']['fused']['median']:.2f} ms" in capsys.readouterr().out
