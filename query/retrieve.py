"""Retrievers: each turns a plan into ranked lists of ``(segment id, score)``.

- dense: the joint query (every modality block scaled by its intent weight), plus a
  one-block query for each modality with a middling weight, so that a strong signal in
  one modality is not crowded out of the joint top-n; one batched vector search.
- bm25: the lexical index over the fields of the modalities that carry weight.
- labels: segments whose frame labels support the query's concepts (query.concepts).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.index import VideoIndex
from query.concepts import label_run
from query.plan import ONE_BLOCK_MAX_WEIGHT, ONE_BLOCK_MIN_WEIGHT, Plan

__all__ = ["Retrieved", "retrieve", "dense_runs", "bm25_run"]

RankedList = list[tuple[int, float]]
LABEL_CANDIDATES = 50  # segments the label retriever adds to the pool


@dataclass(frozen=True)
class Retrieved:
    dense: list[RankedList] = field(default_factory=list)  # the joint run first, then one-block runs
    bm25: RankedList = field(default_factory=list)
    labels: RankedList = field(default_factory=list)  # segments carrying the query's concepts

    def runs(self) -> list[RankedList]:
        """Every non-empty run, dense first."""
        return [r for r in self.dense if r] + ([self.bm25] if self.bm25 else []) + ([self.labels] if self.labels else [])


def dense_runs(index: VideoIndex, plan: Plan, blocks: dict[str, np.ndarray]) -> list[RankedList]:
    queries = [index.joint_vector(blocks, dict(plan.weights))]
    for m, w in plan.weights.items():
        if ONE_BLOCK_MIN_WEIGHT <= w < ONE_BLOCK_MAX_WEIGHT and m in blocks:
            queries.append(index.joint_vector({m: blocks[m]}, {m: 1.0}))
    scores, ids = index.search_vectors(np.stack(queries), plan.params)
    return [[(int(i), float(s)) for s, i in zip(row_s, row_i) if i >= 0] for row_s, row_i in zip(scores, ids)]


def bm25_run(index: VideoIndex, plan: Plan) -> RankedList:
    hits = index.lexical_search(plan.lexical_text, k=plan.candidates, fields=plan.lexical_fields,
                                phrases=list(plan.parsed.phrases))
    return [(h.id, float(h.score)) for h in hits]


def retrieve(index: VideoIndex, plan: Plan, blocks: dict[str, np.ndarray]) -> Retrieved:
    dense = dense_runs(index, plan, blocks) if "dense" in plan.retrievers else []
    bm25 = bm25_run(index, plan) if "bm25" in plan.retrievers and plan.text else []
    labels = label_run(index, plan.concepts, LABEL_CANDIDATES) if plan.concepts and "dense" in plan.retrievers else []
    return Retrieved(dense, bm25, labels)
