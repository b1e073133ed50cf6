"""Schema version 2: knowledge-graph tables (entities, aliases, edges with provenance).

Nodes are entities (people, titles/series, topics, organisations, places, visual
concepts) and the catalog's own videos; an edge joins two nodes, each end being
either an entity or a video. Every edge records the video whose analysis produced
it (``edges.video``), and where applicable the segment, modality, extractor and
confidence, so deleting a video (``ON DELETE CASCADE`` from ``videos`` and
``segments``) removes exactly its contributions. Entities left with no edge are
garbage-collected in the same transaction (:data:`GC_ORPHAN_ENTITIES`, run by the
catalog's delete path).

``fingerprints`` holds each video's perceptual hashes for reused-footage detection;
``graph_videos`` records which videos the graph extraction has seen (so a backfill
knows what is left); ``graph_meta.version`` is bumped on every graph write so that
readers can cache derived tables (the query-time alias dictionary).

No semicolons inside comments or literals: the catalog splits migrations on them.
"""
from __future__ import annotations

__all__ = ["GRAPH_V2", "GC_ORPHAN_ENTITIES", "ENTITY_TYPES", "RELATIONS"]

ENTITY_TYPES: tuple[str, ...] = ("person", "title", "topic", "organisation", "place", "visual_concept")
RELATIONS: tuple[str, ...] = ("appears_in", "part_of", "about", "co_occurs", "related", "reuses_footage")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


GRAPH_V2 = f"""
CREATE TABLE entities (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: API ids stay unambiguous
    tenant      TEXT NOT NULL DEFAULT 'default',
    type        TEXT NOT NULL CHECK (type IN {_in(ENTITY_TYPES)}),
    name        TEXT NOT NULL,                       -- display name as first written
    key         TEXT NOT NULL,                       -- canonical key: the normalised name
    created_at  REAL NOT NULL,
    UNIQUE (tenant, type, key)
);

CREATE TABLE entity_aliases (
    entity   INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    alias    TEXT NOT NULL,                          -- normalised (NFKC, casefold, single spaces)
    surface  TEXT NOT NULL,                          -- as written
    lang     TEXT,                                   -- zh, en ... when known
    script   TEXT NOT NULL,                          -- han | latin | other | mixed
    PRIMARY KEY (entity, alias)
);
CREATE INDEX entity_aliases_alias ON entity_aliases (alias);

CREATE TABLE edges (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL DEFAULT 'default',
    relation    TEXT NOT NULL CHECK (relation IN {_in(RELATIONS)}),
    src_entity  INTEGER REFERENCES entities (id) ON DELETE CASCADE,
    src_video   INTEGER REFERENCES videos (id) ON DELETE CASCADE,
    dst_entity  INTEGER REFERENCES entities (id) ON DELETE CASCADE,
    dst_video   INTEGER REFERENCES videos (id) ON DELETE CASCADE,
    weight      REAL NOT NULL DEFAULT 1.0,
    video       INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,   -- provenance
    segment     INTEGER REFERENCES segments (id) ON DELETE CASCADE,          -- provenance
    modality    TEXT NOT NULL,                       -- metadata | speech | ocr | visual
    extractor   TEXT NOT NULL,                       -- which extractor, with its version
    confidence  REAL NOT NULL DEFAULT 1.0 CHECK (confidence >= 0 AND confidence <= 1),
    src_start   REAL,                                -- reuses_footage: range in the src video
    src_end     REAL,
    dst_start   REAL,                                -- reuses_footage: range in the dst video
    dst_end     REAL,
    attrs       TEXT NOT NULL DEFAULT '{{}}',          -- JSON: extractor details (matched text, rate)
    created_at  REAL NOT NULL,
    CHECK ((src_entity IS NULL) <> (src_video IS NULL)),
    CHECK ((dst_entity IS NULL) <> (dst_video IS NULL))
);
CREATE INDEX edges_src_entity ON edges (src_entity) WHERE src_entity IS NOT NULL;
CREATE INDEX edges_dst_entity ON edges (dst_entity) WHERE dst_entity IS NOT NULL;
CREATE INDEX edges_src_video ON edges (src_video) WHERE src_video IS NOT NULL;
CREATE INDEX edges_dst_video ON edges (dst_video) WHERE dst_video IS NOT NULL;
CREATE INDEX edges_video ON edges (video);
CREATE INDEX edges_segment ON edges (segment) WHERE segment IS NOT NULL;
CREATE INDEX edges_tenant_relation ON edges (tenant, relation);

-- Entity-video incidence whichever way an edge points (appears_in: person to video,
-- part_of and about: video to title or topic).
CREATE VIEW entity_video AS
    SELECT id AS edge, tenant, src_entity AS entity, dst_video AS video_key, relation, weight, confidence,
           video, segment, modality, extractor
    FROM edges WHERE src_entity IS NOT NULL AND dst_video IS NOT NULL
    UNION ALL
    SELECT id, tenant, dst_entity, src_video, relation, weight, confidence, video, segment, modality, extractor
    FROM edges WHERE dst_entity IS NOT NULL AND src_video IS NOT NULL;

CREATE TABLE fingerprints (
    video       INTEGER PRIMARY KEY REFERENCES videos (id) ON DELETE CASCADE,
    algo        TEXT NOT NULL,                       -- hash kind, crop variants, sampling rate
    times       BLOB NOT NULL,                       -- float32 (n,) frame times in seconds
    hashes      BLOB NOT NULL,                       -- uint64 (n, variants) perceptual hashes
    created_at  REAL NOT NULL
);

CREATE TABLE graph_videos (
    video       INTEGER PRIMARY KEY REFERENCES videos (id) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    reason      TEXT,
    extractor   TEXT NOT NULL,
    stats       TEXT NOT NULL DEFAULT '{{}}',
    updated_at  REAL NOT NULL
);

CREATE TABLE graph_meta (
    k  TEXT PRIMARY KEY,
    v  INTEGER NOT NULL
);
INSERT INTO graph_meta (k, v) VALUES ('version', 0);
"""

# Entities with no edge left (their last video was deleted). Run inside the delete
# transaction, so a reader never sees an entity that leads nowhere.
GC_ORPHAN_ENTITIES = (
    "DELETE FROM entities WHERE NOT EXISTS (SELECT 1 FROM edges WHERE edges.src_entity = entities.id)"
    " AND NOT EXISTS (SELECT 1 FROM edges WHERE edges.dst_entity = entities.id)"
)
