"""What the labellers saw, as the catalog's frame labels (``engine.catalog.FrameLabel``).

The stages fill ``Work.frame_labels`` (objects, picture) and ``Work.faces`` (faces);
``derived_labels`` adds what needs several of them: the people count of a keyframe
(the larger of the person boxes and the faces found), the ``face`` words of each
confident face reading (woman, man, girl, boy, child, baby, elderly, and an age band)
and its ``emotion``. ``video_labels`` puts everything on the segments that own each
keyframe, for ``NewVideo.labels`` / ``NewVideo.faces``.
"""
from __future__ import annotations

from dataclasses import replace

from engine.catalog import FaceRecord, FrameLabel

__all__ = ["derived_labels", "video_labels", "face_words", "MIN_GENDER_P", "MIN_EMOTION_P", "AGE_BANDS"]

MIN_GENDER_P = 0.8  # FaceRes gender probability below this names no gender
MIN_EMOTION_P = 0.6  # a smile below this probability is not a label
# Only smiles become labels: on the hand-labelled keyframes every sad, angry and
# fearful reading (6 of 6 at 0.72-0.90) was wrong; the faces table keeps each reading.
LABELLED_EMOTIONS = ("happy",)
AGE_BANDS = ((0, 3, "0-2"), (3, 13, "3-12"), (13, 20, "13-19"), (20, 30, "20-29"), (30, 40, "30-39"),
             (40, 50, "40-49"), (50, 60, "50-59"), (60, 200, "60+"))
MAX_COUNT = 10


def face_words(f: FaceRecord) -> list[tuple[str, float]]:
    """The ``face`` labels of one face reading with their scores."""
    out: list[tuple[str, float]] = []
    age = f.age
    if age is not None:
        band = next(name for lo, hi, name in AGE_BANDS if lo <= age < hi)
        out.append((band, f.score))
        if age < 3:
            out.append(("baby", f.score))
        if age < 13:
            out.append(("child", f.score))
        if age >= 60:
            out.append(("elderly", f.score))
    if f.gender and f.gender_p is not None and f.gender_p >= MIN_GENDER_P:
        adult = age is None or age >= 16
        word = {("female", True): "woman", ("male", True): "man", ("female", False): "girl",
                ("male", False): "boy"}[(f.gender, adult)]
        out.append((word, f.gender_p))
    return out


def derived_labels(frame_labels: list, faces: list[FaceRecord]) -> list[tuple[str, str, float, tuple | None]]:
    """People count, face words and expressions of one keyframe."""
    out: list[tuple[str, str, float, tuple | None]] = []
    persons = [s for kind, label, s, *_ in frame_labels if kind == "object" and label == "person"]
    n = max(len(persons), len(faces))
    if n:
        scores = persons if len(persons) >= len(faces) else [f.score for f in faces]
        out.append(("people", str(min(n, MAX_COUNT)), round(sum(scores) / len(scores), 4), None))
    for f in faces:
        for word, s in face_words(f):
            out.append(("face", word, round(float(s), 4), f.box))
        if f.emotion in LABELLED_EMOTIONS and (f.emotion_p or 0) >= MIN_EMOTION_P:
            out.append(("emotion", f.emotion, round(float(f.emotion_p), 4), f.box))
    return out


def video_labels(work) -> tuple[list[FrameLabel], list[FaceRecord]]:
    """All labels and faces of a filled ``Work``, each on the segment (index) that owns
    its keyframe."""
    labels: list[FrameLabel] = []
    faces: list[FaceRecord] = []
    if not work.frame_labels and not work.faces:
        return labels, faces
    for i, seg in enumerate(work.segments):
        for t in work.keyframe_times(seg):
            own = work.frame_labels.get(t, [])
            if any(k == "style" and lab == "black and white" for k, lab, *_ in own):
                own = [x for x in own if x[0] != "hair"]  # no hair colour in a picture without colour
            fs = work.faces.get(t, [])
            for kind, label, score, box in list(own) + derived_labels(own, fs):
                labels.append(FrameLabel(float(t), kind, label, float(score), box, i))
            faces.extend(replace(f, segment=i) for f in fs)
    return labels, faces
