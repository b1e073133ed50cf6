"""A query in, ranked timestamped moments out: the ``Searcher`` runs the stages.

parse -> encode -> intent -> ``make_plan`` (query.plan: weights, fusion, candidates)
-> ``retrieve`` (query.retrieve: joint and one-block dense runs, BM25) -> ``gather``
(query.scoring: candidates with their segment and video, filters, negations, quoted
phrases) -> ``exact_scores`` -> ``fuse`` -> ``rerank`` (optional) -> ``moments``
(query.moments) -> a ``SearchResponse`` with its ``Explanation``.

The Searcher does not refresh the index: its owner (the service, a CLI command) calls
``index.sync()`` when it wants commits made since the handle opened to be seen.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from typing import Any

import numpy as np

from engine.catalog import VideoRecord
from engine.errors import InputError
from engine.index import VideoIndex
from engine.lexical import tokenize
from query.concepts import add_evidence, describe, filter_concepts, label_run
from query.entities import EntityRecognizer
from query.filters import labels_pass, video_passes
from query.intent import IntentClassifier, get_intent_classifier
from query.confidence import ConfidenceModel, QueryContext, default_model, features, shown
from query.moments import moments, term_coverage
from query.parse import ParsedQuery, parse
from query.people import describe_people, person_moments, with_faces
from query.plan import DEFAULT_FUSION, Plan, SearchOptions, make_plan
from query.results import Hit, SearchResponse
from query.retrieve import dense_runs_many, retrieve
from query.scoring import exact_scores, fuse, gather, rerank

__all__ = ["SearchOptions", "Hit", "SearchResponse", "Searcher", "DEFAULT_FUSION", "Plan"]

_VIDEO_CACHE_MAX = 100_000  # decoded video records kept between searches


class Searcher:
    """Holds the encoders and classifier for one open index; thread-safe searches."""

    def __init__(self, index: VideoIndex, *, intent: IntentClassifier | None = None,
                 intent_cascade: bool = True, fast_intent: IntentClassifier | None = None,
                 ranking: Any = "auto", confidence: ConfidenceModel | None | str = "default") -> None:
        from engine.models.registry import get_image_encoder, get_text_encoder

        self.index = index
        # The learned-ranking hook (query.learn.serve.LiveRanking): "auto" serves the
        # index's live model, if any (none: the default ranking, unchanged); None: never.
        if ranking == "auto":
            from query.learn.serve import LiveRanking

            ranking = LiveRanking(index.path)
        self.ranking = ranking
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
        # The calibrated confidence of each hit (query.confidence); None: hits carry their
        # features but no level (what benchmarks.calibrate fits a model on).
        self.confidence = default_model() if confidence == "default" else confidence
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
    def plan(self, query: str, *, image: np.ndarray | None = None, options: SearchOptions | None = None,
             parsed: ParsedQuery | None = None) -> tuple[Plan, dict[str, np.ndarray]]:
        """Decide a search without running it: (the plan, the query's per-modality vectors)."""
        opts = options or SearchOptions()
        parsed = parsed or parse(query)
        text = parsed.search_text
        ent = self.entities.recognise(text, opts.tenant) if text else None  # None: names no known entity
        # Encoders first: the retrieval encoder's query vector also feeds the fast
        # intent head. Sequential on purpose: the intent model and the encoders in two
        # threads oversubscribe the cores (both use intra-op pools) and were slower
        # (measured: 190 ms vs 85 ms a query on 2 cores).
        blocks = self._query_blocks(text, image)
        intent = None
        if text:
            if self.fast_intent is not None and "speech" in blocks:
                intent = self.intent.classify_cascade(parsed, self.fast_intent, blocks["speech"])
            else:
                intent = self.intent.classify(text, parsed=parsed)
            if ent is not None:
                intent = ent.apply_intent(intent, self.intent)
        return make_plan(query, parsed, intent, ent, blocks, image is not None, opts), blocks

    def search(self, query: str, *, image: np.ndarray | None = None,
               options: SearchOptions | None = None) -> SearchResponse:
        t0 = time.perf_counter()
        opts = options or SearchOptions()
        parsed = parse(query)
        search_id = uuid.uuid4().hex  # feedback events name the search they are about
        if not parsed.search_text and image is None:
            hits = self._filter_only(parsed, opts)
            return SearchResponse(query, {"label": "filter", "confidence": 1.0, "weights": {}},
                                  (time.perf_counter() - t0) * 1000, hits, parsed.to_dict(), search_id,
                                  min_confidence=opts.min_confidence)
        plan, blocks = self.plan(query, image=image, options=opts, parsed=parsed)
        return self._respond(query, parsed, plan, blocks, opts, search_id, t0)

    def search_many(self, queries: list[str], *, options: SearchOptions | None = None) -> list[SearchResponse]:
        """Several text queries with the same options: each planned as ``search`` does,
        their dense runs made in one vector search (``query.retrieve.dense_runs_many``),
        then each finished as ``search`` does. Response i equals ``search(queries[i])``
        but for ``search_id`` and ``took_ms`` (the batch's time so far)."""
        t0 = time.perf_counter()
        opts = options or SearchOptions()
        parsed = [parse(q) for q in queries]
        planned = [(i, *self.plan(q, options=opts, parsed=pq)) for i, (q, pq) in enumerate(zip(queries, parsed))
                   if pq.search_text]
        dense = dense_runs_many(self.index, [p for _i, p, _b in planned], [b for _i, _p, b in planned])
        done = {i: (p, b, d) for (i, p, b), d in zip(planned, dense)}
        out = []
        for i, (q, pq) in enumerate(zip(queries, parsed)):
            if i in done:
                p, b, d = done[i]
                out.append(self._respond(q, pq, p, b, opts, uuid.uuid4().hex, t0, dense=d))
            else:  # a filter-only query: no vectors to batch
                out.append(self.search(q, options=opts))
        return out

    def _respond(self, query: str, parsed: ParsedQuery, plan: Plan, blocks: dict[str, np.ndarray],
                 opts: SearchOptions, search_id: str, t0: float, dense: list | None = None) -> SearchResponse:
        """A planned search, from retrieval to the response (``dense``: its dense runs, made already)."""
        retrieved = retrieve(self.index, plan, blocks, dense=dense if "dense" in plan.retrievers else None)
        fetch = self._videos_by_keys
        if parsed.filters.people or parsed.filters.exclude_people:  # person:"X" also holds where X's face is seen
            def fetch(keys, _f=self._videos_by_keys):
                return with_faces(self.index, _f, keys)
        found = gather(self.index, plan, retrieved, fetch)
        expl = replace(plan.explanation, phrase_missing=found.phrase_missing)
        if plan.entity is not None and retrieved.runs():
            expl = replace(expl, entities=plan.entity.to_dict()["entities"])
        hits: list[Hit] = []
        ranker = {"version": "default"}
        if found.by_id:
            cands = found.by_id
            cos, dense = exact_scores(self.index, cands, blocks, plan.weights, keyframes=opts.rerank,
                                      frames=opts.frames)
            scores = fuse(plan, cands, dense, retrieved)
            if plan.concepts:
                scores = add_evidence(plan.concepts, plan.weights.get("visual", 0.0), scores,
                                      self.index.segment_labels(list(cands)), self.index.label_frequency(),
                                      coverage=plan.concept_coverage)
            if opts.rerank:
                scores = rerank(plan, cands, cos, scores)

            def make_hits(s):
                return moments(plan, cands, cos, s, blocks=blocks, evidence=self.index if opts.exact_moments else None)

            if self.ranking is None:
                hits = make_hits(scores)
            else:
                hits, ranker = self.ranking.rank(search_id, plan, cands, cos, dense, scores, make_hits, blocks)
            self._describe(hits)
            self._assess(plan, hits, cands, cos, dense)
        found_n = len(hits)
        if self.confidence is not None:
            hits = [h for h, ok in zip(hits, shown([h.confidence for h in hits], opts.min_confidence)) if ok]
        return SearchResponse(query, expl.to_dict(), (time.perf_counter() - t0) * 1000, hits, parsed.to_dict(),
                              search_id, ranker, opts.min_confidence, found_n - len(hits))

    def _assess(self, plan: Plan, hits: list[Hit], cands, cos, dense) -> None:
        """Each hit's confidence features (from its best segment) and, with a model, its
        calibrated probability and level."""
        ctx = QueryContext.of(dense, plan.weights)
        terms = set(tokenize(plan.text))
        for h in hits:
            c = cands.get(h.top_segment)
            if c is None:
                continue
            h.features = features(dense.get(c.id, 0.0), cos.get(c.id, {}), plan.weights, term_coverage(c, terms),
                                  c.phrase, ctx)
            if self.confidence is not None:
                h.confidence_score = self.confidence.probability(h.features)
                h.confidence = self.confidence.level(h.confidence_score)

    def _describe(self, hits: list[Hit]) -> None:
        """Each hit's "seen" line from its segments' frame labels; a visual snippet
        shows it instead of the classifier's raw class names."""
        ids = [i for h in hits for i in h.segment_ids]
        if not ids:
            return
        labels = self.index.segment_labels(ids)
        for h in hits:
            have: dict = {}
            for i in h.segment_ids:
                for key, score in labels.get(i, {}).items():
                    have[key] = max(have.get(key, 0.0), score)
            h.seen = describe(have)
        describe_people(self.index, hits)  # who is on screen, named first in "seen"
        for h in hits:
            if h.seen and h.snippet.startswith("seen: "):
                h.snippet = "seen: " + h.seen
                h.highlights = []  # offsets into the old snippet no longer apply

    def _videos_by_keys(self, keys: set[int]) -> dict[int, VideoRecord]:
        with self._videos_lock:
            if self._videos_seq != self.index.seq or len(self._videos) > _VIDEO_CACHE_MAX:
                self._videos = {}
                self._videos_seq = self.index.seq
            cache = self._videos
            missing = [k for k in keys if k not in cache]
        if missing:
            fetched = self.index.videos_by_keys(missing)
            with self._videos_lock:
                if cache is self._videos:
                    cache.update(fetched)
        else:
            fetched = {}
        return {k: v for k in keys if (v := cache.get(k) or fetched.get(k)) is not None}

    def _filter_only(self, parsed: ParsedQuery, opts: SearchOptions) -> list[Hit]:
        if parsed.is_empty:
            raise InputError("empty query", hint="type words to search for, or filters such as duration>10s")
        if parsed.filters.has_labels:
            return self._label_filter_only(parsed, opts)
        if parsed.filters.people:  # the moments where the person's face is on screen
            hits = person_moments(self.index, parsed, opts.k, opts.tenant, self._videos_by_keys)
            describe_people(self.index, hits)
            return hits
        hits = []
        for v in self.index.list_videos(tenant=opts.tenant, limit=100_000):
            if video_passes(v, parsed):
                # a filter matches exactly: as sure as a match gets
                hits.append(Hit(v.video_id, v.source, 0.0, float(v.duration or 0.0), 1.0, {}, v.title or "",
                                v.title, confidence="high", confidence_score=1.0, live=v.status == "live"))
                if len(hits) >= opts.k:
                    break
        return hits


    def _label_filter_only(self, parsed: ParsedQuery, opts: SearchOptions) -> list[Hit]:
        """A query of filters with label filters: the moments (segments) that show the
        labels, best supported first, one a video."""
        concepts = filter_concepts(parsed.filters)
        ranked = label_run(self.index, concepts, limit=max(200, 20 * opts.k)) if concepts else []
        if not ranked:  # only negated labels: every segment is a candidate; keep it bounded
            return []
        segs = self.index.segment_labels([i for i, _ in ranked])
        recs = self.index.segments([i for i, _ in ranked])
        videos = self._videos_by_keys({s.video for s in recs.values()})
        hits: list[Hit] = []
        seen_videos: set[int] = set()
        for i, score in ranked:
            seg = recs.get(i)
            v = videos.get(seg.video) if seg else None
            if (seg is None or v is None or seg.video in seen_videos
                    or (opts.tenant is not None and v.tenant != opts.tenant)
                    or not video_passes(v, parsed) or not labels_pass(segs.get(i, {}), parsed)):
                continue
            seen_videos.add(seg.video)
            # like every filter, a label filter matches exactly (at the labels' shown threshold)
            hits.append(Hit(v.video_id, v.source, seg.start, seg.end, round(score, 4), {"labels": round(score, 4)},
                            "", v.title, segment_ids=[i], segments_range=(seg.start, seg.end),
                            top_segment=i, thumbnail_segment=i, confidence="high", live=v.status == "live"))
            if len(hits) >= opts.k:
                break
        self._describe(hits)
        for h in hits:
            h.snippet = "seen: " + h.seen if h.seen else ""
        return hits


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
