"""Clicks -> relevance, corrected for position bias.

The click model is the position-based model (PBM; Craswell et al. 2008, Chuklin,
Markov and de Rijke, "Click Models for Web Search", ch. 3): a result at position k
is examined with probability ``theta[k]`` whatever it is, and clicked when examined
with probability ``gamma[q, d]``, its attractiveness for the query: the relevance
estimate the learner uses. Both are fitted by expectation-maximisation over the logged
sessions. The model can tell a low position from a poor result only when the same
result is seen at different positions for the same query; the service gives it that
by randomising a small share of its traffic (``query.learn.serve``: one adjacent pair
of the shown results swapped), which costs users little. The examination
probabilities come from those swaps (``propensities``); the relevances then by EM.

``naive_ctr`` is what a learner that ignores position bias uses: clicks over
impressions, so a result shown first looks better than the same result shown fifth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

import numpy as np

from engine.errors import InputError

__all__ = ["Session", "Relevance", "propensities", "fit_pbm", "naive_ctr", "MIN_PAIR_IMPRESSIONS"]


@dataclass(frozen=True)
class Session:
    """One shown list: the query's key, the results shown in order, and which were
    clicked (a play, or a long dwell, counts as a click; "not relevant" as none)."""

    query: Hashable
    docs: tuple[Hashable, ...]
    clicks: tuple[bool, ...]

    def __post_init__(self) -> None:
        if len(self.docs) != len(self.clicks):
            raise InputError(f"a session shows {len(self.docs)} results but has {len(self.clicks)} click flags")


@dataclass
class Relevance:
    """Per (query, doc): the relevance estimate and how many impressions it rests on;
    ``theta``: the examination probability per position (1-based index k-1)."""

    labels: dict[tuple[Hashable, Hashable], float]
    impressions: dict[tuple[Hashable, Hashable], int]
    theta: np.ndarray

    def for_query(self, query: Hashable, min_impressions: int = 1) -> dict[Hashable, float]:
        return {d: v for (q, d), v in self.labels.items()
                if q == query and self.impressions[(q, d)] >= min_impressions}

    def queries(self) -> set[Hashable]:
        return {q for q, _ in self.labels}


def _flatten(sessions: Iterable[Session], depth: int):
    keys: dict[tuple[Hashable, Hashable], int] = {}
    pos, qd, clk = [], [], []
    for s in sessions:
        for k, (d, c) in enumerate(zip(s.docs[:depth], s.clicks[:depth])):
            j = keys.setdefault((s.query, d), len(keys))
            pos.append(k)
            qd.append(j)
            clk.append(1.0 if c else 0.0)
    return keys, np.array(pos, dtype=np.int64), np.array(qd, dtype=np.int64), np.array(clk)


MIN_PAIR_IMPRESSIONS = 20  # a position ratio needs results seen this often at both positions


def propensities(sessions: Sequence[Session], depth: int = 10) -> np.ndarray | None:
    """Examination probability per position, from the results that were shown at two
    adjacent positions for the same query (the randomised swaps): the ratio of their
    click rates at k+1 and k is theta[k+1] / theta[k], whatever their relevance
    ("intervention harvesting", Agarwal et al., WSDM 2019). ``theta[0]`` is 1. None when
    some adjacent pair has too few such impressions to say."""
    keys, pos, qd, clk = _flatten(sessions, depth)
    if not keys:
        return None
    n = np.zeros((len(keys), depth))
    c = np.zeros((len(keys), depth))
    np.add.at(n, (qd, pos), 1.0)
    np.add.at(c, (qd, pos), clk)
    theta = np.ones(depth)
    for k in range(depth - 1):
        both = (n[:, k] > 0) & (n[:, k + 1] > 0)
        nk, nk1 = n[both, k], n[both, k + 1]
        if min(nk.sum(), nk1.sum()) < MIN_PAIR_IMPRESSIONS:
            return None
        m = nk * nk1 / (nk + nk1)  # weight each result by how well both rates are known
        top = float(m @ (c[both, k] / nk))
        if top <= 0:
            return None
        theta[k + 1] = theta[k] * min(1.0, float(m @ (c[both, k + 1] / nk1)) / top)
    return theta


def fit_pbm(sessions: Sequence[Session], *, depth: int = 10, iterations: int = 60, prior: float = 1.0,
            theta: np.ndarray | None = None) -> Relevance:
    """Fit the PBM. ``theta``: known examination probabilities; by default they come
    from the randomised swaps (``propensities``), and only where those are too few are
    they fitted by EM with ``gamma``. ``gamma`` is fitted by EM; ``prior``:
    pseudo-impressions pulling each toward the mean click rate (a result seen twice is
    not certain)."""
    if iterations < 1:
        raise InputError(f"iterations must be >= 1, got {iterations}")
    if theta is None:
        theta = propensities(sessions, depth)
    keys, pos, qd, clk = _flatten(sessions, depth)
    n_qd = len(keys)
    if n_qd == 0:
        return Relevance({}, {}, np.ones(depth) if theta is None else np.asarray(theta, dtype=np.float64))
    counts = np.bincount(qd, minlength=n_qd).astype(np.float64)
    fixed = theta is not None
    th = (np.asarray(theta, dtype=np.float64)[:depth].copy() if fixed
          else 1.0 / np.arange(1, depth + 1))  # a common starting point: 1/rank
    base = float(clk.mean())
    g = np.full(n_qd, min(0.5, max(base, 0.05)))
    pos_n = np.bincount(pos, minlength=depth).astype(np.float64)
    for _ in range(iterations):
        t, gg = th[pos], g[qd]
        denom = np.maximum(1.0 - t * gg, 1e-12)
        p_exam = np.where(clk > 0, 1.0, t * (1.0 - gg) / denom)
        p_rel = np.where(clk > 0, 1.0, (1.0 - t) * gg / denom)
        g = (np.bincount(qd, weights=p_rel, minlength=n_qd) + prior * base) / (counts + prior)
        if not fixed:
            th = np.bincount(pos, weights=p_exam, minlength=depth) / np.maximum(pos_n, 1.0)
            th = np.where(pos_n > 0, th, 0.0)
            if th[0] > 0:
                # Only the product theta * gamma is seen: fix the scale at position 1
                # (a user looks at the first result) and let gamma carry the rest.
                scale = th[0]
                th = th / scale
                g = np.clip(g * scale, 0.0, 1.0)
    labels = {key: float(g[j]) for key, j in keys.items()}
    imps = {key: int(counts[j]) for key, j in keys.items()}
    return Relevance(labels, imps, th)


def naive_ctr(sessions: Sequence[Session], *, depth: int = 10) -> Relevance:
    """Clicks over impressions per (query, doc), blind to position."""
    keys, pos, qd, clk = _flatten(sessions, depth)
    n_qd = len(keys)
    counts = np.bincount(qd, minlength=n_qd).astype(np.float64)
    clicks = np.bincount(qd, weights=clk, minlength=n_qd)
    labels = {key: float(clicks[j] / counts[j]) for key, j in keys.items()}
    imps = {key: int(counts[j]) for key, j in keys.items()}
    return Relevance(labels, imps, np.ones(depth))
