"""The pipeline's image format, and the one way to convert a picture into it.

Every `realtime.sources.Source` delivers `VideoFrame`s holding RGB uint8 (H, W, 3) images,
at most ``max_width`` pixels wide; the face extractor takes them as they come. Pictures in
other forms are converted here, at the source, by one convention: a float image is read
as values in [0, 1] (0.5 -> 128), grey is repeated into three channels, alpha is dropped.

Bounds, checked before anything is converted (`check_picture`, `check_picture_size`): an
image of at most ``MAX_PIXELS`` pixels whose sides are, once downscaled to ``max_width``,
still at least ``MIN_SIDE`` pixels (what the face tracker needs; a 1x1 or 20000x1 picture is
not), grey/RGB/RGBA, uint8 or float. Anything else is a `realtime.sources.base.RefusedMedia`
(a ValueError) that a source counts as a ``video_invalid`` drop. `to_frame_image` is the one
way a picture received as an array becomes a frame's image.
"""

from __future__ import annotations

import numpy as np

from realtime.sources.base import RefusedMedia

MIN_SIDE = 8  # realtime.extract.face needs frames of at least 8x8
MAX_PIXELS = 7680 * 4320  # an 8K picture
VIDEO_INVALID = "video_invalid"


def check_picture_size(width: int, height: int, max_width: int) -> None:
    """`RefusedMedia` unless a ``width`` x ``height`` picture, downscaled to at most
    ``max_width`` wide (`fit_width`), is at least ``MIN_SIDE`` on both sides and had at most
    ``MAX_PIXELS`` pixels."""
    if width * height > MAX_PIXELS:
        raise RefusedMedia(VIDEO_INVALID, f"a {width}x{height} picture has more than "
                                          f"{MAX_PIXELS} pixels")
    if min(width, height) < MIN_SIDE or min(fit_width(width, height, max_width)) < MIN_SIDE:
        raise RefusedMedia(VIDEO_INVALID, f"a {width}x{height} picture is too small or too "
                                          f"narrow: frames must be at least {MIN_SIDE}x"
                                          f"{MIN_SIDE} once at most {max_width} px wide")


def check_picture(image: np.ndarray, max_width: int) -> np.ndarray:
    """``image`` as an array, unconverted; `RefusedMedia` unless it is a grey (H, W) or
    RGB/RGBA (H, W, 3|4) picture of uint8 or float within the size bounds."""
    x = np.asarray(image)
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (3, 4))):
        raise RefusedMedia(VIDEO_INVALID, f"expected an HxWx3 RGB image, got shape {x.shape}")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise RefusedMedia(VIDEO_INVALID, f"images must be uint8 (or float in [0, 1]), got "
                                          f"{x.dtype}")
    check_picture_size(x.shape[1], x.shape[0], max_width)
    return x


def to_frame_image(image: np.ndarray, max_width: int) -> np.ndarray:
    """A received picture (grey/RGB/RGBA, uint8 or float in [0, 1]) as a frame's image: RGB
    uint8 (H, W, 3), at most ``max_width`` wide; `RefusedMedia` outside the bounds."""
    return np.ascontiguousarray(downscale(to_rgb_uint8(check_picture(image, max_width)),
                                          max_width))


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
