"""Ranking features: what the planner's stages already know about each candidate,
as one row of numbers per segment, and the clip-level ranking a score vector gives.

A learned ranker never replaces the hand-set score: it adds ``w . x`` to the fused
score (``query.scoring.fuse``), so the zero model IS the default ranking. The features
are the stages' own values (no extra model, no extra index read):

- ``cos_<m>``: the exact cosine of each modality (0 when the segment lacks it);
- ``dense``: the weighted mean of those cosines (the dense score);
- ``bm25``: its BM25 score over the query's best BM25 score (0: BM25 missed it);
- ``phrase``: every quoted phrase occurs in its speech or on-screen text;
- ``ocr_fuzzy``: character-trigram containment of the query in its on-screen text;
- ``neighbour``: the best fused score of an adjacent segment of the same video;
- ``agree``: modalities (weight > 0.1) whose cosine passes 0.35, minus one;
- ``p_<intent>*<signal>``: the intent classifier's probability of each intent times
  each modality's cosine and BM25: per-intent fusion weights, learned softly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from engine.catalog import MODALITIES
from query.filters import containment, norm, trigrams
from query.intent import INTENTS
from query.plan import Plan
from query.scoring import neighbours

__all__ = ["BASE_FEATURES", "CROSS_SIGNALS", "FEATURES", "N_FEATURES", "RERANK_DEPTH", "segment_features",
           "apply_linear", "QueryCandidates", "clip_ranking"]

BASE_FEATURES: tuple[str, ...] = (
    *(f"cos_{m}" for m in MODALITIES), "dense", "bm25", "phrase", "ocr_fuzzy", "neighbour", "agree",
)
CROSS_SIGNALS: tuple[str, ...] = (*(f"cos_{m}" for m in MODALITIES), "bm25")
FEATURES: tuple[str, ...] = (*BASE_FEATURES, *(f"p_{i}*{s}" for i in INTENTS for s in CROSS_SIGNALS))
N_FEATURES = len(FEATURES)
_AGREE_WEIGHT, _AGREE_COS = 0.1, 0.35  # as query.scoring.rerank counts agreement
# The learned model reorders the default's top this many videos and nothing else: it
# learns from clicks on shown results, and knows nothing of the candidates below them
# (measured: a model free to lift any of the ~100 candidates lifted unshown ones and
# lost MRR on held-out queries even when trained on true labels).
RERANK_DEPTH = 10


def segment_features(plan: Plan, cands: Mapping, cos: Mapping[int, Mapping[str, float]],
                     dense: Mapping[int, float], fused: Mapping[int, float]) -> tuple[list[int], np.ndarray]:
    """(candidate ids, an (n, N_FEATURES) float64 matrix) in ``cands`` order."""
    ids = list(cands)
    x = np.zeros((len(ids), N_FEATURES), dtype=np.float64)
    if not ids:
        return ids, x
    probs = plan.explanation.intent.get("scores") or {}
    p = np.array([float(probs.get(i, 0.0)) for i in INTENTS])
    if not probs:  # an image query or a label without probabilities: the label is certain
        p = np.array([1.0 if i == plan.label else 0.0 for i in INTENTS])
    bm_max = max((c.bm25 for c in cands.values()), default=0.0)
    qgrams = trigrams(norm(plan.text))
    neighbour = neighbours(cands, fused)
    weights = plan.weights
    n_base = len(BASE_FEATURES)
    for r, i in enumerate(ids):
        c = cands[i]
        cs = cos.get(i, {})
        row = x[r]
        for j, m in enumerate(MODALITIES):
            row[j] = float(cs.get(m, 0.0))
        k = len(MODALITIES)
        row[k] = float(dense.get(i, 0.0))
        row[k + 1] = c.bm25 / bm_max if bm_max > 0 else 0.0
        row[k + 2] = 1.0 if c.phrase else 0.0
        row[k + 3] = containment(qgrams, c.seg.ocr_text) if c.seg.ocr_text else 0.0
        row[k + 4] = float(neighbour.get(i, 0.0))
        agree = sum(1 for m, v in cs.items() if weights.get(m, 0) > _AGREE_WEIGHT and v > _AGREE_COS)
        row[k + 5] = float(max(0, agree - 1))
        signals = np.array([*row[:len(MODALITIES)], row[k + 1]])
        row[n_base:] = np.outer(p, signals).ravel()
    return ids, x


def apply_linear(base: np.ndarray, x: np.ndarray, video_keys: np.ndarray, w: np.ndarray | None,
                 depth: int = RERANK_DEPTH) -> np.ndarray:
    """Segment scores under the linear model ``w``: the segments of the default's top
    ``depth`` videos get ``base + x . w``; every other video keeps its segments' order
    but is shifted down (uniformly per query) to stay below them. ``w`` None: ``base``."""
    if w is None or len(base) == 0:
        return base
    top = set(clip_ranking(base, video_keys, video_keys.tolist(), depth))
    in_top = np.fromiter((v in top for v in video_keys.tolist()), dtype=bool, count=len(base))
    out = base.astype(np.float64).copy()
    out[in_top] = base[in_top] + x[in_top] @ w
    if in_top.all():
        return out
    best_new = {}
    for v, s in zip(video_keys[in_top].tolist(), out[in_top].tolist()):
        best_new[v] = max(best_new.get(v, s), s)
    floor = min(best_new.values())
    rest_max = float(base[~in_top].max())
    out[~in_top] = base[~in_top] - (max(0.0, rest_max - floor) + 1e-6)
    return out


@dataclass
class QueryCandidates:
    """One query's candidates as the learner sees them: per segment its video (key and
    clip name), its default (fused) score and its features. Enough to rank the query's
    clips under any linear model without searching again."""

    query: str
    label: str
    video_keys: np.ndarray  # (n,) int64, the catalog key of each segment's video
    clips: list[str]  # (n,) each segment's video id or clip name, what a click names
    base: np.ndarray  # (n,) the default score
    x: np.ndarray  # (n, N_FEATURES)
    qvec: np.ndarray | None = None  # the query's text vector (the click memory's key)

    def scores(self, w: np.ndarray | None, boost: np.ndarray | None = None) -> np.ndarray:
        """Segment scores under ``w``, after adding ``boost`` (per segment) to the default."""
        base = self.base if boost is None else self.base + boost
        return apply_linear(base, self.x, self.video_keys, w)

    def ranking(self, w: np.ndarray | None, k: int | None = None, boost: np.ndarray | None = None) -> list[str]:
        """Clips best first under ``w`` (None: the default), as the planner orders them."""
        return clip_ranking(self.scores(w, boost), self.video_keys, self.clips, k)

    def video_rows(self, w: np.ndarray | None = None) -> dict[str, int]:
        """Per clip, the row of its best segment under ``w``: the moment a user sees."""
        s = self.scores(w)
        best: dict[str, int] = {}
        for r, c in enumerate(self.clips):
            if c not in best or s[r] > s[best[c]]:
                best[c] = r
        return best

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"video_keys": self.video_keys, "clips": np.array(self.clips, dtype=object), "base": self.base,
                "x": self.x}


def clip_ranking(scores: np.ndarray, video_keys: np.ndarray, clips: Sequence[str], k: int | None = None
                 ) -> list[str]:
    """Clips ordered by their best segment's score, ties by video key: the order of
    ``query.moments`` with one moment a video."""
    best: dict[int, float] = {}
    name: dict[int, str] = {}
    for s, v, c in zip(scores.tolist(), video_keys.tolist(), clips):
        if v not in best or s > best[v]:
            best[v] = s
            name[v] = c
    order = sorted(best, key=lambda v: (-best[v], v))
    out = [name[v] for v in order]
    return out if k is None else out[:k]
