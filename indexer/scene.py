"""Indoors or outdoors, read from a keyframe's visual vector with no model of its own.

No scene classifier (Places365 or similar) ships in any package here (MODELS.md). The
keyframe's visual vector already lives in a text space (for ``imagenet-minilm``, the
ConSE mixture of its ImageNet classes' names), so the scene is read zero-shot: the
vector's best cosine to a list of outdoor places ("a photo of a street", "... a park",
"... the sky", ...) minus its best cosine to a list of indoor places ("... a room",
"... a kitchen", "... an office", ...). That difference ``d`` becomes the label:

- ``outdoor`` with score ``0.5 + (d - OUT_AT) / SPREAD`` when ``d >= OUT_AT``,
- ``indoor`` with score ``0.5 + (IN_AT - d) / SPREAD`` when ``d <= IN_AT``,

clipped to 1; score 0.5 is where a scene label is shown (``query.concepts.
LABEL_FILTER_MIN["scene"]``), and labels down to 0.4 are kept for ranking. The cut
points were set on the hand labels of 134 keyframes of ``../shared/media`` that show
where they are (``benchmarks/data/frame-labels.jsonl``, field ``place``; python -m
benchmarks.bench_labels): for ``imagenet-minilm``, outdoor shown at precision 0.86,
recall 0.74, indoor at 0.95 / 0.64; for ``imagenet-effnet-minilm`` (the default), outdoor
0.81 / 0.79, indoor 0.97 / 0.64, each on a fresh index of the 71 clips (docs/labels.md);
with the 50-class mix new indexes use, see ``CALIBRATION``. They hold for the encoder
and mix they were measured on: an index with another image encoder gets no scene
labels until its own cut points are measured.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from engine.models.imagenet import CLASS_TOP_K

__all__ = ["SceneReader", "CALIBRATION", "OUTDOOR_PLACES", "INDOOR_PLACES", "scene_reader", "calibration_for"]

OUTDOOR_PLACES = ("a street", "a park", "the sky", "a field", "a beach", "mountains", "a garden", "a forest",
                  "a city", "the sea", "a road", "a lawn", "a swimming pool")
INDOOR_PLACES = ("a room", "a kitchen", "an office", "a living room", "a bedroom", "a classroom", "a studio",
                 "a restaurant", "a gym", "a stage", "a hallway", "a shop")
PROMPT = "a photo of {}"
KEEP_FROM = 0.4  # labels under this score are not kept (between the cut points both sides score 0.375)


@dataclass(frozen=True)
class Calibration:
    out_at: float  # d from which a frame is shown as outdoors
    in_at: float  # d up to which a frame is shown as indoors
    spread: float  # d beyond a cut point that brings the score from 0.5 to 1.0, times 2


# Per image encoder (its registry name), the number of classes its ConSE vectors mix
# (``top_k``: 10 for indexes built before session 7, 50 since) and the WordNet hypernyms
# in its class prompts (``hypernyms``: 0 before session 9, 3 since; engine.config.
# DEFAULT_IMAGE_OPTIONS); measured with benchmarks.bench_labels. A 50-class mix reads the
# scene better: on the 134 keyframes, EfficientNet-Lite0 outdoor 0.92 / 0.81 and indoor
# 0.96 / 0.81 (precision / recall) against 0.81 / 0.79 and 0.97 / 0.64 with 10;
# MobileNetV2 outdoor 0.86 / 0.74 (unchanged), indoor 0.97 / 0.75 against 0.95 / 0.64.
# With 3 hypernyms (cut points set again on the same keyframes): EfficientNet-Lite0
# outdoor 0.90 / 0.81, indoor 0.96 / 0.84; MobileNetV2 outdoor 0.91 / 0.72, indoor
# 0.97 / 0.62.
CALIBRATION = {("imagenet-minilm", 10, 0): Calibration(out_at=0.05, in_at=0.0, spread=0.2),
               ("imagenet-effnet-minilm", 10, 0): Calibration(out_at=0.03, in_at=-0.01, spread=0.2),
               ("imagenet-minilm", 50, 0): Calibration(out_at=0.05, in_at=0.02, spread=0.2),
               ("imagenet-effnet-minilm", 50, 0): Calibration(out_at=0.04, in_at=0.01, spread=0.2),
               ("imagenet-minilm", 50, 3): Calibration(out_at=0.06, in_at=0.01, spread=0.2),
               ("imagenet-effnet-minilm", 50, 3): Calibration(out_at=0.04, in_at=0.02, spread=0.2)}


def calibration_for(encoder_name: str, options: dict | None = None) -> Calibration | None:
    """The cut points of an index's image encoder (its name and options), or None."""
    options = options or {}
    return CALIBRATION.get((encoder_name, options.get("top_k", CLASS_TOP_K), options.get("hypernyms", 0)))


class SceneReader:
    """``labels(vectors)``: per keyframe vector, ``[("scene", "indoor"|"outdoor", score)]``
    or ``[]``. ``encoder`` embeds the place prompts in the vectors' space
    (``encode_text``); ``calibration`` is its entry of :data:`CALIBRATION`."""

    def __init__(self, encoder: Any, calibration: Calibration) -> None:
        self.calibration = calibration
        self._out = np.asarray(encoder.encode_text([PROMPT.format(p) for p in OUTDOOR_PLACES]), np.float32)
        self._in = np.asarray(encoder.encode_text([PROMPT.format(p) for p in INDOOR_PLACES]), np.float32)

    def difference(self, vectors: np.ndarray) -> np.ndarray:
        """Best outdoor cosine minus best indoor cosine, per row of ``vectors``."""
        v = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
        return (v @ self._out.T).max(axis=1) - (v @ self._in.T).max(axis=1)

    def labels(self, vectors: Sequence[np.ndarray]) -> list[list[tuple[str, str, float]]]:
        if len(vectors) == 0:
            return []
        cal = self.calibration
        out = []
        for d in self.difference(np.stack(vectors)).tolist():
            outdoor, indoor = 0.5 + (d - cal.out_at) / cal.spread, 0.5 + (cal.in_at - d) / cal.spread
            label, score = ("outdoor", outdoor) if outdoor >= indoor else ("indoor", indoor)
            score = min(1.0, score)
            out.append([("scene", label, round(score, 4))] if score >= KEEP_FROM else [])
        return out


_lock = threading.Lock()
_readers: dict[tuple, SceneReader] = {}


def scene_reader(encoder_name: str, encoder: Any) -> SceneReader | None:
    """The process's reader for ``encoder_name`` (None when it has no calibration for
    the encoder's ``top_k``)."""
    cal = calibration_for(encoder_name, {"top_k": getattr(encoder, "top_k", CLASS_TOP_K),
                                         "hypernyms": getattr(encoder, "hypernyms", 0)})
    if cal is None:
        return None
    key = (encoder_name, id(encoder))
    with _lock:
        if key not in _readers:
            _readers[key] = SceneReader(encoder, cal)
        return _readers[key]
