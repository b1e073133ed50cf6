"""Schema version 6: face tracks, identities and their names (issue 16).

``face_tracks`` holds one row per face followed through a shot: its time range, the
box and segment of its best face, a quality score (0..1), how many detections it
links, and its descriptor (float16 unit vector; NULL when face identity is off or the
track's identity was deleted). ``identity`` is the person cluster the track joined.

``identities`` are people per tenant: the running ``centroid`` of their tracks' descriptors
(float16 unit vector), how many tracks, and the name shown with where it came from
(``name_source``: user, or the evidence kind that won: metadata, caption, speech) and
its confidence. A user's name is never replaced by evidence.

``name_evidence`` keeps the provenance of every automatic name: the track it was
seen with, the kind (metadata: the video's ``people`` where the identity dominates,
caption: on-screen text under the face, speech: a spoken introduction while the face
is on screen), the text it was read from, its time and confidence. Evidence hangs off
its track, so merging and splitting identities carry it along.

``identity_settings`` holds the per-index privacy switch (``enabled``: '1' or '0').

``faces.track`` links each detected face to its track, so that deleting an identity
can delete the descriptors of every face it was built from.

No semicolons inside comments or literals: the catalog splits migrations on them.
"""
from __future__ import annotations

__all__ = ["IDENTITIES_V6", "NAME_SOURCES"]

NAME_SOURCES: tuple[str, ...] = ("metadata", "caption", "speech")

IDENTITIES_V6 = """
CREATE TABLE identities (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: API ids stay unambiguous
    tenant           TEXT NOT NULL DEFAULT 'default',
    centroid         BLOB,                                -- float16 unit vector
    tracks           INTEGER NOT NULL DEFAULT 0,
    name             TEXT,
    name_source      TEXT,                                -- user | metadata | caption | speech
    name_confidence  REAL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX identities_tenant ON identities (tenant, name);

CREATE TABLE face_tracks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    video       INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    segment     INTEGER REFERENCES segments (id) ON DELETE CASCADE,   -- segment of its best face
    start       REAL NOT NULL,
    end         REAL NOT NULL,
    box         TEXT NOT NULL,                        -- JSON [x0, y0, x1, y1] in 0..1 of its best face
    quality     REAL NOT NULL,                        -- 0..1: size, sharpness, detector score
    faces       INTEGER NOT NULL,                     -- detections linked into it
    descriptor  BLOB,                                 -- float16 unit vector, NULL with identity off
    identity    INTEGER REFERENCES identities (id) ON DELETE SET NULL,
    CHECK (end >= start)
);
CREATE INDEX face_tracks_video ON face_tracks (video, start);
CREATE INDEX face_tracks_identity ON face_tracks (identity);

CREATE TABLE name_evidence (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    track       INTEGER NOT NULL REFERENCES face_tracks (id) ON DELETE CASCADE,
    video       INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,                        -- metadata | caption | speech
    confidence  REAL NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    text        TEXT NOT NULL DEFAULT '',             -- what it was read from
    t           REAL                                  -- when (caption, speech)
);
CREATE INDEX name_evidence_track ON name_evidence (track);

CREATE TABLE identity_settings (
    k  TEXT PRIMARY KEY,
    v  TEXT NOT NULL
);
INSERT INTO identity_settings (k, v) VALUES ('enabled', '1');

ALTER TABLE faces ADD COLUMN track INTEGER REFERENCES face_tracks (id) ON DELETE SET NULL;
"""
