"""Colour names of a frame: the share of its pixels in each basic colour (HSV bins on a
small copy), so that "a red balloon" or "blue light" has evidence a classifier of
object classes does not give.

``colour_names(rgb)`` -> ``[(name, share)]`` for the chromatic colours covering at least
``MIN_SHARE`` of the frame, and black, white and grey when they cover most of it.
"""
from __future__ import annotations

import numpy as np

from engine.catalog.schema_timeline import COLOURS

__all__ = ["COLOURS", "colour_names", "MIN_SHARE"]

# Hue bins in degrees (OpenCV's hue is half of it), chromatic colours only.
_HUES: tuple[tuple[str, float, float], ...] = (
    ("red", 0, 15), ("orange", 15, 40), ("yellow", 40, 70), ("green", 70, 160), ("cyan", 160, 200),
    ("blue", 200, 260), ("purple", 260, 290), ("pink", 290, 340), ("red", 340, 361),
)
MIN_SHARE = 0.08  # a chromatic colour on this share of the frame is named
MIN_NEUTRAL_SHARE = 0.5  # black, white and grey only when they fill most of it
_SIZE = (64, 36)


def colour_names(rgb: np.ndarray, *, min_share: float = MIN_SHARE) -> list[tuple[str, float]]:
    """Basic colour names of an RGB (H, W, 3) uint8 frame with their share of pixels,
    largest first."""
    import cv2

    small = cv2.resize(rgb, _SIZE, interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.float32)
    h, s, v = hsv[:, 0] * 2.0, hsv[:, 1], hsv[:, 2]
    n = float(len(h))
    black = v < 50
    neutral = ~black & (s < 45)
    white = neutral & (v > 200)
    grey = neutral & ~white
    chroma = ~black & ~neutral
    # Dark oranges and reds read as brown.
    brown = chroma & (h < 40) & (v < 150) & (s > 80)
    shares: dict[str, float] = {}
    for name, lo, hi in _HUES:
        m = chroma & ~brown & (h >= lo) & (h < hi)
        shares[name] = shares.get(name, 0.0) + float(m.sum()) / n
    shares["brown"] = float(brown.sum()) / n
    out = [(k, round(x, 3)) for k, x in shares.items() if x >= min_share]
    out += [(k, round(float(m.sum()) / n, 3)) for k, m in (("black", black), ("white", white), ("grey", grey))
            if float(m.sum()) / n >= MIN_NEUTRAL_SHARE]
    return sorted(out, key=lambda x: -x[1])
