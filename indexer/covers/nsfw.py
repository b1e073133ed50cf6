"""Unsafe-frame detection with NudeNet's packaged YOLOv8n detector (``nudenet==3.4.2``).

The detector finds body parts; a frame is unsafe for a cover when it shows an
*exposed* part of :data:`UNSAFE_LABELS` with enough confidence. Optional: covers work
without it (``assess_frame(..., nsfw=False)``), and its absence raises
MissingDependencyError only when asked for.

Licence note: NudeNet 3.x is AGPL-3.0; a deployment that must avoid it leaves it
uninstalled (or plugs another detector in with :func:`set_unsafe_detector`).
"""
from __future__ import annotations

import functools
import threading
from typing import Callable

import cv2
import numpy as np

from engine.errors import InputError, MissingDependencyError

__all__ = ["UNSAFE_LABELS", "unsafe_score", "set_unsafe_detector", "Detector"]

UNSAFE_LABELS: frozenset[str] = frozenset({
    "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
    "ANUS_EXPOSED", "BUTTOCKS_EXPOSED",
})

Detector = Callable[[np.ndarray], list[dict]]
"""Takes an RGB frame, returns NudeNet-style detections ``{"class", "score", "box"}``."""

_override: Detector | None = None
_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _nudenet() -> Detector:
    try:
        from nudenet import NudeDetector
    except ImportError as e:
        raise MissingDependencyError(
            "nudenet", "the unsafe-frame filter of covers", hint="pip install nudenet==3.4.2"
        ) from e
    det = NudeDetector()

    def run(rgb: np.ndarray) -> list[dict]:
        # NudeNet reads arrays as BGR (OpenCV order).
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        with _lock:
            return list(det.detect(bgr))

    return run


def set_unsafe_detector(detector: Detector | None) -> None:
    """Use ``detector`` instead of NudeNet (None restores NudeNet). For deployments
    with their own moderation model, and for tests."""
    global _override
    _override = detector


def unsafe_score(rgb: np.ndarray) -> tuple[float, list[str]]:
    """(highest confidence of an exposed unsafe part, descriptions of those found)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"unsafe_score needs an (H, W, 3) uint8 RGB array, got {getattr(rgb, 'shape', rgb)!r}")
    detector = _override or _nudenet()
    best = 0.0
    found: list[str] = []
    for d in detector(rgb):
        label, score = str(d.get("class", "")), float(d.get("score", 0.0))
        if label in UNSAFE_LABELS:
            best = max(best, score)
            found.append(f"{label.lower()} {score:.2f}")
    return best, found
