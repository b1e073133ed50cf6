"""Schema version 5: what the frame labellers saw (issue 15).

``frame_labels`` holds one row per label of a keyframe: its ``kind`` (what labeller
family said it, see ``LABEL_KINDS``), the ``label`` in that kind's vocabulary, the
labeller's ``score`` (0..1) and, for things with a place in the frame, a ``box``
(JSON ``[x0, y0, x1, y1]`` as fractions of the frame). ``faces`` holds each detected
face with its attributes and its descriptor (float16 unit vector), which the identity
work clusters. Rows hang off ``videos(id)`` and the segment whose keyframe they
describe, with ``ON DELETE CASCADE``.
"""
from __future__ import annotations

__all__ = ["LABELS_V5", "LABEL_KINDS"]

# object: a COCO class; people: how many people (one, two, three, group); face: a
# face's gender/age reading (man, woman, child, ...); emotion: a face's expression;
# style: how the picture is made (black and white, cartoon, test pattern, screen);
# scene: where/when (outdoor, indoor, dark); colour: a dominant colour name; action:
# what a person's pose shows (arms raised, hand to face, sitting, ...); hair: a face's
# hair colour (black, brown, blonde, red, grey).
LABEL_KINDS: tuple[str, ...] = ("object", "people", "face", "emotion", "style", "scene", "colour", "action", "hair")

LABELS_V5 = """
CREATE TABLE frame_labels (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    video    INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    segment  INTEGER REFERENCES segments (id) ON DELETE CASCADE,
    t        REAL NOT NULL,
    kind     TEXT NOT NULL,
    label    TEXT NOT NULL,
    score    REAL NOT NULL,
    box      TEXT                                     -- JSON [x0, y0, x1, y1] in 0..1, or NULL
);
CREATE INDEX frame_labels_video ON frame_labels (video, t);
CREATE INDEX frame_labels_label ON frame_labels (kind, label);
CREATE INDEX frame_labels_segment ON frame_labels (segment);

CREATE TABLE faces (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    video       INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    segment     INTEGER REFERENCES segments (id) ON DELETE CASCADE,
    t           REAL NOT NULL,
    box         TEXT NOT NULL,                        -- JSON [x0, y0, x1, y1] in 0..1
    score       REAL NOT NULL,                        -- detector confidence
    gender      TEXT,                                 -- 'female' | 'male'
    gender_p    REAL,
    age         REAL,                                 -- years (the age softmax's mean)
    emotion     TEXT,
    emotion_p   REAL,
    descriptor  BLOB                                  -- float16 unit vector (1024-d FaceRes)
);
CREATE INDEX faces_video ON faces (video, t);
"""
