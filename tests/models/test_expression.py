"""models.expression: the FER2013 mini-Xception rebuilt in torch from fer's Keras weights,
checked against an independent plain-numpy forward pass of the same .hdf5 file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import expression as E
from realtime.assets import expression_model_path
from scripts.make_demo_recording import astronaut, no_face_frame


@pytest.fixture(scope="module")
def weights_path():
    return expression_model_path()


@pytest.fixture(scope="module")
def net(weights_path):
    return E.load(weights_path)


# -- an independent forward pass: NHWC numpy, driven by the file's own layer graph -----------
def _same(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pad(x, k, s, padding, value=0.0):
    if padding == "valid":
        return x
    (t, b), (left, r) = _same(x.shape[1], k, s), _same(x.shape[2], k, s)
    return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=value)


def _windows(x, k, s):
    n, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.empty((n, oh, ow, k, k, c), x.dtype)
    for i in range(k):
        for j in range(k):
            out[:, :, :, i, j] = x[:, i : i + s * oh : s, j : j + s * ow : s]
    return out


def numpy_forward(path, x_nhwc: np.ndarray) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        w = {}
        f["model_weights"].visititems(
            lambda n, o: w.__setitem__(n.split("/")[0] + "/" + n.rsplit("/", 1)[-1][:-2],
                                       np.asarray(o, np.float64)) if hasattr(o, "shape")
            else None)
    acts = {}
    for layer in layers:
        kind, cfg = layer["class_name"], layer["config"]
        name = cfg["name"]
        ins = [acts[n[0]] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "InputLayer":
            y = x_nhwc.astype(np.float64)
        elif kind == "Conv2D":
            k, s = cfg["kernel_size"][0], cfg["strides"][0]
            win = _windows(_pad(ins[0], k, s, cfg["padding"]), k, s)
            y = np.einsum("nhwijc,ijco->nhwo", win, w[f"{name}/kernel"])
            if cfg["use_bias"]:
                y = y + w[f"{name}/bias"]
        elif kind == "SeparableConv2D":
            win = _windows(_pad(ins[0], 3, 1, "same"), 3, 1)
            y = np.einsum("nhwijc,ijc->nhwc", win, w[f"{name}/depthwise_kernel"][..., 0])
            y = np.einsum("nhwc,co->nhwo", y, w[f"{name}/pointwise_kernel"][0, 0])
        elif kind == "BatchNormalization":
            g, b = w[f"{name}/gamma"], w[f"{name}/beta"]
            m, v = w[f"{name}/moving_mean"], w[f"{name}/moving_variance"]
            y = g * (ins[0] - m) / np.sqrt(v + cfg["epsilon"]) + b
        elif kind == "Activation" and cfg["activation"] == "relu":
            y = np.maximum(ins[0], 0.0)
        elif kind == "Activation" and cfg["activation"] == "softmax":
            e = np.exp(ins[0] - ins[0].max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
        elif kind == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            y = _windows(_pad(ins[0], k, s, cfg["padding"], -np.inf), k, s).max(axis=(3, 4))
        elif kind == "Add":
            y = ins[0] + ins[1]
        elif kind == "GlobalAveragePooling2D":
            y = ins[0].mean(axis=(1, 2))
        else:
            raise AssertionError(f"layer {kind} not covered by the reference")
        acts[name] = y
    return acts[layers[-1]["config"]["name"]]


def _astronaut_crop():
    """The astronaut's face, cut from a box around it (the landmarker's box, measured)."""
    from realtime.extract.expression import face_crop

    corners = np.array([[180.7, 71.8], [270.2, 177.4]]) / 512.0
    return face_crop(astronaut(), corners)


def test_torch_matches_an_independent_numpy_forward_on_real_crops(net, weights_path):
    import cv2

    face = _astronaut_crop()
    flag = cv2.resize(no_face_frame()[..., 1], (64, 64))
    crops = np.stack([face, face[:, ::-1], (face * 0.4).astype(np.uint8), flag])
    ours = net.classify(crops)
    ref = numpy_forward(weights_path, E.to_network_input(crops).transpose(0, 2, 3, 1))
    assert ours.shape == ref.shape == (4, 7)
    assert np.max(np.abs(ours - ref)) < 1e-4
    assert np.allclose(ours.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(ref[0], ref[3], atol=0.05)  # the reference is not trivially flat


def test_folding_the_batch_norms_keeps_the_outputs_within_1e_4(net, weights_path):
    import torch

    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # loaded fused
    unfused = E.load(weights_path, fuse=False)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in unfused.modules()) == 14
    face = _astronaut_crop()
    rng = np.random.default_rng(0)
    crops = np.stack([face, face[:, ::-1], (face * 0.4).astype(np.uint8),
                      rng.integers(0, 256, (64, 64), dtype=np.uint8)])
    assert np.max(np.abs(net.classify(crops) - unfused.classify(crops))) < 1e-4


def test_the_astronaut_reads_as_happy_also_mirrored_and_darkened(net):
    face = _astronaut_crop()
    variants = {"as is": face, "mirrored": face[:, ::-1].copy(),
                "darkened": (face.astype(np.float32) * 0.5).astype(np.uint8)}
    probs = net.classify(np.stack(list(variants.values())))
    for (what, _), p in zip(variants.items(), probs, strict=True):
        assert p[E.HAPPY_INDEX] >= 0.9, (what, dict(zip(E.EXPRESSIONS, p.round(3), strict=True)))
    assert np.all(E.face_valence(probs) > 0.8)


def test_face_valence_is_happy_minus_the_negative_classes():
    p = np.zeros((3, 7))
    p[0, E.HAPPY_INDEX] = 1.0
    p[1, E.EXPRESSIONS.index("sad")] = 0.5
    p[1, E.EXPRESSIONS.index("angry")] = 0.5
    p[2, E.EXPRESSIONS.index("neutral")] = 0.7
    p[2, E.EXPRESSIONS.index("surprise")] = 0.3
    assert np.allclose(E.face_valence(p), [1.0, -1.0, 0.0])


def test_fuse_face_adds_the_weighted_valence_clipped_only_with_a_face_and_a_weight():
    assert E.fuse_face(1.0, 0.5, 0.8) == pytest.approx(1.4)
    assert E.fuse_face(-1.0, 2.0, -0.5) == pytest.approx(-2.0)
    assert E.fuse_face(2.5, 2.0, 1.0) == 3.0  # clipped to the sentiment range
    assert E.fuse_face(-2.5, 2.0, -1.0) == -3.0
    assert E.fuse_face(0.25, 0.0, 1.0) == 0.25  # W = 0: the model's sentiment
    assert E.fuse_face(0.25, 2.0, float("nan")) == 0.25  # no face: the model's sentiment
    assert E.fuse_face(3.5, 0.0, 1.0) == 3.5  # ... exactly, never clipped


def test_bad_crops_and_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\(N, 64, 64\) uint8"):
        E.to_network_input(np.zeros((1, 32, 32), np.uint8))
    bad = tmp_path / "x.hdf5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(E.ExpressionWeightsError, match="cannot read Keras weights"):
        E.load(bad)
