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
from dataclasses import replace

import numpy as np

from engine.catalog import VideoRecord
from engine.errors import InputError
from engine.index import VideoIndex
from engine.lexical import tokenize
from query.entities import EntityRecognizer
from query.filters import video_passes
from query.intent import IntentClassifier, get_intent_classifier
from query.moments import moments
from query.parse import ParsedQuery, parse
from query.plan import DEFAULT_FUSION, Plan, SearchOptions, make_plan
from query.results import Hit, SearchResponse
from query.retrieve import retrieve
from query.scoring import exact_scores, fuse, gather, rerank

__all__ = ["SearchOptions", "Hit", "SearchResponse", "Searcher", "DEFAULT_FUSION", "Plan"]

_VIDEO_CACHE_MAX = 100_000  # decoded video records kept between searches


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
        if not parsed.search_text and image is None:
            hits = self._filter_only(parsed, opts)
            return SearchResponse(query, {"label": "filter", "confidence": 1.0, "weights": {}},
                                  (time.perf_counter() - t0) * 1000, hits, parsed.to_dict())
        plan, blocks = self.plan(query, image=image, options=opts, parsed=parsed)
        retrieved = retrieve(self.index, plan, blocks)
        found = gather(self.index, plan, retrieved, self._videos_by_keys)
        expl = replace(plan.explanation, phrase_fallback=found.phrase_fallback)
        if plan.entity is not None and retrieved.runs():
            expl = replace(expl, entities=plan.entity.to_dict()["entities"])
        hits: list[Hit] = []
        if found.by_id:
            cands = found.by_id
            cos, dense = exact_scores(self.index, cands, blocks, plan.weights, keyframes=opts.rerank)
            scores = fuse(plan, cands, dense, retrieved)
            if opts.rerank:
                scores = rerank(plan, cands, cos, scores)
            hits = moments(plan, cands, cos, scores, blocks=blocks,
                           evidence=self.index if opts.exact_moments else None)
        return SearchResponse(query, expl.to_dict(), (time.perf_counter() - t0) * 1000, hits, parsed.to_dict())

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
        hits = []
        for v in self.index.list_videos(tenant=opts.tenant, limit=100_000):
            if video_passes(v, parsed):
                hits.append(Hit(v.video_id, v.source, 0.0, float(v.duration or 0.0), 1.0, {}, v.title or "",
                                v.title, live=v.status == "live"))
                if len(hits) >= opts.k:
                    break
        return hits


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
