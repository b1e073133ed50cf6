"""A query in, ranked timestamped moments out.

parse -> intent (per-modality weights) -> retrieve (joint dense with the intent's
weights, one-block dense per strong modality, BM25 over the text fields) -> fuse
(RRF or normalised convex combination) -> rerank (several keyframes, modality
agreement, exact phrases, fuzzy on-screen text, temporal neighbours) -> filters and
negations -> moments (adjacent segments merged, a cap per video) -> explanations.

Scores are "fair" to missing modalities: a segment's dense score is the weighted
mean of the cosines of the modalities it HAS (sum w_m cos_m / sum w_m over present
m), so a silent video is not pushed down for lacking speech.
"""
from __future__ import annotations

import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone

import numpy as np

from engine.catalog import MODALITIES, SegmentRecord, VideoRecord
from engine.errors import InputError
from engine.index import VideoIndex
from engine.lexical import tokenize
from engine.vectors import SearchParams
from query.fusion import convex_combination, reciprocal_rank_fusion, rrf_top_ids
from query.entities import EntityRecognizer
from query.intent import IntentClassifier, get_intent_classifier
from query.parse import ParsedQuery, parse

__all__ = ["SearchOptions", "Hit", "SearchResponse", "Searcher", "DEFAULT_FUSION"]

LEXICAL_FIELDS_FOR = {"visual": ("labels",), "speech": ("transcript",), "ocr": ("ocr",), "metadata": ("metadata",)}

# Fusion per intent, chosen on the quality benchmark (benchmarks/bench_quality.py;
# see README "Benchmarks"). "convex" weights: share of the dense score vs BM25.
DEFAULT_FUSION: dict[str, tuple[str, float]] = {
    "visual": ("convex", 0.7),
    "speech": ("convex", 0.7),
    "ocr": ("convex", 0.7),
    "entity": ("convex", 0.7),
    "technical": ("convex", 0.7),
}
# Measured on shared/media (README "Benchmarks"): convex at 0.7 beat RRF and convex at
# 0.5/0.9 overall and was at least as good as dense or BM25 alone on every kind; the
# reranker below changed no rank-1 result and moved one tail hit, so it is off by
# default (SearchOptions(rerank=True) turns it on).

# A modality with at least this intent weight also gets its own one-block dense run.
ONE_BLOCK_MIN_WEIGHT = 0.3
# ... and below this one: a block carrying most of the weight already ranks the joint
# query, so its own run repeats it. Skipping it halves the vector search of a confident
# query (two runs -> one); quality over shared/media was unchanged (MRR 0.710, R@1 0.600).
ONE_BLOCK_MAX_WEIGHT = 0.7
_VIDEO_CACHE_MAX = 100_000  # decoded video records kept between searches
# Refine depth of the dense runs: candidates = k * this. The engine's default (8) is
# sized for a precise top 10; a search asks for ~100 candidates and rescores them
# exactly, so it only needs the true top 10 inside them. Likewise the share of each
# shard's IVF lists a run probes (the engine's default is 1/6). Measured at 1M segments
# (synthetic, 60 noisy queries, exact search as truth), share of the true top 10 inside
# the 100 candidates: joint queries 1.000 with the engine defaults and with these;
# one-block queries 0.930 with the defaults, 0.927 with these; vector time -30%.
DENSE_K_FACTOR = 4
DENSE_PROBE_SHARE = 1 / 12

# Rerank feature weights (added to the fused score of the top candidates).
RERANK = {
    "keyframe_mix": 0.5,  # visual cosine = mix of the segment mean and its best keyframe
    "neighbour": 0.10,  # x the best fused score of an adjacent segment of the same video
    "agreement": 0.03,  # x (number of weighted modalities with cosine > 0.35) - 1
    "phrase": 0.25,  # a quoted phrase occurs in the transcript or on-screen text
    "ocr_fuzzy": 0.15,  # x character-trigram containment of the query in OCR text x ocr weight
}


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    fusion: str = "auto"  # auto (per intent) | rrf | convex
    dense_share: float | None = None  # convex: weight of dense vs BM25 (None: per intent)
    rerank: bool = False
    per_video: int = 1  # at most this many moments per video
    tenant: str | None = None
    candidates: int = 100
    retrievers: tuple[str, ...] = ("dense", "bm25")
    params: SearchParams | None = None  # nprobe / efSearch / k_factor for the vector store
    merge_ratio: float = 0.8  # neighbours within this share of a moment's best join it

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 1000:
            raise InputError(f"k must be in 1..1000, got {self.k}")
        if self.fusion not in ("auto", "rrf", "convex"):
            raise InputError(f"fusion must be auto, rrf or convex, got {self.fusion!r}")
        if self.per_video < 1:
            raise InputError(f"per_video must be >= 1, got {self.per_video}")
        bad = set(self.retrievers) - {"dense", "bm25"}
        if bad or not self.retrievers:
            raise InputError(f"retrievers must be a non-empty subset of dense, bm25; got {self.retrievers}")


@dataclass
class Hit:
    video_id: str
    source: str
    start: float
    end: float
    score: float
    matched: dict[str, float]
    snippet: str
    title: str | None = None
    segment_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id, "source": self.source, "start": round(self.start, 3),
            "end": round(self.end, 3), "score": round(float(self.score), 6),
            "matched": {k: round(float(v), 4) for k, v in self.matched.items()}, "snippet": self.snippet,
            "title": self.title, "segment_ids": self.segment_ids,
        }


@dataclass
class SearchResponse:
    query: str
    intent: dict
    took_ms: float
    hits: list[Hit]
    parsed: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"query": self.query, "intent": self.intent, "took_ms": round(self.took_ms, 2),
                "hits": [h.to_dict() for h in self.hits], "parsed": self.parsed}


@dataclass
class _Cand:
    id: int
    seg: SegmentRecord | None = None
    cos: dict[str, float] = field(default_factory=dict)
    dense: float = 0.0
    bm25: float = 0.0
    fused: float = 0.0
    score: float = 0.0
    phrase: bool = False
    ocr_fuzzy: float = 0.0


class Searcher:
    """Holds the encoders and classifier for one open index; thread-safe searches."""

    def __init__(self, index: VideoIndex, *, intent: IntentClassifier | None = None,
                 intent_cascade: bool = True, fast_intent: IntentClassifier | None = None) -> None:
        from engine.models.registry import get_image_encoder, get_text_encoder

        self.index = index
        self.text_enc = get_text_encoder(index.config.text_encoder)
        self.image_enc = get_image_encoder(index.config.image_encoder, **index.config.image_options)
        self.intent = intent or IntentClassifier.default()
        # The intent cascade (IntentClassifier.classify_cascade): a head over the
        # retrieval encoder's own query vector decides when it is sure, so most
        # searches skip the intent model's transformer pass. Only with the default
        # classifier, and only when the index's text encoder differs from its encoder.
        # ``fast_intent`` may be given (it must be a head over index.config.text_encoder).
        self.fast_intent: IntentClassifier | None = fast_intent if intent_cascade else None
        if (self.fast_intent is None and intent is None and intent_cascade
                and index.config.text_encoder != self.intent.encoder_name):
            self.fast_intent = get_intent_classifier(index.config.text_encoder)
        self.entities = EntityRecognizer(index.catalog)  # knowledge-graph names in queries
        # Video rows never change once committed (a re-index commits a new key), so a
        # search reuses decoded records until the index applies another op. Decoding
        # ~100 rows of JSON fields was ~6% of a search at 1M segments.
        self._videos: dict[int, VideoRecord] = {}
        self._videos_seq = -1
        self._videos_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load every model a search touches (encoders, intent head, Chinese
        dictionary), so that the first real query does not pay for it."""
        self._query_blocks("warm up", None)
        self.intent.classify("warm up")
        if self.fast_intent is not None:
            self.fast_intent.probabilities_for_vectors(self._query_blocks("warm up", None)["speech"][None, :])
        tokenize("预热 warm up")

    # -- encoding --------------------------------------------------------------------
    def _query_blocks(self, text: str, image: np.ndarray | None) -> dict[str, np.ndarray]:
        blocks: dict[str, np.ndarray] = {}
        if text:
            tv = self.text_enc.encode([text], is_query=True)[0]
            for m in ("speech", "ocr", "metadata"):
                blocks[m] = tv
            if self.image_enc.info.name.endswith(self.text_enc.info.name) and self.image_enc.info.dim == tv.shape[0]:
                # The offline visual encoder lives in the text encoder's space: reuse.
                blocks["visual"] = tv
            else:
                blocks["visual"] = self.image_enc.encode_text([text])[0]
        if image is not None:
            iv = self.image_enc.encode_images([image])[0]
            blocks["visual"] = iv if "visual" not in blocks else _unit(blocks["visual"] + 2.0 * iv)
        return blocks

    # -- main entry --------------------------------------------------------------------
    def search(self, query: str, *, image: np.ndarray | None = None,
               options: SearchOptions | None = None) -> SearchResponse:
        t0 = time.perf_counter()
        opts = options or SearchOptions()
        parsed = parse(query)
        self.index.sync()  # see videos committed since this reader opened
        text = parsed.search_text
        if not text and image is None:
            hits = self._filter_only(parsed, opts)
            return SearchResponse(query, {"label": "filter", "confidence": 1.0, "weights": {}},
                                  (time.perf_counter() - t0) * 1000, hits, parsed.to_dict())
        ent = self.entities.recognise(text, opts.tenant) if text else None  # None: names no known entity
        # Encoders first: the retrieval encoder's query vector also feeds the fast
        # intent head. Sequential on purpose: the intent model and the encoders in two
        # threads oversubscribe the cores (both use intra-op pools) and were slower
        # (measured: 190 ms vs 85 ms a query on 2 cores).
        qblocks = self._query_blocks(text, image)
        if text:
            if self.fast_intent is not None and "speech" in qblocks:
                intent = self.intent.classify_cascade(parsed, self.fast_intent, qblocks["speech"])
            else:
                intent = self.intent.classify(text, parsed=parsed)
            if ent is not None:
                intent = ent.apply_intent(intent, self.intent)
            weights = dict(intent.weights)
            intent_dict = intent.to_dict()
            label = intent.label
        else:
            weights = {"visual": 1.0, "speech": 0.0, "ocr": 0.0, "metadata": 0.0}
            intent_dict = {"label": "image", "confidence": 1.0, "weights": weights}
            label = "visual"
        if image is not None and text:
            weights["visual"] = max(weights.get("visual", 0.0), 0.5)
        weights = {m: float(weights.get(m, 0.0)) for m in MODALITIES if m in qblocks}
        fusion, share = self._fusion_for(label, opts)
        intent_dict = {**intent_dict, "fusion": fusion, "dense_share": share}

        ncand = opts.candidates * (4 if not parsed.filters.is_empty or parsed.negated_terms else 1)
        cands: dict[int, _Cand] = {}
        dense_runs: list[list[tuple[int, float]]] = []
        if "dense" in opts.retrievers:
            dense_runs = self._dense(qblocks, weights, ncand, opts.params)
            for run in dense_runs:
                for i, _ in run:
                    cands.setdefault(i, _Cand(i))
        bm25_run: list[tuple[int, float]] = []
        if "bm25" in opts.retrievers and text:
            fields = sorted({f for m, w in weights.items() if w > 0.05 for f in LEXICAL_FIELDS_FOR[m]})
            hits = self.index.lexical.search(ent.expand(text) if ent else text, k=ncand, fields=fields or None,
                                             phrases=list(parsed.phrases))
            bm25_run = [(h.id, float(h.score)) for h in hits]
            for i, s in bm25_run:
                cands.setdefault(i, _Cand(i)).bm25 = s
        if not cands:
            return SearchResponse(query, intent_dict, (time.perf_counter() - t0) * 1000, [], parsed.to_dict())
        if len(cands) > ncand:
            # The union of up to five dense runs and BM25 can be several hundred ids;
            # exact per-modality scoring reads their vectors from the catalog, the
            # costliest step at scale. Keep the best ``ncand`` by a cheap RRF of the runs.
            runs_all = [r for r in dense_runs if r] + ([bm25_run] if bm25_run else [])
            keep = set(rrf_top_ids(runs_all, k=60, top=ncand))
            cands = {i: c for i, c in cands.items() if i in keep}

        if ent is not None:  # the entity's moments compete even if no retriever found them
            intent_dict = {**intent_dict, "entities": ent.to_dict()["entities"]}
            for i in ent.candidate_segments(self.index.catalog):
                cands.setdefault(i, _Cand(i))
        segs = self.index.catalog.get_segments(list(cands))
        cands = {i: c for i, c in cands.items() if i in segs}
        for i, c in cands.items():
            c.seg = segs[i]
        videos = self._videos_by_keys({c.seg.video for c in cands.values()})
        cands = {i: c for i, c in cands.items() if self._keep(c.seg, videos.get(c.seg.video), parsed, opts)}
        if not cands:
            return SearchResponse(query, intent_dict, (time.perf_counter() - t0) * 1000, [], parsed.to_dict())

        if parsed.phrases:
            # Quoted phrases must occur in speech or on-screen text. OCR misreads can
            # make that impossible; then the phrase falls back to a ranking signal.
            phrases = [_norm(p) for p in parsed.phrases]
            for c in cands.values():
                hay = _norm(c.seg.transcript + " " + c.seg.ocr_text)
                c.phrase = all(p in hay for p in phrases)
            if any(c.phrase for c in cands.values()):
                cands = {i: c for i, c in cands.items() if c.phrase}
            else:
                intent_dict = {**intent_dict, "phrase_fallback": True}
        self._exact_cosines(list(cands.values()), qblocks, weights, keyframes=opts.rerank)
        dense_run = sorted(((i, c.dense) for i, c in cands.items()), key=lambda x: (-x[1], x[0]))
        runs, run_weights = [], []
        if "dense" in opts.retrievers:
            runs.append(dense_run)
            run_weights.append(share)
        if bm25_run:
            runs.append([(i, s) for i, s in bm25_run if i in cands])
            run_weights.append(1.0 - share if "dense" in opts.retrievers else 1.0)
        if len(runs) == 1:
            fused = dict(runs[0])
        elif fusion == "rrf":
            fused = dict(reciprocal_rank_fusion(runs, k=60))
        else:
            fused = dict(convex_combination(runs, weights=run_weights, normalisation="minmax"))
        for i, c in cands.items():
            c.fused = float(fused.get(i, 0.0))
            c.score = c.fused
        if ent is not None:
            ent.boost(cands.values())
        if opts.rerank:
            self._rerank(cands, parsed, text, weights, label)
        hits = self._moments(cands, videos, weights, parsed, text, opts)
        return SearchResponse(query, intent_dict, (time.perf_counter() - t0) * 1000, hits, parsed.to_dict())

    def _videos_by_keys(self, keys: set[int]) -> dict[int, VideoRecord]:
        with self._videos_lock:
            if self._videos_seq != self.index.seq or len(self._videos) > _VIDEO_CACHE_MAX:
                self._videos = {}
                self._videos_seq = self.index.seq
            cache = self._videos
            missing = [k for k in keys if k not in cache]
        if missing:
            fetched = self.index.catalog.videos_by_keys(missing)
            with self._videos_lock:
                if cache is self._videos:
                    cache.update(fetched)
        else:
            fetched = {}
        return {k: v for k in keys if (v := cache.get(k) or fetched.get(k)) is not None}

    def _fusion_for(self, label: str, opts: SearchOptions) -> tuple[str, float]:
        method, share = DEFAULT_FUSION.get(label, ("convex", 0.8))
        if opts.fusion != "auto":
            method = opts.fusion
        if opts.dense_share is not None:
            share = opts.dense_share
        return method, share

    # -- retrieval ---------------------------------------------------------------------
    def _dense(self, qblocks: dict[str, np.ndarray], weights: dict[str, float], n: int,
               params: SearchParams | None) -> list[list[tuple[int, float]]]:
        queries = [self.index.joint_vector(qblocks, weights)]
        # One-block queries for every modality that carries weight: per-modality
        # retrieval over the same joint index (other blocks zero), so a strong signal
        # in one modality is not crowded out of the joint top-n.
        for m, w in weights.items():
            if ONE_BLOCK_MIN_WEIGHT <= w < ONE_BLOCK_MAX_WEIGHT and m in qblocks:
                queries.append(self.index.joint_vector({m: qblocks[m]}, {m: 1.0}))
        p = replace(params, k=n) if params else SearchParams(k=n, k_factor=DENSE_K_FACTOR, probe_share=DENSE_PROBE_SHARE)
        scores, ids = self.index.search_vectors(np.stack(queries), p)
        runs = []
        for row_s, row_i in zip(scores, ids):
            runs.append([(int(i), float(s)) for s, i in zip(row_s, row_i) if i >= 0])
        return runs

    def _exact_cosines(self, cands: list[_Cand], qblocks: dict[str, np.ndarray], weights: dict[str, float],
                       *, keyframes: bool) -> None:
        ids = [c.id for c in cands]
        by_id = {c.id: c for c in cands}
        mods = [m for m in MODALITIES if m in qblocks]
        for m, vecs in self.index.modality_vectors(ids, mods).items():
            if not vecs:
                continue
            sids = list(vecs)
            sims = np.stack([vecs[i] for i in sids]) @ qblocks[m]
            for sid, sim in zip(sids, sims.tolist()):
                by_id[sid].cos[m] = sim
        if keyframes and "visual" in qblocks:
            # Several keyframes per segment: the best-matching frame, not only the mean.
            for sid, frames in self.index.catalog.keyframe_vectors(ids).items():
                best = max(float(v @ qblocks["visual"]) for _, v in frames)
                c = by_id[sid]
                if "visual" in c.cos:
                    mix = RERANK["keyframe_mix"]
                    c.cos["visual"] = (1 - mix) * c.cos["visual"] + mix * best
        for c in cands:
            num = sum(weights[m] * c.cos[m] for m in c.cos if weights.get(m, 0) > 0)
            den = sum(weights[m] for m in c.cos if weights.get(m, 0) > 0)
            c.dense = num / den if den > 0 else 0.0

    # -- filters -----------------------------------------------------------------------
    def _keep(self, seg: SegmentRecord, video: VideoRecord | None, parsed: ParsedQuery, opts: SearchOptions) -> bool:
        if video is None:
            return False
        if opts.tenant is not None and video.tenant != opts.tenant:
            return False
        if not _video_passes(video, parsed):
            return False
        if parsed.negated_terms or parsed.negated_phrases:
            hay = _norm(" ".join([seg.transcript, seg.ocr_text, " ".join(str(x[0]) for x in seg.labels),
                                  video.title or "", video.description or "", " ".join(video.tags)]))
            toks = set(tokenize(hay))
            if any(t in toks for term in parsed.negated_terms for t in tokenize(term)):
                return False
            if any(_norm(p) in hay for p in parsed.negated_phrases):
                return False
        return True

    def _filter_only(self, parsed: ParsedQuery, opts: SearchOptions) -> list[Hit]:
        if parsed.is_empty:
            raise InputError("empty query", hint="type words to search for, or filters such as duration>10s")
        hits = []
        for v in self.index.catalog.list_videos(tenant=opts.tenant, limit=100_000):
            if _video_passes(v, parsed):
                hits.append(Hit(v.video_id, v.source, 0.0, float(v.duration or 0.0), 1.0, {}, v.title or "",
                                v.title))
                if len(hits) >= opts.k:
                    break
        return hits

    # -- rerank ------------------------------------------------------------------------
    def _rerank(self, cands: dict[int, _Cand], parsed: ParsedQuery, text: str, weights: dict[str, float],
                label: str) -> None:
        phrases = parsed.phrases
        qgrams = _trigrams(_norm(text))
        for c in cands.values():
            if c.seg.ocr_text and qgrams:
                c.ocr_fuzzy = _containment(qgrams, _trigrams(_norm(c.seg.ocr_text)))
        # Temporal neighbours: a moment whose neighbours also match is more likely right.
        by_video: dict[int, list[_Cand]] = {}
        for c in cands.values():
            by_video.setdefault(c.seg.video, []).append(c)
        for group in by_video.values():
            group.sort(key=lambda c: c.seg.idx)
        neighbour: dict[int, float] = {}
        for group in by_video.values():
            for a, b in zip(group, group[1:]):
                if b.seg.idx == a.seg.idx + 1:
                    neighbour[a.id] = max(neighbour.get(a.id, 0.0), b.fused)
                    neighbour[b.id] = max(neighbour.get(b.id, 0.0), a.fused)
        for c in cands.values():
            agree = sum(1 for m, v in c.cos.items() if weights.get(m, 0) > 0.1 and v > 0.35)
            c.score = (
                c.fused
                + RERANK["neighbour"] * neighbour.get(c.id, 0.0)
                + RERANK["agreement"] * max(0, agree - 1)
                + (RERANK["phrase"] if c.phrase else 0.0)
                + RERANK["ocr_fuzzy"] * c.ocr_fuzzy * weights.get("ocr", 0.0)
            )
            if phrases and not c.phrase:
                c.score -= RERANK["phrase"]  # quoted phrases must match; kept only as a weak fallback

    # -- moments -----------------------------------------------------------------------
    def _moments(self, cands: dict[int, _Cand], videos: dict[int, VideoRecord], weights: dict[str, float],
                 parsed: ParsedQuery, text: str, opts: SearchOptions) -> list[Hit]:
        by_video: dict[int, dict[int, _Cand]] = {}
        for c in cands.values():
            by_video.setdefault(c.seg.video, {})[c.seg.idx] = c
        moments: list[tuple[float, int, list[_Cand]]] = []
        for vkey, segs in by_video.items():
            used: set[int] = set()
            for best in sorted(segs.values(), key=lambda c: (-c.score, c.id)):
                if best.seg.idx in used or len([m for m in moments if m[1] == vkey]) >= opts.per_video:
                    continue
                group = [best]
                thr = best.score - abs(best.score) * (1 - opts.merge_ratio)
                for step in (-1, 1):
                    j = best.seg.idx + step
                    while j in segs and j not in used and segs[j].score >= thr:
                        group.append(segs[j])
                        j += step
                group.sort(key=lambda c: c.seg.idx)
                used.update(c.seg.idx for c in group)
                moments.append((best.score, vkey, group))
        moments.sort(key=lambda m: (-m[0], m[1]))
        terms = set(tokenize(text))
        hits = []
        for score, vkey, group in moments[: opts.k]:
            v = videos[vkey]
            top = max(group, key=lambda c: c.score)
            matched = {m: round(s, 4) for m, s in sorted(top.cos.items()) if weights.get(m, 0) > 0}
            if top.bm25 > 0:
                matched["bm25"] = round(top.bm25, 4)
            if top.phrase:
                matched["phrase"] = 1.0
            hits.append(Hit(
                video_id=v.video_id, source=v.source, start=group[0].seg.start, end=group[-1].seg.end,
                score=float(score), matched=matched, snippet=_snippet(top, weights, terms), title=v.title,
                segment_ids=[c.id for c in group],
            ))
        return hits


# -- helpers ---------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).lower()
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", s)).strip()


def _trigrams(s: str) -> set[str]:
    s = s.replace(" ", "")
    return {s[i : i + 3] for i in range(max(0, len(s) - 2))}


def _containment(q: set[str], d: set[str]) -> float:
    return len(q & d) / len(q) if q else 0.0


def _video_date(v: VideoRecord) -> date:
    for key in ("date", "published", "recorded", "created"):
        val = v.extra.get(key)
        if isinstance(val, str):
            try:
                return date.fromisoformat(val[:10])
            except ValueError:
                continue
    return datetime.fromtimestamp(v.created_at, tz=timezone.utc).date()


def _video_passes(v: VideoRecord, parsed: ParsedQuery) -> bool:
    f = parsed.filters
    if f.is_empty:
        return True
    if f.duration is not None and (v.duration is None or not f.duration.contains(v.duration)):
        return False
    if f.resolution is not None:
        short = min(v.width or 0, v.height or 0)
        if not f.resolution.contains(short):
            return False
    if f.fps is not None and (v.fps is None or not f.fps.contains(v.fps)):
        return False
    lang = (v.language or "").lower()
    if f.languages and lang not in f.languages:
        return False
    if f.exclude_languages and lang in f.exclude_languages:
        return False
    if f.after or f.before:
        d = _video_date(v)
        if (f.after and d < f.after) or (f.before and d > f.before):
            return False
    tags = {t.lower() for t in v.tags}
    if any(t.lower() not in tags for t in f.tags) or any(t.lower() in tags for t in f.exclude_tags):
        return False
    people = {p.lower() for p in v.people}
    if any(p.lower() not in people for p in f.people) or any(p.lower() in people for p in f.exclude_people):
        return False
    if f.sources and not any(v.source.startswith(s) for s in f.sources):
        return False
    if any(v.source.startswith(s) for s in f.exclude_sources):
        return False
    has = {"audio": v.has_audio, "speech": bool(v.stats.get("has_speech")), "text": bool(v.stats.get("has_text"))}
    if any(not has.get(h, False) for h in f.has) or any(has.get(h, False) for h in f.has_not):
        return False
    return True


def _snippet(c: _Cand, weights: dict[str, float], terms: set[str], width: int = 160) -> str:
    """Show the evidence of the modality that contributed most to this segment's score."""
    seg = c.seg
    content = {"speech": seg.transcript, "ocr": seg.ocr_text,
               "visual": ", ".join(str(lab[0]) for lab in seg.labels[:5])}
    order = sorted(((weights.get(m, 0.0) * c.cos.get(m, 0.0), m) for m in content), reverse=True)
    if c.bm25 > 0 or c.phrase:  # an exact word hit is the clearest reason to show
        toks = set(tokenize(seg.transcript)) | set(tokenize(seg.ocr_text))
        if terms & toks:
            order = [(1.0, "speech" if terms & set(tokenize(seg.transcript)) else "ocr")] + order
    prefix = {"speech": "said: ", "ocr": "on screen: ", "visual": "seen: "}
    for _, m in order:
        if content[m]:
            text = content[m] if m == "visual" else _window(content[m], terms, width)
            return prefix[m] + text
    return ""


def _window(text: str, terms: set[str], width: int) -> str:
    if len(text) <= width:
        return text
    low = text.lower()
    pos = min((low.find(t) for t in terms if t and low.find(t) >= 0), default=0)
    start = max(0, pos - width // 3)
    out = text[start : start + width]
    return ("…" if start > 0 else "") + out + ("…" if start + width < len(text) else "")
