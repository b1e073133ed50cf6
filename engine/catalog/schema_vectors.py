"""Schema version 7 (renumbered at merge if needed): where the per-modality vectors live.

Until this version the catalog kept every segment's per-modality float32 vectors for
good (``vectors``), beside the vector store's copy of the same vectors: 6 KB a segment
at d = 4 x 384, most of a 1M-segment catalog's 7.6 GB. Now a segment's rows in
``vectors`` are a *pending* copy: written in the commit transaction (so the op log can
be replayed into the vector store after a crash) and deleted once the vector store has
saved past that op and the rows are older than the retention window
(``engine.index.VECTOR_RETENTION_S``). The store's copy (float16 or float32) is then the
one authoritative copy; ``Catalog.vectors``/``vectors_many`` read it through the index.
Rows the store cannot give back (a modality of block weight 0, a lossy factory) stay.

``vector_prune`` is one row: ``seq``, the last op whose segments' rows were pruned.
A reader whose vector state is older than ``seq`` reloads the saved store instead of
replaying (the rows it would need are gone); a writer whose store is older refuses to
open (the store folder was replaced by an older copy: restore it, or re-index).
The table is created ``IF NOT EXISTS`` so that this migration does not depend on the
ones before it (v6, face identities, is another branch's).
"""
from __future__ import annotations

__all__ = ["VECTORS_V7", "VECTORS_TABLE"]

# The ``vectors`` table as schema v1 defines it: recreated by a bulk prune (Catalog.prune_vectors).
VECTORS_TABLE = """
CREATE TABLE vectors (
    segment   INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    modality  TEXT NOT NULL,
    data      BLOB NOT NULL,
    UNIQUE (segment, modality)
)
"""

VECTORS_V7 = """
CREATE TABLE IF NOT EXISTS vector_prune (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL DEFAULT 0      -- ops up to here have had their pending vector rows pruned
);
INSERT OR IGNORE INTO vector_prune (id, seq) VALUES (1, 0);
"""
