"""A query's candidates with their ranking features, by running the planner's stages
up to fusion (``query.scoring``) exactly as ``Searcher.search`` does, without moments.

The learner uses it twice: to give logged queries their features at training time,
and to cache the judged queries' candidates so that a model is evaluated (and 100k
simulated sessions are ranked) without searching again.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.catalog import VideoRecord
from query.learn.features import N_FEATURES, QueryCandidates, segment_features
from query.parse import parse
from query.plan import SearchOptions
from query.retrieve import retrieve
from query.scoring import exact_scores, fuse, gather

__all__ = ["collect"]


def collect(searcher, query: str, options: SearchOptions | None = None,
            name: Callable[[VideoRecord], str] = lambda v: v.video_id) -> QueryCandidates:
    """The candidates of ``query`` under ``searcher`` (a ``query.planner.Searcher``);
    ``name`` gives the clip name a click refers to (default: the video id)."""
    opts = options or SearchOptions()
    parsed = parse(query)
    empty = QueryCandidates(query, "filter", np.zeros(0, dtype=np.int64), [], np.zeros(0),
                            np.zeros((0, N_FEATURES)))
    if not parsed.search_text:
        return empty
    plan, blocks = searcher.plan(query, options=opts, parsed=parsed)
    retrieved = retrieve(searcher.index, plan, blocks)
    found = gather(searcher.index, plan, retrieved, searcher.index.videos_by_keys)
    if not found.by_id:
        return QueryCandidates(query, plan.label, empty.video_keys, [], empty.base, empty.x)
    cands = found.by_id
    cos, dense = exact_scores(searcher.index, cands, blocks, plan.weights, keyframes=opts.rerank)
    fused = fuse(plan, cands, dense, retrieved)
    ids, x = segment_features(plan, cands, cos, dense, fused)
    return QueryCandidates(
        query=query, label=plan.label,
        video_keys=np.array([cands[i].seg.video for i in ids], dtype=np.int64),
        clips=[name(cands[i].video) for i in ids],
        base=np.array([fused[i] for i in ids], dtype=np.float64), x=x, qvec=blocks.get("speech"))
