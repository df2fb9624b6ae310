"""GPU agreement check: the Triton path against the PyTorch reference, on a CUDA device.

    python -m benchmarks.check_gpu [--model mmlatch] [--batch 8] [--steps 50] [--json OUT]
                                   [--log-level INFO]

1. The kernel checks of kernels.interp_check, run on CUDA (relative errors vs float64).
2. A whole MMLatch step (forward, loss, backward) with every gate_mask call on the Triton
   kernels and then on the torch reference (kernels.backend_scope), same weights and RNG:
   prediction, masks, loss and every parameter gradient must agree. Mask dropout draws
   backend-specific streams, so the cross-backend step runs with mask_dropout=0 (other dropout
   on, same CUDA RNG); a step with mask dropout on checks Triton-path reproducibility.
Prints JSON and writes benchmarks/results/kernels_check_gpu_<device>.json (or --json OUT,
or a file of that name in --out DIR). Without CUDA it
prints "no CUDA device; skipped" and exits 0. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from benchmarks.gpu_cli import add_results_args, parse_on_cuda, write_report
from kernels import backend_scope
from kernels.interp_check import rel_err, run_checks

log = logging.getLogger(__name__)

MODEL_TOL = 1e-4  # fp32 through LSTMs and attention: only summation-order differences remain
KERNEL_TOL = 1e-6


def _step(model, batch, backend: str, seed: int) -> dict:
    """One training step's forward + backward; returns outputs and parameter gradients."""
    text, audio, video, lengths, target = batch
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with backend_scope(backend):
        out = model(text, audio, video, lengths)
        loss = torch.nn.functional.l1_loss(out.sentiment, target)
        loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    masks = {k: v.detach().clone() for k, v in (out.masks or {}).items()}
    return {"sentiment": out.sentiment.detach().clone(), "loss": loss.detach(), "grads": grads,
            "masks": masks}


def _compare(r1: dict, r2: dict) -> dict:
    """Relative errors; gradients normalised by the largest |gradient| over all parameters
    (some attention weights get ~1e-10 gradients, where per-tensor ratios mean nothing)."""
    keys = sorted(r1["grads"])
    grad_scale = max((r2["grads"][k].abs().max().item() for k in keys), default=0.0)
    grad_diff = max(((r1["grads"][k] - r2["grads"][k]).abs().max().item() for k in keys),
                    default=0.0)
    grad_err = grad_diff / max(grad_scale, 1e-30)
    mask_err = max((rel_err(r1["masks"][k], r2["masks"][k]) for k in r1["masks"]), default=0.0)
    return {"sentiment_rel_err": rel_err(r1["sentiment"], r2["sentiment"]),
            "loss_rel_err": rel_err(r1["loss"], r2["loss"]), "mask_rel_err": mask_err,
            "max_grad_rel_err": grad_err, "same_grad_set": set(r1["grads"]) == set(r2["grads"]),
            "n_grads": len(r1["grads"])}


def check_model(name: str, batch_size: int, steps: int, device: str = "cuda",
                dims: tuple[int, int, int] = (300, 74, 35), **overrides) -> dict:
    """Triton vs reference for a whole model step (CPU works under TRITON_INTERPRET=1).
    overrides: model config fields (e.g. hidden=16 for a quick CPU run)."""
    try:
        from models.base import InputDims
        from models.registry import create
    except ImportError as exc:
        return {"skipped": f"models not importable: {exc}"}
    dims = InputDims(*dims)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(steps // 3, steps + 1, (batch_size,), generator=gen)
    lengths[0] = steps
    batch = tuple(t.to(device) for t in (
        torch.randn(batch_size, steps, dims.text, generator=gen),
        torch.randn(batch_size, steps, dims.audio, generator=gen),
        torch.randn(batch_size, steps, dims.video, generator=gen),
        lengths, torch.randn(batch_size, generator=gen).clamp(-3, 3)))
    res = {"model": name, "batch": batch_size, "steps": steps}
    torch.manual_seed(0)
    model = create(name, dims, **{**overrides, "mask_dropout": 0.0}).to(device)
    for mode in ("eval", "train"):
        model.train(mode == "train")
        res[mode] = _compare(_step(model, batch, "triton", 1), _step(model, batch, "torch", 1))
    torch.manual_seed(0)
    model = create(name, dims, **{**overrides, "mask_dropout": 0.2}).to(device).train()
    r1, r2 = _step(model, batch, "triton", 5), _step(model, batch, "triton", 5)
    res["train_mask_dropout_reproducible"] = bool(torch.equal(r1["loss"], r2["loss"]))
    return res


def _ok(kernel: dict, model: dict) -> bool:
    errs = [v for case in kernel["shapes"] for v in case["rel_err"].values()]
    errs += list(kernel["dropout"]["rel_err_vs_philox_reference"].values())
    ok = max(errs) < KERNEL_TOL and all(c.get("pad_zero", True) for c in kernel["shapes"])
    if "skipped" not in model:
        for mode in ("eval", "train"):
            m = model[mode]
            ok &= max(m["sentiment_rel_err"], m["loss_rel_err"], m["mask_rel_err"],
                      m["max_grad_rel_err"]) < MODEL_TOL and m["same_grad_set"]
        ok &= model["train_mask_dropout_reproducible"]
    return bool(ok)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mmlatch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    add_results_args(ap, "kernels_check_gpu")
    args = parse_on_cuda(ap, argv)
    if args is None:
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.cuda.get_device_name()
    log.info("kernel checks on %s", device)
    kernel = run_checks("cuda")
    log.info("whole %s step, Triton vs reference", args.model)
    model = check_model(args.model, args.batch, args.steps)
    report = {"device": device, "ok": _ok(kernel, model), "kernel": kernel, "model_step": model}
    return write_report(args, "kernels_check_gpu", report, report["ok"])


if __name__ == "__main__":
    sys.exit(main())
