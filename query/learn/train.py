"""Training the linear ranker from relevance labels, and the safety gate.

``fit_linear``: a pairwise logistic (RankNet) loss over the clips of each query, the
scores being ``default + w . x``, with an L2 pull of ``w`` toward 0 (the default
ranking), solved by Newton's method (the loss is convex and ``w`` is small).

``gate``: a candidate goes live only if it is at least as good as the live model on
the judged queries (MRR and R@5 overall, and MRR on every query kind; with its click
memory and without it) and on held-out feedback (nDCG@10 against click-model labels
of queries not trained on), and better on at least one of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from engine.errors import InputError
from query.learn.features import N_FEATURES, QueryCandidates
from query.learn.memory import ClickMemory

__all__ = ["TrainingQuery", "JudgedQuery", "Scorer", "as_scorer", "training_queries", "fit_linear", "judged_metrics",
           "feedback_ndcg", "GateReport", "gate", "fit_memory", "BETA_GRID", "TAU", "EPS"]

TAU = 0.05  # score scale of the pairwise loss: fused scores differ by ~0.01-0.3 at the top
EPS = 1e-9  # "at least as good": equal within float noise
PAIR_MARGIN = 0.05  # labels closer than this make no pair


@dataclass
class TrainingQuery:
    """The shown clips of one query: their features (the moment shown: each clip's best
    segment under the default), default scores and labels."""

    x: np.ndarray
    base: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Scorer:
    """A ranking to evaluate: linear weights (None: the default) and a click memory
    with its weight ``beta``."""

    w: np.ndarray | None = None
    memory: ClickMemory | None = None
    beta: float = 0.0

    def ranking(self, qc: QueryCandidates, k: int, tenant: str | None = None) -> list[str]:
        boost = None
        if self.memory is not None and self.beta:
            boost = self.memory.boost(qc.qvec, qc.clips, self.beta, tenant)
        return qc.ranking(self.w, k, boost)


def as_scorer(s: Scorer | np.ndarray | None) -> Scorer:
    return s if isinstance(s, Scorer) else Scorer(s)


@dataclass(frozen=True)
class JudgedQuery:
    cands: QueryCandidates
    relevant: frozenset[str]
    kind: str


def training_queries(cands: Mapping[Hashable, QueryCandidates], labels: Mapping[Hashable, Mapping[str, float]]
                     ) -> list[TrainingQuery]:
    """Join each query's candidates with its labels (clips without a label are left out)."""
    out = []
    for q, lab in labels.items():
        qc = cands.get(q)
        if qc is None or len(lab) < 2:
            continue
        rows = qc.video_rows(None)
        keep = [(rows[c], v) for c, v in lab.items() if c in rows]
        if len(keep) < 2:
            continue
        r = np.array([k for k, _ in keep])
        out.append(TrainingQuery(qc.x[r], qc.base[r], np.array([v for _, v in keep])))
    return out


def _pairs(queries: Sequence[TrainingQuery]):
    dx, db, wt = [], [], []
    for q in queries:
        diff = q.labels[:, None] - q.labels[None, :]
        i, j = np.nonzero(diff > PAIR_MARGIN)
        if len(i) == 0:
            continue
        # LambdaRank's weight (Burges 2010): a pair counts by how much swapping it
        # changes DCG under the default order, so the top of the list matters most.
        pos = np.empty(len(q.base), dtype=np.int64)
        pos[np.argsort(-q.base, kind="stable")] = np.arange(len(q.base))
        disc = 1.0 / np.log2(pos + 2.0)
        dx.append(q.x[i] - q.x[j])
        db.append(q.base[i] - q.base[j])
        wt.append(diff[i, j] * np.abs(disc[i] - disc[j]))
    if not dx:
        return None
    return np.concatenate(dx), np.concatenate(db), np.concatenate(wt)


def fit_linear(queries: Sequence[TrainingQuery], *, l2: float = 1.0, tau: float = TAU,
               iterations: int = 30) -> np.ndarray:
    """The weight vector minimising the pairwise loss plus ``l2/2 |w|^2`` (zeros when
    the labels order no pair)."""
    if l2 <= 0:
        raise InputError(f"l2 must be > 0, got {l2}")
    pairs = _pairs(queries)
    w = np.zeros(N_FEATURES)
    if pairs is None:
        return w
    dx, db, wt = pairs
    wt = wt / wt.sum()

    def loss(w: np.ndarray) -> float:
        m = (db + dx @ w) / tau
        return float(wt @ np.logaddexp(0.0, -m) + 0.5 * l2 * w @ w)

    cur = loss(w)
    for _ in range(iterations):
        m = (db + dx @ w) / tau
        p = 0.5 * (1.0 - np.tanh(0.5 * m))  # sigmoid(-m), stable
        grad = -(dx.T @ (wt * p)) / tau + l2 * w
        h = (dx.T * (wt * p * (1 - p))) @ dx / tau**2 + l2 * np.eye(N_FEATURES)
        step = np.linalg.solve(h, grad)
        t = 1.0
        while t > 1e-6:
            nxt = w - t * step
            val = loss(nxt)
            if val <= cur - 1e-4 * t * float(grad @ step):
                break
            t *= 0.5
        else:
            break
        if cur - val < 1e-12:
            w = nxt
            break
        w, cur = nxt, val
    return w


def _rr(ranking: Sequence[str], relevant: frozenset[str], k: int = 10) -> float:
    for n, c in enumerate(ranking[:k], start=1):
        if c in relevant:
            return 1.0 / n
    return 0.0


def judged_metrics(w: Scorer | np.ndarray | None, queries: Sequence[JudgedQuery]) -> dict[str, dict[str, float]]:
    """Per kind and "overall": MRR (top 10), R@1, R@5 and the query count; clip level."""
    sc = as_scorer(w)
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for q in queries:
        if not q.relevant:
            continue
        r = sc.ranking(q.cands, 10)
        m = (_rr(r, q.relevant), len(set(r[:1]) & q.relevant) / len(q.relevant),
             len(set(r[:5]) & q.relevant) / len(q.relevant))
        rows.setdefault(q.kind, []).append(m)
        rows.setdefault("overall", []).append(m)
    return {k: {"MRR": float(np.mean([v[0] for v in vs])), "R@1": float(np.mean([v[1] for v in vs])),
                "R@5": float(np.mean([v[2] for v in vs])), "n": len(vs)} for k, vs in rows.items()}


def feedback_ndcg(w: Scorer | np.ndarray | None, cands: Mapping[Hashable, QueryCandidates],
                  labels: Mapping[Hashable, Mapping[str, float]], k: int = 10) -> float | None:
    """Mean nDCG@k of the rankings under ``w`` against graded click-model labels
    (a query key that is a (tenant, text) pair ranks with that tenant's memory)."""
    sc = as_scorer(w)
    vals = []
    for q, lab in labels.items():
        qc = cands.get(q)
        if qc is None or not lab or max(lab.values()) <= 0:
            continue
        r = sc.ranking(qc, k, q[0] if isinstance(q, tuple) else None)
        dcg = sum(lab.get(c, 0.0) / math.log2(n + 2) for n, c in enumerate(r))
        ideal = sum(v / math.log2(n + 2) for n, v in enumerate(sorted(lab.values(), reverse=True)[:k]))
        vals.append(dcg / ideal if ideal > 0 else 0.0)
    return float(np.mean(vals)) if vals else None


@dataclass
class GateReport:
    ok: bool
    reasons: list[str]
    checks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": self.reasons, "checks": self.checks}


def gate(candidate: Scorer | np.ndarray, current: Scorer | np.ndarray | None, *, judged: Sequence[JudgedQuery] = (),
         heldout_cands: Mapping[Hashable, QueryCandidates] | None = None,
         heldout_labels: Mapping[Hashable, Mapping[str, float]] | None = None) -> GateReport:
    """Whether ``candidate`` may replace ``current`` (None: the default ranking)."""
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    better = False
    cand, cur = as_scorer(candidate), as_scorer(current)
    # The judged queries are checked with the click memory and without it: users may
    # have asked for a judged query's need, and the memory's help there must not hide
    # a linear part that is worse on queries nobody asked.
    views = [("judged", cand, cur)]
    if cand.memory is not None or cur.memory is not None:
        views.append(("judged without memory", Scorer(cand.w), Scorer(cur.w)))
    for name, c_view, o_view in views if judged else ():
        new, old = judged_metrics(c_view, judged), judged_metrics(o_view, judged)
        checks[name] = {"candidate": new, "current": old}
        for kind in old:
            names = ("MRR", "R@5") if kind == "overall" else ("MRR",)
            for metric in names:
                a, b = new[kind][metric], old[kind][metric]
                if a < b - EPS:
                    reasons.append(f"{name} {kind} {metric} {a:.4f} < current {b:.4f}")
                elif a > b + EPS:
                    better = True
    if heldout_cands is not None and heldout_labels:
        a = feedback_ndcg(cand, heldout_cands, heldout_labels)
        b = feedback_ndcg(cur, heldout_cands, heldout_labels)
        checks["heldout_feedback_ndcg@10"] = {"candidate": a, "current": b}
        if a is not None and b is not None:
            if a < b - EPS:
                reasons.append(f"held-out feedback nDCG@10 {a:.4f} < current {b:.4f}")
            elif a > b + EPS:
                better = True
    if "judged" not in checks and checks.get("heldout_feedback_ndcg@10", {}).get("current") is None:
        reasons.append("nothing to check the candidate against (no judged queries, no held-out feedback)")
    if not reasons and not better:
        reasons.append("no better than the current ranking on any check")
    return GateReport(not reasons, reasons, checks)


BETA_GRID = (0.0, 0.1, 0.3, 1.0, 3.0)
MEMORY_HOLDOUT = 0.2  # share of sessions the memory's weight is chosen on


def fit_memory(sessions, cands: Mapping[Hashable, QueryCandidates], w: np.ndarray | None, *,
               min_impressions: int, grid: Sequence[float] = BETA_GRID, seed: int = 0, labels_fit=None
               ) -> tuple[ClickMemory, float, dict[str, Any]]:
    """The click memory of ``sessions`` and its weight: built from 80 % of the sessions,
    each ``beta`` in ``grid`` is scored by nDCG@10 against the click model's labels of
    the other 20 % (the same queries, later users), the smallest best kept; the memory
    returned is built from every session. ``labels_fit``: what turns sessions into the
    memory's labels (default the PBM; ``naive_ctr`` for a learner blind to position)."""
    from query.learn.clickmodel import fit_pbm

    labels_fit = labels_fit or fit_pbm

    def build(rel) -> ClickMemory:
        return ClickMemory.build({q: (cands[q].qvec, rel.for_query(q, min_impressions))
                                  for q in rel.queries() if q in cands})

    mask = np.random.default_rng(seed).random(len(sessions)) < MEMORY_HOLDOUT
    a = [s for s, m in zip(sessions, mask) if not m]
    b = [s for s, m in zip(sessions, mask) if m]
    rel_a = labels_fit(a)
    rel_b = fit_pbm(b)
    mem_a = build(rel_a)
    labels_b = {q: rel_b.for_query(q) for q in rel_b.queries()}
    scores = {beta: feedback_ndcg(Scorer(w, mem_a, beta), cands, labels_b) or 0.0 for beta in grid}
    best = max(scores.values())
    beta = min(b_ for b_, v in scores.items() if v >= best - EPS)
    return build(labels_fit(sessions)), beta, {"ndcg_by_beta": scores}
