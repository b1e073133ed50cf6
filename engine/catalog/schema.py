"""Versioned SQLite schema for the catalog, applied as ordered migrations.

``PRAGMA user_version`` holds the schema version. ``MIGRATIONS[i]`` moves a
database from version ``i`` to ``i + 1``; each runs in its own transaction, so a
crash mid-migration leaves the previous version intact.
"""
from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1 = """
CREATE TABLE videos (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- shard key; never reused
    video_id      TEXT NOT NULL UNIQUE,               -- public id
    tenant        TEXT NOT NULL DEFAULT 'default',
    source        TEXT NOT NULL,                      -- path or URI exactly as given
    content_hash  TEXT NOT NULL,
    size_bytes    INTEGER,
    mtime         REAL,
    title         TEXT,
    description   TEXT,
    tags          TEXT NOT NULL DEFAULT '[]',         -- JSON list
    people        TEXT NOT NULL DEFAULT '[]',         -- JSON list
    extra         TEXT NOT NULL DEFAULT '{}',         -- JSON object: free-form sidecar fields
    duration      REAL,
    width         INTEGER,
    height        INTEGER,
    fps           REAL,
    container     TEXT,
    video_codec   TEXT,
    audio_codec   TEXT,
    has_audio     INTEGER NOT NULL DEFAULT 0,
    language      TEXT,
    language_prob REAL,
    status        TEXT NOT NULL DEFAULT 'indexed',
    stats         TEXT NOT NULL DEFAULT '{}',         -- JSON: per-stage timings, counts
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    UNIQUE (tenant, content_hash)
);
CREATE INDEX videos_tenant_source ON videos (tenant, source);

CREATE TABLE shots (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    video  INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    start  REAL NOT NULL,
    end    REAL NOT NULL
);
CREATE INDEX shots_video ON shots (video);

CREATE TABLE segments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- global vector id; never reused
    video       INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    shot        INTEGER REFERENCES shots (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    start       REAL NOT NULL,
    end         REAL NOT NULL,
    transcript  TEXT NOT NULL DEFAULT '',
    words       TEXT NOT NULL DEFAULT '[]',          -- JSON [[start, end, word], ...]
    ocr_text    TEXT NOT NULL DEFAULT '',
    labels      TEXT NOT NULL DEFAULT '[]',          -- JSON [[label, prob], ...]
    CHECK (end >= start)
);
CREATE INDEX segments_video ON segments (video, idx);

CREATE TABLE keyframes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    segment  INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    t        REAL NOT NULL,
    labels   TEXT NOT NULL DEFAULT '[]',
    vector   BLOB                                     -- float32 visual embedding
);
CREATE INDEX keyframes_segment ON keyframes (segment);

-- A rowid table on purpose: WITHOUT ROWID stores each 1.5 KB blob inside the
-- B-tree: 80k rows of 384 floats took 375 MB that way and 166 MB as a rowid table.
CREATE TABLE vectors (
    segment   INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    modality  TEXT NOT NULL,                          -- visual | speech | ocr | metadata
    data      BLOB NOT NULL,                          -- float32, L2-normalised
    UNIQUE (segment, modality)
);

-- Operation log: the commit point of every change. Vector and lexical indexes
-- are derived state that records the last seq it reflects and replays the rest.
CREATE TABLE ops (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    op         TEXT NOT NULL CHECK (op IN ('add', 'delete')),
    video      INTEGER NOT NULL,                      -- videos.id (shard key)
    segments   BLOB NOT NULL,                         -- int64 segment ids
    created_at REAL NOT NULL
);

CREATE TABLE failures (
    tenant     TEXT NOT NULL DEFAULT 'default',
    source     TEXT NOT NULL,
    code       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         REAL NOT NULL,
    PRIMARY KEY (tenant, source)
);
"""

# Later versions live beside this file, one module per feature, applied in this order.
from engine.catalog.schema_graph import GRAPH_V2  # noqa: E402  (knowledge graph: entities, edges)
from engine.catalog.schema_covers import COVERS_V3  # noqa: E402  (covers: variants, bandit events)
from engine.catalog.schema_timeline import TIMELINE_V4  # noqa: E402  (evidence timeline: phrases, text spans, frames)
from engine.catalog.schema_labels import LABELS_V5  # noqa: E402  (frame labels and faces)
from engine.catalog.schema_identities import IDENTITIES_V6  # noqa: E402  (face tracks, identities, names)
from engine.catalog.schema_vectors import VECTORS_V7  # noqa: E402  (pending vector rows, pruned once stored)

MIGRATIONS: list[str] = [_V1, GRAPH_V2, COVERS_V3, TIMELINE_V4, LABELS_V5, IDENTITIES_V6, VECTORS_V7]
SCHEMA_VERSION = len(MIGRATIONS)
