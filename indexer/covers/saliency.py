"""Spectral-residual saliency (Hou and Zhang, CVPR 2007) in numpy.

OpenCV's ``cv2.saliency`` lives in the contrib build only, and the project installs
``opencv-python-headless``; the method is a few lines of FFT, so it is implemented
here. The map is computed on a small copy of the frame (64 px on the long side, as in
the paper): saliency is a coarse, whole-frame property and this keeps it under a
millisecond.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["saliency_map", "saliency_centroid"]

_SIDE = 64


def saliency_map(rgb: np.ndarray, *, side: int = _SIDE) -> np.ndarray:
    """Saliency of an RGB (H, W, 3) uint8 frame as a float32 map in [0, 1] of the
    frame's aspect ratio with ``side`` pixels on its long side (resize it up to use
    it at full size)."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    sw, sh = max(4, round(w * scale)), max(4, round(h * scale))
    gray = cv2.cvtColor(cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    f = np.fft.fft2(gray.astype(np.float32))
    log_amp = np.log(np.abs(f) + 1e-8).astype(np.float32)
    phase = np.angle(f)
    # The spectral residual: what the log spectrum has beyond its local average,
    # i.e. what a "typical" image of that spectrum would not have.
    residual = log_amp - cv2.blur(log_amp, (3, 3))
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), sigmaX=max(1.0, side / 25))
    lo, hi = float(sal.min()), float(sal.max())
    if hi - lo < 1e-12:
        return np.zeros((sh, sw), dtype=np.float32)
    return ((sal - lo) / (hi - lo)).astype(np.float32)


def saliency_centroid(sal: np.ndarray) -> tuple[float, float, float]:
    """(cx, cy, concentration) of a saliency map: the centroid in [0, 1] frame
    coordinates and the share of the saliency mass that lies in the top 10% of its
    pixels (0.1 for a flat map, near 1 for one bright spot)."""
    total = float(sal.sum())
    if total <= 0:
        return 0.5, 0.5, 0.1
    h, w = sal.shape
    ys, xs = np.mgrid[0:h, 0:w]
    cx = float((sal * (xs + 0.5)).sum() / total / w)
    cy = float((sal * (ys + 0.5)).sum() / total / h)
    flat = np.sort(sal.ravel())[::-1]
    top = flat[: max(1, flat.size // 10)].sum()
    return cx, cy, float(top / total)
