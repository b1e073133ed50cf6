"""Schema version 4: the evidence timeline of each video.

``timeline`` holds the fine-grained evidence that a moment's boundaries are cut from,
finer than a segment: spoken phrases (``phrase``: the words between two pauses, with
their text and text-space vector), on-screen text spans (``text``: when a keyframe's
text was on screen, with the text and its vector) and visual samples (``visual``: one
frame a second, its visual vector). Vectors are float16 unit vectors in the space of
the modality's block. Rows hang off ``videos(id)`` with ``ON DELETE CASCADE``.
"""
from __future__ import annotations

__all__ = ["TIMELINE_V4", "TIMELINE_KINDS", "COLOURS"]

TIMELINE_KINDS: tuple[str, ...] = ("phrase", "text", "visual")
# The colour names a ``visual`` unit's text holds (indexer.colours names them; queries
# that name a colour are matched against them, query.boundaries).
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown",
                            "black", "white", "grey")

TIMELINE_V4 = """
CREATE TABLE timeline (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    video   INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL CHECK (kind IN ('phrase', 'text', 'visual')),
    start   REAL NOT NULL,
    end     REAL NOT NULL,
    text    TEXT NOT NULL DEFAULT '',
    vector  BLOB,                                     -- float16 unit vector
    CHECK (end >= start)
);
CREATE INDEX timeline_video ON timeline (video, kind, start);
"""
