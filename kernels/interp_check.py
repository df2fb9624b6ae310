"""Checks of the Triton gate-and-mask kernels against the float64 reference, as JSON.

    TRITON_INTERPRET=1 python -m kernels.interp_check      # CPU, Triton's interpreter
    python -m kernels.interp_check --device cuda           # a GPU

TRITON_INTERPRET must be in the environment before triton is imported, so the tests run this
in a subprocess. It forces backend="triton" and reports relative errors (max |got - ref| /
max |ref| per tensor), padding checks, dropout reproducibility and keep rate, the grouped
launch, and the launch counters proving the kernels ran.

Documented tolerances (TOLERANCES, relative to max |ref|; inputs rounded to the dtype first and
the reference run in float64 on those rounded values; the kernels compute in float32 and round
once on store): float32 1e-6 (measured ~2e-7), float16 2e-3 (~4 ulp at 2**-11; measured
~4e-4), bfloat16 1.6e-2 (~2 ulp at 2**-8; measured ~6e-3).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from kernels import gate_mask, gate_mask_grouped, launch
from kernels.reference import gate_mask_reference, length_mask, philox_keep, rng_offsets

# (shape, lengths): odd shapes; padding in each where T > 1, a fully padded row in some.
CASES = [((3, 7, 35), [7, 4, 0]), ((2, 13, 74), [13, 5]), ((1, 1, 300), [1]),
         ((4, 50, 33), [50, 7, 0, 33]), ((2, 3, 5), None)]
HALF_DTYPES = (torch.float16, torch.bfloat16)
TOLERANCES = {"float32": 1e-6, "float16": 2e-3, "bfloat16": 1.6e-2}


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.detach().double().cpu()
    diff = (got.detach().double().cpu() - ref).abs().max().item()
    return diff / max(ref.abs().max().item(), 1e-30)


def _inputs(shape, dtype, device, gen):
    return [(torch.randn(shape, generator=gen) * s).to(device=device, dtype=dtype)
            for s in (1.0, 2.0, 2.0, 1.0)]  # x, a, b, upstream gradient


def _compare(shape, lengths, dtype, device, gen, p=0.0, seed=None) -> dict:
    """Triton forward + backward vs the float64 reference on the same (rounded) inputs."""
    x, a, b, g = _inputs(shape, dtype, device, gen)
    lens = None if lengths is None else torch.tensor(lengths, device=device)
    xt, at, bt = (t.clone().requires_grad_() for t in (x, a, b))
    y = gate_mask(xt, at, bt, lens, p=p, seed=seed, training=p > 0, backend="triton")
    y.backward(g)
    xr, ar, br = (t.detach().cpu().double().requires_grad_() for t in (x, a, b))
    keep = philox_keep(shape, p, seed) if p > 0 else None
    ref = gate_mask_reference(xr, ar, br, None if lens is None else lens.cpu(), keep, p)
    ref.backward(g.cpu().double())
    out = {"shape": list(shape), "dtype": str(dtype).replace("torch.", ""),
           "rel_err": {"y": rel_err(y, ref), "dx": rel_err(xt.grad, xr.grad),
                       "da": rel_err(at.grad, ar.grad), "db": rel_err(bt.grad, br.grad)},
           "dtypes_kept": y.dtype == dtype and xt.grad.dtype == dtype}
    if lens is not None:
        pad = ~length_mask(lens, shape[0], shape[1], device).expand(shape)
        out["padded_elements"] = int(pad.sum())
        out["pad_zero"] = all(bool((t[pad] == 0).all()) for t in (y, xt.grad, at.grad, bt.grad))
    return out


def check_shapes(device, gen) -> list[dict]:
    return [_compare(shape, lens, torch.float32, device, gen) for shape, lens in CASES]


def check_half(device, gen) -> dict:
    res = {}
    for dtype in HALF_DTYPES:
        name = str(dtype).replace("torch.", "")
        try:
            res[name] = {"ok": True, **_compare((3, 7, 35), [7, 4, 0], dtype, device, gen)}
        except Exception as exc:  # the interpreter may not support a dtype; report it
            res[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return res


def check_mixed(device, gen) -> dict:
    """x float32 with bfloat16 a, b (e.g. feedback projections under autocast)."""
    x, a, b, g = _inputs((2, 13, 74), torch.float32, device, gen)
    a, b = a.bfloat16(), b.bfloat16()
    lens = torch.tensor([13, 5], device=device)
    xt, at, bt = (t.clone().requires_grad_() for t in (x, a, b))
    y = gate_mask(xt, at, bt, lens, backend="triton")
    y.backward(g)
    xr, ar, br = (t.detach().cpu().double().requires_grad_() for t in (x, a, b))
    ref = gate_mask_reference(xr, ar, br, lens.cpu())
    ref.backward(g.cpu().double())
    return {"dtypes": [str(t.dtype) for t in (y, xt.grad, at.grad, bt.grad)],
            "rel_err": {"y": rel_err(y, ref), "dx": rel_err(xt.grad, xr.grad),
                        "da": rel_err(at.grad, ar.grad), "db": rel_err(bt.grad, br.grad)}}


def check_dropout(device, gen, p: float = 0.3) -> dict:
    shape, lens = (3, 7, 35), [7, 4, 0]
    exact = _compare(shape, lens, torch.float32, device, gen, p=p, seed=1234)
    x, a, b, _ = _inputs((4, 50, 300), torch.float32, device, gen)
    x = x.abs() + 0.1  # nonzero everywhere, so y == 0 exactly where dropped

    def run(seed, training=True):
        return gate_mask(x, a, b, p=p, seed=seed, training=training, backend="triton")

    y1, y2, y3 = run(7), run(7), run(8)
    no_drop = gate_mask(x, a, b, backend="triton")
    torch.manual_seed(99)
    s1 = run(None)
    torch.manual_seed(99)
    s2 = run(None)
    kept = y1 != 0
    scaled_ok = torch.allclose(y1[kept], no_drop[kept] / (1 - p), rtol=1e-6, atol=0)
    return {"p": p, "rel_err_vs_philox_reference": exact["rel_err"],
            "pad_zero": exact["pad_zero"],
            "same_seed_identical": bool(torch.equal(y1, y2)),
            "other_seed_differs": not torch.equal(y1, y3),
            "manual_seed_controls_seed_none": bool(torch.equal(s1, s2)),
            "keep_rate": kept.double().mean().item(), "n": kept.numel(),
            "kept_scaled_by_inverse_keep_prob": bool(scaled_ok),
            "eval_deterministic": bool(torch.equal(run(7, training=False), no_drop)),
            "p1_all_zero": bool((gate_mask(x, a, b, p=1.0, seed=3, training=True,
                                           backend="triton") == 0).all())}


def check_partial_grads(device, gen) -> dict:
    """Only x requires grad: the backward skips da/db and dx is still right."""
    x, a, b, g = _inputs((2, 13, 74), torch.float32, device, gen)
    xt = x.clone().requires_grad_()
    gate_mask(xt, a, b, torch.tensor([13, 5], device=device), backend="triton").backward(g)
    xr = x.cpu().double().requires_grad_()
    gate_mask_reference(xr, a.cpu().double(), b.cpu().double(),
                        torch.tensor([13, 5])).backward(g.cpu().double())
    return {"rel_err_dx": rel_err(xt.grad, xr.grad)}


def check_grouped(device, gen, p: float = 0.25) -> dict:
    B, T, dims, lengths = 3, 7, (74, 35, 33), [7, 4, 0]
    lens = torch.tensor(lengths, device=device)
    groups = [_inputs((B, T, d), torch.float32, device, gen) for d in dims]
    res = {}
    for label, pp in (("plain", 0.0), ("dropout", p)):
        leaves = [[t.clone().requires_grad_() for t in grp[:3]] for grp in groups]
        before = dict(launch.LAUNCHES)
        ys = gate_mask_grouped([lv[0] for lv in leaves], [lv[1] for lv in leaves],
                               [lv[2] for lv in leaves], lens, p=pp, seed=42, training=pp > 0,
                               backend="triton")
        torch.autograd.backward(ys, [grp[3] for grp in groups])
        launched = {k: launch.LAUNCHES[k] - before.get(k, 0) for k in launch.LAUNCHES}
        errs = {}
        offsets = rng_offsets(grp[0].numel() for grp in groups)
        for i, (grp, lv, y) in enumerate(zip(groups, leaves, ys, strict=True)):
            shape, offset = grp[0].shape, offsets[i]
            ref_leaves = [t.cpu().double().requires_grad_() for t in grp[:3]]
            keep = philox_keep(shape, pp, 42, offset) if pp > 0 else None
            ref = gate_mask_reference(*ref_leaves, lens.cpu(), keep, pp)
            ref.backward(grp[3].cpu().double())
            errs[f"group{i}"] = {"y": rel_err(y, ref), **{
                f"d{name}": rel_err(leaf.grad, rleaf.grad)
                for name, leaf, rleaf in zip("xab", lv, ref_leaves, strict=True)}}
        res[label] = {"rel_err": errs, "launches": launched}
    return res


def run_checks(device: str = "cpu") -> dict:
    gen = torch.Generator().manual_seed(0)
    launch.LAUNCHES.clear()
    res = {"device": device, "interpreted": launch.interpreted(),
           "shapes": check_shapes(device, gen), "dropout": check_dropout(device, gen),
           "partial_grads": check_partial_grads(device, gen), "grouped": check_grouped(device, gen),
           "half": check_half(device, gen), "mixed": check_mixed(device, gen)}
    res["launches"] = dict(launch.LAUNCHES)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    json.dump(run_checks(args.device), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
