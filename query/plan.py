"""The search plan: everything a search decides before it touches the index.

``SearchOptions`` are what the caller asks for; ``make_plan`` turns the parsed query,
its intent and the options into an immutable ``Plan`` (per-modality weights, fusion
method and dense share, candidate count, BM25 fields and text, vector-search
parameters); ``Explanation`` is the ``intent`` object of a response, built once and
added to by the stages that learn more (entities, a quoted phrase found nowhere).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from engine.catalog import MODALITIES
from engine.errors import InputError
from engine.vectors import SearchParams
from query.entities import EntityMatch
from query.fusion import FUSION_METHODS
from query.concepts import filter_concepts, ranking_concepts, read_concepts
from query.levels import CONFIDENCE_LEVELS
from query.parse import ParsedQuery

__all__ = ["SearchOptions", "Plan", "Explanation", "make_plan", "DEFAULT_FUSION", "LEXICAL_FIELDS_FOR",
           "DENSE_K_FACTOR", "DENSE_PROBE_SHARE", "ONE_BLOCK_MIN_WEIGHT", "ONE_BLOCK_MAX_WEIGHT", "RETRIEVERS"]

LEXICAL_FIELDS_FOR = {"visual": ("labels",), "speech": ("transcript",), "ocr": ("ocr",), "metadata": ("metadata",)}
RETRIEVERS: tuple[str, ...] = ("dense", "bm25")

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
# reranker changed no rank-1 result and moved one tail hit, so it is off by default
# (SearchOptions(rerank=True) turns it on).
FALLBACK_FUSION = ("convex", 0.8)  # a label without an entry above (e.g. "image")

# A modality with at least this intent weight also gets its own one-block dense run.
ONE_BLOCK_MIN_WEIGHT = 0.3
# ... and below this one: a block carrying most of the weight already ranks the joint
# query, so its own run repeats it. Skipping it halves the vector search of a confident
# query (two runs -> one); quality over shared/media was unchanged (MRR 0.710, R@1 0.600).
ONE_BLOCK_MAX_WEIGHT = 0.7
# Refine depth of the dense runs: candidates = k * this. The engine's default (8) is
# sized for a precise top 10; a search asks for ~100 candidates and rescores them
# exactly, so it only needs the true top 10 inside them. Likewise the share of each
# shard's IVF lists a run probes (the engine's default is 1/6). Measured at 1M segments
# (synthetic, 60 noisy queries, exact search as truth), share of the true top 10 inside
# the 100 candidates: joint queries 1.000 with the engine defaults and with these;
# one-block queries 0.930 with the defaults, 0.927 with these; vector time -30%.
# Since each approximate shard tunes its own probe count on its data (engine.vectors.
# tune), a fixed share is no longer asked for: 1/12 of the lists kept only 0.91 of the
# true top 10 inside the candidates at 100k vectors (benchmarks.bench_ann_curve).
DENSE_K_FACTOR = 4
DENSE_PROBE_SHARE: float | None = None
# Filters and negations drop candidates after retrieval: retrieve this many times more.
FILTERED_CANDIDATES = 4
LEXICAL_MIN_WEIGHT = 0.05  # a modality's BM25 fields are searched above this weight


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    fusion: str = "auto"  # auto (per intent) or a fusion method name (query.fusion.FUSION_METHODS)
    dense_share: float | None = None  # convex: weight of dense vs BM25 (None: per intent)
    rerank: bool = False
    per_video: int = 1  # at most this many moments per video
    tenant: str | None = None
    candidates: int = 100
    retrievers: tuple[str, ...] = RETRIEVERS
    params: SearchParams | None = None  # nprobe / efSearch / k_factor for the vector store
    merge_ratio: float = 0.8  # neighbours within this share of a moment's best join it
    exact_moments: bool = True  # cut each moment's range from the evidence timeline (query.boundaries)
    frames: str = "keyframes"  # the frames a visual score takes its best match from: keyframes or seconds (1 fps)
    # the lowest confidence shown (query.confidence: low, medium, high); "low" shows every
    # moment, each labelled. The API, the CLI and the page ask for DEFAULT_MIN_CONFIDENCE.
    min_confidence: str = "low"

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 1000:
            raise InputError(f"k must be in 1..1000, got {self.k}")
        if self.fusion != "auto" and self.fusion not in FUSION_METHODS:
            raise InputError(f"fusion must be auto, {', '.join(FUSION_METHODS)}; got {self.fusion!r}")
        if self.per_video < 1:
            raise InputError(f"per_video must be >= 1, got {self.per_video}")
        if self.frames not in ("keyframes", "seconds"):
            raise InputError(f"frames must be keyframes or seconds, got {self.frames!r}")
        if self.min_confidence not in CONFIDENCE_LEVELS:
            raise InputError(f"min_confidence must be one of {', '.join(CONFIDENCE_LEVELS)};"
                             f" got {self.min_confidence!r}",
                             hint="low shows every moment; medium hides the weak ones; high only the sure ones")
        bad = set(self.retrievers) - set(RETRIEVERS)
        if bad or not self.retrievers:
            raise InputError(f"retrievers must be a non-empty subset of {', '.join(RETRIEVERS)};"
                             f" got {self.retrievers}")


@dataclass(frozen=True)
class Explanation:
    """Why the results look as they do: the intent (label, confidence, scores, weights,
    rules), the fusion chosen, and what later stages found (entities named in the query,
    quoted phrases that occur in no candidate, hence no hits)."""

    intent: dict[str, Any]
    fusion: str | None = None
    dense_share: float | None = None
    entities: list | None = None
    phrase_missing: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.intent)
        if self.fusion is not None:
            out["fusion"], out["dense_share"] = self.fusion, self.dense_share
        if self.entities is not None:
            out["entities"] = self.entities
        if self.phrase_missing:
            out["phrase_missing"] = True
        return out


@dataclass(frozen=True)
class Plan:
    """One search, decided: read it, never change it (``dataclasses.replace`` makes a changed copy)."""

    query: str
    parsed: ParsedQuery
    text: str  # the words to search for (filters and negations taken out)
    label: str  # the intent label that chose the fusion ("visual" for an image alone)
    weights: Mapping[str, float]  # per modality, only those with a query block
    fusion: str
    dense_share: float
    candidates: int
    retrievers: tuple[str, ...]
    lexical_text: str  # the BM25 query (with a named entity's aliases)
    lexical_fields: tuple[str, ...] | None  # None: every field
    params: SearchParams
    entity: EntityMatch | None
    options: SearchOptions
    explanation: Explanation = field(compare=False)
    concepts: tuple = ()  # query.concepts.Concept: what the query asks to see (frame labels)
    concept_coverage: float = 0.0  # query.concepts.coverage of the text: how much of it the concepts say


def _fusion_for(label: str, opts: SearchOptions) -> tuple[str, float]:
    method, share = DEFAULT_FUSION.get(label, FALLBACK_FUSION)
    if opts.fusion != "auto":
        method = opts.fusion
    if opts.dense_share is not None:
        share = opts.dense_share
    return method, share


def make_plan(query: str, parsed: ParsedQuery, intent, entity: EntityMatch | None, blocks: Mapping[str, Any],
              has_image: bool, opts: SearchOptions) -> Plan:
    """``intent``: the classifier's ``Intent`` for the text (None for an image alone);
    ``blocks``: the query's per-modality vectors (their keys are the modalities searched)."""
    text = parsed.search_text
    if intent is not None:
        weights = dict(intent.weights)
        intent_dict = intent.to_dict()
        label = intent.label
    else:
        weights = {m: 1.0 if m == "visual" else 0.0 for m in MODALITIES}
        intent_dict = {"label": "image", "confidence": 1.0, "weights": weights}
        label = "visual"
    if has_image and text:
        weights["visual"] = max(weights.get("visual", 0.0), 0.5)
    weights = {m: float(weights.get(m, 0.0)) for m in MODALITIES if m in blocks}
    seen, seen_share = read_concepts(text) if text else ([], 0.0)  # what the text asks to see, and how much of it
    seen = ranking_concepts(seen)
    fusion, share = _fusion_for(label, opts)
    narrowed = not parsed.filters.is_empty or parsed.negated_terms
    fields = sorted({f for m, w in weights.items() if w > LEXICAL_MIN_WEIGHT for f in LEXICAL_FIELDS_FOR[m]})
    n = opts.candidates * (FILTERED_CANDIDATES if narrowed else 1)
    p = opts.params
    params = replace(p, k=n) if p else SearchParams(k=n, k_factor=DENSE_K_FACTOR, probe_share=DENSE_PROBE_SHARE)
    return Plan(
        query=query, parsed=parsed, text=text, label=label, weights=MappingProxyType(weights), fusion=fusion,
        dense_share=share, candidates=n, retrievers=tuple(opts.retrievers),
        lexical_text=entity.expand(text) if entity else text, lexical_fields=tuple(fields) or None,
        params=params, entity=entity, options=opts,
        explanation=Explanation(intent_dict, fusion, share),
        concepts=tuple((seen if weights.get("visual", 0.0) > 0 else []) + filter_concepts(parsed.filters)),
        concept_coverage=seen_share,
    )
