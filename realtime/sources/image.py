"""The pipeline's image format, and the one way to convert a picture into it.

Every `realtime.sources.Source` delivers `VideoFrame`s holding RGB uint8 (H, W, 3) images,
at most ``max_width`` pixels wide; the face extractor takes them as they come. Pictures in
other forms are converted here, at the source, by one convention: a float image is read
as values in [0, 1] (0.5 -> 128), grey is repeated into three channels, alpha is dropped.
"""

from __future__ import annotations

import numpy as np


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from RGB/RGBA/grey uint8, or float in [0, 1]; ValueError for
    anything else (the message says what was given)."""
    x = np.asarray(image)
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] not in (3, 4) or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {x.shape}")
    x = x[:, :, :3]
    if np.issubdtype(x.dtype, np.floating):
        x = (np.clip(np.nan_to_num(x), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (or float in [0, 1]), got {x.dtype}")
    return np.ascontiguousarray(x)


def fit_width(width: int, height: int, max_width: int) -> tuple[int, int]:
    """(width, height) scaled down to at most ``max_width`` wide, keeping the aspect ratio;
    the height is rounded to an even number of pixels."""
    if width <= max_width:
        return width, height
    return max_width, max(2, int(round(height * (max_width / width) / 2)) * 2)


def downscale(rgb: np.ndarray, max_width: int) -> np.ndarray:
    """``rgb`` resized (area interpolation) to at most ``max_width`` pixels wide."""
    height, width = rgb.shape[:2]
    size = fit_width(width, height, max_width)
    if size == (width, height):
        return rgb
    import cv2

    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
