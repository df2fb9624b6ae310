"""@triton.jit kernels for the fused gate-and-mask op. Imported lazily by kernels.launch only.

Flat layout: a (B, T, D) contiguous tensor is n = B*T*D elements; element i sits at row
r = i // D, step t = r % T, batch b = r // T. A program handles BLOCK consecutive elements.
Padded elements (t >= lengths[b]) are never read; the forward writes 0 there and so does the
backward for every gradient. Dropout: element i has draw number c = rng_base + i and uses word
c % 4 of ``tl.randint4x(seed, c // 4)`` (Philox-4x32-10, one call per 4 elements); it is kept
when the word's top 24 bits are >= thr, and kept entries are scaled by `scale`.
Math is float32 whatever the storage dtype.

Forward:  y  = x * m * d,                 m = (s_a + s_b) / 2, s = sigmoid, d = keep * scale
Backward: dx = g * m * d,  da = g * x * d * 0.5 * s_a * (1 - s_a),  db likewise with s_b.
"""

import triton
import triton.language as tl


@triton.jit
def _valid(offs, n, D, T, len_ptr, HAS_LENGTHS: tl.constexpr):
    inb = offs < n
    if HAS_LENGTHS:
        row = offs // D
        bidx = row // T
        t = row - bidx * T
        steps = tl.load(len_ptr + bidx, mask=inb, other=0)
        inb = inb & (t < steps)
    return inb


@triton.jit
def _drop(blk, seed, rng_base, thr, scale, BLOCK: tl.constexpr):
    # One Philox-4x32-10 call gives the draws of 4 consecutive elements: element with draw
    # number c = rng_base + offset uses word c % 4 at counter c // 4 (rng_base % 4 == 0).
    ctr = (rng_base + blk * BLOCK) // 4 + tl.arange(0, BLOCK // 4)
    r0, r1, r2, r3 = tl.randint4x(seed, ctr)
    r = tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), [BLOCK])
    keep = (r >> 8).to(tl.int32) >= thr
    return tl.where(keep, scale, 0.0)


@triton.jit
def _fwd_block(x_ptr, a_ptr, b_ptr, y_ptr, len_ptr, blk, n, D, T, seed, rng_base, thr, scale,
               HAS_LENGTHS: tl.constexpr, HAS_DROPOUT: tl.constexpr, BLOCK: tl.constexpr):
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    valid = _valid(offs, n, D, T, len_ptr, HAS_LENGTHS)
    x = tl.load(x_ptr + offs, mask=valid, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + offs, mask=valid, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=valid, other=0.0).to(tl.float32)
    m = (tl.sigmoid(a) + tl.sigmoid(b)) * 0.5
    if HAS_DROPOUT:
        m = m * _drop(blk, seed, rng_base, thr, scale, BLOCK)
    y = tl.where(valid, x * m, 0.0)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=offs < n)


@triton.jit
def _bwd_block(g_ptr, x_ptr, a_ptr, b_ptr, dx_ptr, da_ptr, db_ptr, len_ptr, blk, n, D, T,
               seed, rng_base, thr, scale,
               HAS_LENGTHS: tl.constexpr, HAS_DROPOUT: tl.constexpr, NEED_DX: tl.constexpr,
               NEED_DAB: tl.constexpr, BLOCK: tl.constexpr):
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    inb = offs < n
    valid = _valid(offs, n, D, T, len_ptr, HAS_LENGTHS)
    g = tl.load(g_ptr + offs, mask=valid, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + offs, mask=valid, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=valid, other=0.0).to(tl.float32)
    s_a = tl.sigmoid(a)
    s_b = tl.sigmoid(b)
    if HAS_DROPOUT:
        g = g * _drop(blk, seed, rng_base, thr, scale, BLOCK)
    g = tl.where(valid, g, 0.0)
    if NEED_DX:
        dx = g * (s_a + s_b) * 0.5
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=inb)
    if NEED_DAB:
        x = tl.load(x_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        gx = g * x * 0.5
        tl.store(da_ptr + offs, (gx * s_a * (1.0 - s_a)).to(da_ptr.dtype.element_ty), mask=inb)
        tl.store(db_ptr + offs, (gx * s_b * (1.0 - s_b)).to(db_ptr.dtype.element_ty), mask=inb)


@triton.jit(do_not_specialize=["seed", "thr"])
def gate_mask_fwd_kernel(x_ptr, a_ptr, b_ptr, y_ptr, len_ptr, n, D, T, seed, thr, scale,
                         HAS_LENGTHS: tl.constexpr, HAS_DROPOUT: tl.constexpr,
                         BLOCK: tl.constexpr):
    _fwd_block(x_ptr, a_ptr, b_ptr, y_ptr, len_ptr, tl.program_id(0), n, D, T, seed, 0, thr,
               scale, HAS_LENGTHS, HAS_DROPOUT, BLOCK)


@triton.jit(do_not_specialize=["seed", "thr"])
def gate_mask_bwd_kernel(g_ptr, x_ptr, a_ptr, b_ptr, dx_ptr, da_ptr, db_ptr, len_ptr, n, D, T,
                         seed, thr, scale,
                         HAS_LENGTHS: tl.constexpr, HAS_DROPOUT: tl.constexpr,
                         NEED_DX: tl.constexpr, NEED_DAB: tl.constexpr, BLOCK: tl.constexpr):
    _bwd_block(g_ptr, x_ptr, a_ptr, b_ptr, dx_ptr, da_ptr, db_ptr, len_ptr, tl.program_id(0),
               n, D, T, seed, 0, thr, scale, HAS_LENGTHS, HAS_DROPOUT, NEED_DX, NEED_DAB, BLOCK)


# Grouped variants: up to three (x, a, b) groups sharing B, T and lengths, each with its own D,
# in ONE launch. Programs [0, start1) serve group 0, [start1, start2) group 1, the rest group 2.
# Group k's draw numbers start at rng_k (reference.rng_offsets: the element counts of the
# groups before it, each rounded up to a multiple of 4).
# Unused groups get n = 0 and an empty program range.


@triton.jit(do_not_specialize=["seed", "thr", "start1", "start2", "rng1", "rng2"])
def gate_mask_fwd_grouped_kernel(
        x0, a0, b0, y0, n0, D0, x1, a1, b1, y1, n1, D1, x2, a2, b2, y2, n2, D2,
        len_ptr, T, start1, start2, rng1, rng2, seed, thr, scale,
        HAS_LENGTHS: tl.constexpr, HAS_DROPOUT: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if pid < start1:
        _fwd_block(x0, a0, b0, y0, len_ptr, pid, n0, D0, T, seed, 0, thr, scale,
                   HAS_LENGTHS, HAS_DROPOUT, BLOCK)
    elif pid < start2:
        _fwd_block(x1, a1, b1, y1, len_ptr, pid - start1, n1, D1, T, seed, rng1, thr, scale,
                   HAS_LENGTHS, HAS_DROPOUT, BLOCK)
    else:
        _fwd_block(x2, a2, b2, y2, len_ptr, pid - start2, n2, D2, T, seed, rng2, thr, scale,
                   HAS_LENGTHS, HAS_DROPOUT, BLOCK)


@triton.jit(do_not_specialize=["seed", "thr", "start1", "start2", "rng1", "rng2"])
def gate_mask_bwd_grouped_kernel(
        g0, x0, a0, b0, dx0, da0, db0, n0, D0,
        g1, x1, a1, b1, dx1, da1, db1, n1, D1,
        g2, x2, a2, b2, dx2, da2, db2, n2, D2,
        len_ptr, T, start1, start2, rng1, rng2, seed, thr, scale,
        HAS_LENGTHS: tl.constexpr, HAS_DROPOUT: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if pid < start1:
        _bwd_block(g0, x0, a0, b0, dx0, da0, db0, len_ptr, pid, n0, D0, T, seed, 0, thr, scale,
                   HAS_LENGTHS, HAS_DROPOUT, True, True, BLOCK)
    elif pid < start2:
        _bwd_block(g1, x1, a1, b1, dx1, da1, db1, len_ptr, pid - start1, n1, D1, T, seed, rng1,
                   thr, scale, HAS_LENGTHS, HAS_DROPOUT, True, True, BLOCK)
    else:
        _bwd_block(g2, x2, a2, b2, dx2, da2, db2, len_ptr, pid - start2, n2, D2, T, seed, rng2,
                   thr, scale, HAS_LENGTHS, HAS_DROPOUT, True, True, BLOCK)
