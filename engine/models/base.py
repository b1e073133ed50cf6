"""Encoder contracts shared by indexing and querying.

Every encoder is built cheaply and loads its weights lazily on first use; the
registry (``engine.models.registry``) keeps one shared cache of loaded encoders.
All outputs are float32, L2-normalised rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

__all__ = ["EncoderInfo", "TextEncoder", "ImageEncoder", "resize_centre_crop"]


@dataclass(frozen=True)
class EncoderInfo:
    """Identity of an encoder, recorded in each index manifest and checked on open."""

    name: str  # registry name, e.g. "minilm", "imagenet-minilm", "open_clip"
    kind: str  # "text" | "image"
    dim: int
    version: str  # model/package version or checkpoint hash: changes when outputs change

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "dim": self.dim, "version": self.version}


class TextEncoder(Protocol):
    info: EncoderInfo

    def encode(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised. ``is_query`` selects query prefixes (E5)."""


class ImageEncoder(Protocol):
    """Maps RGB frames (H, W, 3 uint8) and query text into one space."""

    info: EncoderInfo

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Query text into the image space, (n, dim) float32, L2-normalised."""

    def labels(self, images: Sequence[np.ndarray], top: int = 5) -> list[list[tuple[str, float]]]:
        """Top visual labels per image with probabilities; [] per image if the
        encoder has no label vocabulary."""


def resize_centre_crop(image: np.ndarray, shorter: int, size: int, resample):
    """An RGB array -> a PIL image: the shorter side scaled to ``shorter`` with
    ``resample`` (a ``PIL.Image.Resampling``), then the centre ``size`` x ``size``."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = shorter / min(h, w)
    new_w, new_h = max(shorter, round(w * scale)), max(shorter, round(h * scale))
    pil = Image.fromarray(image).resize((new_w, new_h), resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return pil.crop((left, top, left + size, top + size))
