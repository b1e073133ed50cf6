"""Schema version 3: covers (variants, scores) and the bandit's impressions and clicks.

- ``covers``: one row per cover variant of a video: the frame time, its quality
  score with sub-scores and reasons (JSON), the rendered files, its content
  embedding, and the running impression and click counts that Thompson sampling
  reads. Counts are updated with ``SET n = n + 1`` inside the transaction that logs
  the event, so concurrent feedback is never lost.
- ``cover_impressions``: every cover served, with the policy that chose it, the
  probability it had of being chosen (for replay / inverse-propensity evaluation),
  the context vector (for LinUCB) and, once clicked, the click time.
- ``cover_linucb``: the per-variant LinUCB sufficient statistics (A = I + sum x x^T,
  b = sum r x), updated in the same transaction as the event that changes them.

Everything hangs off ``videos(id)`` with ``ON DELETE CASCADE``: deleting a video drops
its covers and their history.
"""
from __future__ import annotations

__all__ = ["COVERS_V3"]

COVERS_V3 = """
CREATE TABLE covers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,   -- variant id; never reused
    video        INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    rank         INTEGER NOT NULL,                    -- 0 = first picked (best by quality)
    t_ms         INTEGER NOT NULL,                    -- frame time in the video, milliseconds
    score        REAL NOT NULL,                       -- quality score in [0, 1]
    parts        TEXT NOT NULL DEFAULT '{}',          -- JSON {part: sub-score}
    reasons      TEXT NOT NULL DEFAULT '[]',          -- JSON [sentence, ...]
    box          TEXT NOT NULL DEFAULT '[]',          -- JSON [x0, y0, x1, y1] without letterbox bars
    faces        TEXT NOT NULL DEFAULT '[]',          -- JSON [[x0, y0, x1, y1, confidence], ...]
    files        TEXT NOT NULL DEFAULT '{}',          -- JSON {aspect: path relative to the index dir}
    embedding    BLOB,                                -- float32 content embedding (visual space)
    impressions  INTEGER NOT NULL DEFAULT 0,
    clicks       INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    UNIQUE (video, t_ms),
    CHECK (clicks >= 0 AND impressions >= 0)
);
CREATE INDEX covers_video ON covers (video, rank);

CREATE TABLE cover_impressions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token       TEXT NOT NULL UNIQUE,                 -- the impression id given to clients
    cover       INTEGER NOT NULL REFERENCES covers (id) ON DELETE CASCADE,
    video       INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    tenant      TEXT NOT NULL DEFAULT 'default',
    policy      TEXT NOT NULL,                        -- thompson | linucb | random | ...
    propensity  REAL,                                 -- P(policy picks this cover | state)
    context     BLOB,                                 -- float32 LinUCB features, NULL without context
    user_key    TEXT,
    at          REAL NOT NULL,
    clicked_at  REAL
);
CREATE INDEX cover_impressions_cover ON cover_impressions (cover, clicked_at);
CREATE INDEX cover_impressions_video ON cover_impressions (video, at);

CREATE TABLE cover_linucb (
    cover  INTEGER PRIMARY KEY REFERENCES covers (id) ON DELETE CASCADE,
    dim    INTEGER NOT NULL,
    a      BLOB NOT NULL,                             -- float64 (dim, dim)
    b      BLOB NOT NULL,                             -- float64 (dim,)
    n      INTEGER NOT NULL DEFAULT 0
);
"""
