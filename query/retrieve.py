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

__all__ = ["Retrieved", "retrieve", "dense_runs", "dense_runs_many", "bm25_run"]

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


def _dense_queries(index: VideoIndex, plan: Plan, blocks: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The joint query, then a one-block query per modality of middling weight."""
    queries = [index.joint_vector(blocks, dict(plan.weights))]
    for m, w in plan.weights.items():
        if ONE_BLOCK_MIN_WEIGHT <= w < ONE_BLOCK_MAX_WEIGHT and m in blocks:
            queries.append(index.joint_vector({m: blocks[m]}, {m: 1.0}))
    return queries


def _runs(scores: np.ndarray, ids: np.ndarray) -> list[RankedList]:
    """Each query's ranked list, without the segments that scored nothing: a one-block
    query meets the zero vector of every segment without that modality (no speech, no
    text on screen), and which of those tied zeros filled the list was arbitrary (the
    shards' merge order), so two builds of one library answered differently. Ties are
    ordered by id."""
    return [sorted(((int(i), float(s)) for s, i in zip(row_s, row_i) if i >= 0 and s > 0.0),
                   key=lambda x: (-x[1], x[0])) for row_s, row_i in zip(scores, ids)]


def dense_runs(index: VideoIndex, plan: Plan, blocks: dict[str, np.ndarray]) -> list[RankedList]:
    scores, ids = index.search_vectors(np.stack(_dense_queries(index, plan, blocks)), plan.params)
    return _runs(scores, ids)


def dense_runs_many(index: VideoIndex, plans: list[Plan], blocks: list[dict[str, np.ndarray]]) -> list[list[RankedList]]:
    """``dense_runs`` of several plans with one vector search per distinct ``plan.params``
    (one for a batch of plain queries: a GPU or a many-core node answers a batch of
    queries in about the time of one). The rows equal each plan's own ``dense_runs``."""
    queries = [_dense_queries(index, p, b) for p, b in zip(plans, blocks)]
    out: list[list[RankedList]] = [[] for _ in plans]
    groups: dict = {}
    for i, p in enumerate(plans):
        if "dense" in p.retrievers:
            groups.setdefault(p.params, []).append(i)
    for params, members in groups.items():
        stacked = np.stack([q for i in members for q in queries[i]])
        scores, ids = index.search_vectors(stacked, params)
        row = 0
        for i in members:
            n = len(queries[i])
            out[i] = _runs(scores[row:row + n], ids[row:row + n])
            row += n
    return out


def bm25_run(index: VideoIndex, plan: Plan) -> RankedList:
    hits = index.lexical_search(plan.lexical_text, k=plan.candidates, fields=plan.lexical_fields,
                                phrases=list(plan.parsed.phrases))
    return [(h.id, float(h.score)) for h in hits]


def retrieve(index: VideoIndex, plan: Plan, blocks: dict[str, np.ndarray],
             dense: list[RankedList] | None = None) -> Retrieved:
    """Every retriever of the plan; ``dense`` when its dense runs were already made
    (``dense_runs_many`` for a batch)."""
    if dense is None:
        dense = dense_runs(index, plan, blocks) if "dense" in plan.retrievers else []
    bm25 = bm25_run(index, plan) if "bm25" in plan.retrievers and plan.text else []
    labels = label_run(index, plan.concepts, LABEL_CANDIDATES) if plan.concepts and "dense" in plan.retrievers else []
    return Retrieved(dense, bm25, labels)
