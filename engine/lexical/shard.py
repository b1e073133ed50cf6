"""A BM25 shard in RAM that scores with global statistics (the distributed-frequencies
search of ``query.shards``).

A ``LexicalShard`` holds the segments of some videos in a tantivy index with no path
(RAM), built from the same ``LexicalDoc`` rows as the saved lexical index
(``engine.index.VideoIndex.lexical_docs``; the saved index's format does not change).
A sharded search runs in two phases over every shard:

1. ``stats(query)``: this shard's ``Bm25Stats`` for the query's (field, term) clauses
   (live documents, tokens per field, document frequencies); the caller sums them.
2. ``search(query, k, stats)``: the shard's top ``k`` scored with the summed (global)
   statistics (``engine.lexical.bm25``), so that the shards' lists merge by score into
   the single-index list.

Tantivy scores with its own statistics only, so phase 2 retrieves candidates with
tantivy, each (field, term) clause boosted by global weight / local weight (so that the
local score differs from the global one only by the average field lengths), and
computes each candidate's global score from its term frequencies and field lengths,
read from the candidate's tokenised text, which the shard stores (a RAM shard only: the
lexical index on disk stores no text and keeps its format). A bound makes the top ``k`` exact: a clause's score with
average length ``a_G`` is at most ``max(1, a_G / a_L)`` times its score with ``a_L``
(the normalisation ``1 - b + b * dl / avg`` changes by at most that ratio), so no
document outside the fetched candidates can score more than ``rho`` (the largest such
ratio over the searched fields) times the lowest fetched local score. Candidates are
rescored in local order until that bound falls below the ``k``-th global score; when it
does not within the fetch, the shard fetches four times more and goes on.

Deletions: tantivy counts deleted documents in its statistics until a merge drops them,
which would make the local statistics unknowable. So the shard never deletes from
tantivy: a deleted video's documents stay there and are excluded from every search
(``MustNot`` on their video keys), and the shard's live statistics subtract them (the
document frequencies through a count of the hidden documents' terms, read from their
stored text when the video is deleted).
``deleted_docs`` says how many it carries; the owner rebuilds the shard when they grow.
"""
from __future__ import annotations

import heapq
import threading
from collections import Counter
from typing import Any, Sequence

import tantivy

from engine.errors import CorruptIndexError, InputError
from engine.lexical.base import FIELDS, LexicalDoc, LexicalHit
from engine.lexical.bm25 import Bm25Stats, ClauseWeights, TermMatch
from engine.lexical.tantivy_index import (
    ID_FIELD,
    MAX_K,
    VIDEO_KEY_FIELD,
    LexicalQuery,
    bm25_query,
    doc_tokens,
    lexical_schema,
    tantivy_document,
)

__all__ = ["LexicalShard", "SLACK"]

# tantivy's arena minimum for one indexing thread
_WRITER_HEAP = 15_000_000
# float32 rounding of the boosted local scores (a few ulps) against the bound's ratio
SLACK = 1.0 + 1e-4


class LexicalShard:
    """The BM25 shard of some videos, in RAM. Not persistent: its owner builds it from
    the catalog and keeps it current (``add``, ``delete_video``). Thread-safe."""

    def __init__(self) -> None:
        # The text stored (the shard is never saved, so the index on disk keeps its format).
        self._schema = lexical_schema(stored_text=True)
        self._index = tantivy.Index(self._schema)  # no path: in RAM
        self._writer = self._index.writer(heap_size=_WRITER_HEAP, num_threads=1)
        self._lock = threading.RLock()
        self._dirty = False
        self._ids: set[int] = set()  # every doc id tantivy holds (deleted ones too)
        self._tantivy_docs = 0  # tantivy's N: documents ever added
        self._tantivy_tokens = {f: 0 for f in FIELDS}
        self._videos: dict[int, list[int]] = {}  # live video key -> [docs, tokens of each field]
        self._deleted: dict[int, list[int]] = {}  # deleted video key -> the same counts
        self._deleted_df: Counter[tuple[str, str]] = Counter()  # (field, term) -> hidden docs with it

    # -- writes --------------------------------------------------------------------------
    def add(self, docs: Sequence[LexicalDoc]) -> int:
        """Index ``docs`` (a doc id the shard holds already is skipped: replays are
        harmless; a deleted video's key cannot come back: catalog keys are never
        reused). Returns how many were added."""
        prepared = [(d, doc_tokens(d)) for d in docs]  # validate the batch before any write
        with self._lock:
            added = 0
            for doc, tokens in prepared:
                if doc.id in self._ids:
                    continue
                if doc.video_key in self._deleted:
                    raise InputError(f"video {doc.video_key} was deleted from this BM25 shard; it cannot be re-added")
                self._writer.add_document(tantivy_document(doc, tokens))
                self._ids.add(doc.id)
                counts = self._videos.setdefault(doc.video_key, [0] * (1 + len(FIELDS)))
                counts[0] += 1
                self._tantivy_docs += 1
                for j, name in enumerate(FIELDS, 1):
                    n = len(tokens.get(name, ()))
                    counts[j] += n
                    self._tantivy_tokens[name] += n
                added += 1
            self._dirty = self._dirty or added > 0
            return added

    def delete_video(self, video_key: int) -> None:
        """Hide every doc of ``video_key`` from searches and statistics (a no-op when the
        shard holds none)."""
        with self._lock:
            key = int(video_key)
            counts = self._videos.get(key)
            if counts is None:
                return
            searcher = self._searcher()  # commits the video's buffered docs, if any
            hits = searcher.search(tantivy.Query.term_query(self._schema, VIDEO_KEY_FIELD, key),
                                   limit=counts[0], count=False).hits
            if len(hits) != counts[0]:
                raise CorruptIndexError(f"BM25 shard holds {len(hits)} docs of video {key}, expected {counts[0]}",
                                        hint="restart the shard group (it rebuilds its shard from the catalog)")
            for _, addr in hits:  # the hidden docs' terms, so that statistics need no search
                stored = searcher.doc(addr).to_dict()
                for name in FIELDS:
                    if stored.get(name):
                        self._deleted_df.update((name, t) for t in set(stored[name][0].split(" ")))
            del self._videos[key]
            self._deleted[key] = counts

    def _searcher(self) -> tantivy.Searcher:
        with self._lock:
            if self._dirty:
                self._writer.commit()
                self._index.reload()
                self._dirty = False
            return self._index.searcher()

    # -- counts --------------------------------------------------------------------------
    @property
    def num_docs(self) -> int:
        """Live documents."""
        with self._lock:
            return self._tantivy_docs - self.deleted_docs

    @property
    def deleted_docs(self) -> int:
        """Documents of deleted videos that tantivy still holds (hidden)."""
        with self._lock:
            return sum(c[0] for c in self._deleted.values())

    def _local_stats(self, query: LexicalQuery, searcher: tantivy.Searcher) -> Bm25Stats:
        """What tantivy itself scores with: every document it holds, deleted ones too."""
        df = {(f, t): int(searcher.doc_freq(f, t)) for f, t in query.clauses}
        return Bm25Stats(self._tantivy_docs, dict(self._tantivy_tokens), df)

    def stats(self, query: LexicalQuery) -> Bm25Stats:
        """Phase 1: this shard's live statistics for ``query``'s clauses."""
        with self._lock:  # counts and searcher of one state
            local = self._local_stats(query, self._searcher())
            gone = [sum(c[j] for c in self._deleted.values()) for j in range(1 + len(FIELDS))]
            df = {c: n - self._deleted_df.get(c, 0) for c, n in local.doc_freq.items()}
        tokens = {f: local.total_tokens[f] - gone[j] for j, f in enumerate(FIELDS, 1)}
        return Bm25Stats(local.num_docs - gone[0], tokens, df)

    # -- phase 2 ---------------------------------------------------------------------------
    def search(self, query: LexicalQuery, k: int, stats: Bm25Stats | None = None) -> list[LexicalHit]:
        """Phase 2: the top ``k`` live docs of this shard scored with ``stats`` (the sum
        of every shard's ``stats``; None: this shard's own, when it is the only one), by
        descending score, ties by id."""
        if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= MAX_K):
            raise InputError(f"k must be an int in 1..{MAX_K}, got {k!r}")
        if not query.terms:
            return []
        if stats is None:
            stats = self.stats(query)
        with self._lock:  # counts and searcher of one state
            searcher = self._searcher()
            deleted = sorted(self._deleted)
            own = self._local_stats(query, searcher)
        if not deleted and _same(own, stats, query):  # tantivy's own scores are the wanted ones
            return self._tantivy_top(searcher, bm25_query(self._schema, query), k)
        local = ClauseWeights(own, query.clauses)
        wanted = ClauseWeights(stats, query.clauses)
        boosts = {c: float(wanted.weight[c] / local.weight[c]) for c in query.clauses}
        ratios = [float(stats.avgdl(f)) / a for f in query.names if (a := float(own.avgdl(f))) > 0]
        rho = SLACK * max([1.0, *ratios])
        retrieve = bm25_query(self._schema, query, boosts)
        if deleted:
            hidden = tantivy.Query.term_set_query(self._schema, VIDEO_KEY_FIELD, deleted)
            retrieve = tantivy.Query.boolean_query([(tantivy.Occur.Must, retrieve), (tantivy.Occur.MustNot, hidden)])
        scored: dict[int, float] = {}  # id -> global score, kept across refetches
        fetch = max(2 * k, k + 16)
        while True:
            hits = searcher.search(retrieve, limit=fetch, count=False).hits
            if self._rescore(searcher, query, hits, (local, wanted), k, rho, scored) or len(hits) < fetch:
                break
            fetch *= 4
        top = heapq.nsmallest(k, scored.items(), key=lambda kv: (-kv[1], kv[0]))
        return [LexicalHit(i, s) for i, s in top]

    def _tantivy_top(self, searcher: tantivy.Searcher, query: tantivy.Query, k: int) -> list[LexicalHit]:
        """Tantivy's top ``k`` with its own scores, ties by id (the whole tie at the k-th
        score is fetched, so that the cut takes the lowest ids)."""
        fetch = k + 16
        while True:
            hits = searcher.search(query, limit=fetch, count=False).hits
            if len(hits) < fetch or hits[-1][0] < hits[k - 1][0]:
                break
            fetch *= 4
        ids = searcher.fast_field_values(ID_FIELD, [addr for _, addr in hits])
        if any(i is None for i in ids):
            raise CorruptIndexError("a BM25 shard hit has no id", hint="restart the shard group")
        top = heapq.nsmallest(k, zip(ids, (h[0] for h in hits)), key=lambda x: (-x[1], x[0]))
        return [LexicalHit(int(i), float(s)) for i, s in top]

    def _rescore(self, searcher: tantivy.Searcher, query: LexicalQuery, hits: list,
                 weights: tuple[ClauseWeights, ClauseWeights], k: int, rho: float, scored: dict[int, float]) -> bool:
        """Global scores (into ``scored``) of ``hits``, in descending local score, until
        the bound ``rho * local`` of the next hit (and so of every doc after it) falls
        below the ``k``-th global score: then the top ``k`` is exact for the whole shard
        (True). False when the hits ran out first."""
        if not hits:
            return True
        wanted = weights[1]
        ids = searcher.fast_field_values(ID_FIELD, [addr for _, addr in hits])
        best: list[float] = []  # the k best global scores so far, a min-heap
        for (local_score, addr), doc_id in zip(hits, ids):
            if len(best) == k and rho * local_score < best[0]:
                return True
            if doc_id is None:
                raise CorruptIndexError("a BM25 shard hit has no id", hint="restart the shard group")
            score = scored.get(int(doc_id))
            if score is None:
                score = scored[int(doc_id)] = wanted.score(_matches(searcher.doc(addr).to_dict(), query))
            if len(best) < k:
                heapq.heappush(best, score)
            elif score > best[0]:
                heapq.heapreplace(best, score)
        return False

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {"docs": self._tantivy_docs - self.deleted_docs, "deleted_docs": self.deleted_docs,
                    "videos": len(self._videos), "deleted_videos": len(self._deleted),
                    "tokens": dict(self._tantivy_tokens)}

    def close(self) -> None:
        with self._lock:
            self._writer.rollback()
            self._writer.wait_merging_threads()


def _same(a: Bm25Stats, b: Bm25Stats, query: LexicalQuery) -> bool:
    """Whether ``a`` and ``b`` score ``query`` alike (same documents, tokens of the
    searched fields and document frequencies of its clauses)."""
    return (a.num_docs == b.num_docs and all(a.total_tokens.get(f, 0) == b.total_tokens.get(f, 0) for f in query.names)
            and all(a.doc_freq.get(c, 0) == b.doc_freq.get(c, 0) for c in query.clauses))


def _matches(stored: dict[str, list[str]], query: LexicalQuery) -> list[TermMatch]:
    """The query's (field, term) clauses that a doc's stored token text matches, with the
    term's frequency and the field's length."""
    out = []
    for name in query.names:
        text = stored.get(name)
        if not text:
            continue
        tokens = text[0].split(" ")
        counts = Counter(tokens)
        out.extend(TermMatch(name, t, counts[t], len(tokens)) for t in query.terms if t in counts)
    return out
