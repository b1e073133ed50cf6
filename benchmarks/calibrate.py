"""Fit and measure the confidence model of search hits (``query.confidence``).

    python -m benchmarks.calibrate --index DIR [--out bench-results/calibration.json] [--save]

The index must hold the judged clips (``python -m benchmarks --suite quality --preset
medium`` builds one under bench-results/cache; pass that folder). Steps:

1. **Collect.** Every query of both query sets is searched (k 10, one moment a video,
   nothing hidden); each hit's confidence features are recorded with its label: 1
   when its clip is relevant to the query, else 0 (every hit of a negative query is 0).
2. **Fit** on the FIT set: the written moment queries
   (``benchmarks/data/moments-queries.jsonl``, 60 positives) and the odd-numbered
   written negatives (``benchmarks/data/negative-queries.jsonl``): an L2-regularised
   logistic regression over the standardised features, then the two level thresholds:
   ``high`` the least p at which the fit set's hits are relevant at least
   ``HIGH_PRECISION`` of the time, ``medium`` the p that keeps ``MEDIUM_KEEP`` of the
   fit set's true top hits (a relevant rank-1 hit) at medium or above.
3. **Measure** on the HELD-OUT set, which nothing was fitted on: the public judged set
   (``../shared/bench/queries-public.jsonl``: 31 positives, 2 negatives) and the
   even-numbered written negatives: the share of negative queries that get a ``high``
   hit, and that get any hit at the default threshold (``medium``); the share of true
   top hits that the default threshold hides; the precision of each level. The same
   figures on the fit set are reported beside them (they are optimistic by design).

``--save`` writes the model, with what it was fitted on and what it measured, to
``query/confidence_model.json`` (the one the search uses).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.suites.judged import Query, clip_id, load_queries

__all__ = ["Sample", "collect", "fit", "measure", "main", "HIGH_PRECISION", "MEDIUM_KEEP"]

ROOT = Path(__file__).resolve().parent
MOMENTS = ROOT / "data" / "moments-queries.jsonl"
NEGATIVES = ROOT / "data" / "negative-queries.jsonl"
PUBLIC = ROOT.parent.parent / "shared" / "bench" / "queries-public.jsonl"
HIGH_PRECISION = 0.9  # a "high" hit is relevant at least this often (on the fit set)
MEDIUM_KEEP = 0.95  # the default threshold keeps this share of the fit set's true top hits
L2 = 1.0  # ridge penalty on the standardised coefficients (about 600 hits to fit)


@dataclass(frozen=True)
class Sample:
    """One hit of one query: its features, whether it is relevant, its rank (1-based)."""

    qid: str
    negative: bool
    rank: int
    relevant: bool
    features: dict[str, float]
    kind: str = ""


def collect(searcher, queries: Sequence[Query], k: int = 10) -> list[Sample]:
    from query.planner import SearchOptions

    out: list[Sample] = []
    for q in queries:
        resp = searcher.search(q.text, options=SearchOptions(k=k, min_confidence="low"))
        for rank, h in enumerate(resp.hits, start=1):
            if h.features:
                out.append(Sample(q.qid, q.is_negative, rank, clip_id(h.source) in q.relevant_clips, h.features,
                                  q.kind))
    return out


def _matrix(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    from query.confidence import FEATURES

    x = np.array([[s.features[f] for f in FEATURES] for s in samples], dtype=np.float64)
    y = np.array([1.0 if s.relevant else 0.0 for s in samples])
    return x, y


def fit(samples: Sequence[Sample], *, l2: float = L2):
    """The logistic regression (Newton steps on the penalised log-likelihood) and the thresholds."""
    from query.confidence import ConfidenceModel

    x, y = _matrix(samples)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], l2)
    pen[-1] = 0.0  # the intercept is not penalised
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -40, 40)))
        grad = z.T @ (p - y) + pen * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    model = ConfidenceModel(tuple(mean), tuple(scale), tuple(w[:-1]), float(w[-1]), {"medium": 0.0, "high": 1.0})
    probs = np.array([model.probability(s.features) for s in samples])
    # high: the least p at which the hits at or above it are relevant >= HIGH_PRECISION
    high = 1.0
    for t in sorted(set(np.round(probs, 4)), reverse=True):
        sel = probs >= t
        if sel.sum() >= 10 and y[sel].mean() >= HIGH_PRECISION:
            high = float(t)
    tops = probs[[i for i, s in enumerate(samples) if s.rank == 1 and s.relevant]]
    medium = float(np.quantile(tops, 1 - MEDIUM_KEEP)) if len(tops) else 0.5
    medium = min(medium, high)
    return ConfidenceModel(model.mean, model.scale, model.coef, model.intercept,
                           {"medium": round(medium, 4), "high": round(high, 4)})


def measure(model, samples: Sequence[Sample]) -> dict:
    """What the model does on ``samples`` (see the module docstring)."""
    by_q: dict[str, list[Sample]] = {}
    for s in samples:
        by_q.setdefault(s.qid, []).append(s)
    level = {id(s): model.level(model.probability(s.features)) for s in samples}
    neg = [q for q, ss in by_q.items() if ss[0].negative]
    pos_tops = [s for s in samples if s.rank == 1 and s.relevant]
    out: dict = {
        "queries": len(by_q), "negative_queries": len(neg), "hits": len(samples),
        "negatives_with_high_hit": sum(any(level[id(s)] == "high" for s in by_q[q]) for q in neg),
        "negatives_with_shown_hit": sum(any(level[id(s)] != "low" for s in by_q[q]) for q in neg),
        "true_top_hits": len(pos_tops),
        "true_top_hits_hidden": sum(level[id(s)] == "low" for s in pos_tops),
        "true_top_hits_high": sum(level[id(s)] == "high" for s in pos_tops),
    }
    out["negative_high_rate"] = round(out["negatives_with_high_hit"] / max(1, len(neg)), 3)
    out["negative_shown_rate"] = round(out["negatives_with_shown_hit"] / max(1, len(neg)), 3)
    out["true_top_hidden_rate"] = round(out["true_top_hits_hidden"] / max(1, len(pos_tops)), 3)
    for lv in ("high", "medium", "low"):
        sel = [s for s in samples if level[id(s)] == lv]
        out[f"precision_{lv}"] = round(sum(s.relevant for s in sel) / len(sel), 3) if sel else None
        out[f"hits_{lv}"] = len(sel)
    kinds = sorted({s.kind for s in pos_tops})
    out["true_top_hidden_by_kind"] = {k: f"{sum(level[id(s)] == 'low' for s in pos_tops if s.kind == k)}"
                                         f"/{sum(s.kind == k for s in pos_tops)}" for k in kinds}
    # positive queries left with nothing shown (the page would say "no good match")
    pos_q = [q for q in by_q if q not in neg]
    out["positive_queries_all_hidden"] = sum(all(level[id(s)] == "low" for s in by_q[q]) for q in pos_q)
    return out


def _split_negatives(queries: Sequence[Query]) -> tuple[list[Query], list[Query]]:
    odd = [q for q in queries if int(q.qid[1:]) % 2 == 1]
    even = [q for q in queries if int(q.qid[1:]) % 2 == 0]
    return odd, even


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True, help="an index holding the judged clips")
    ap.add_argument("--public", default=str(PUBLIC), help="the held-out judged set (default: the public set)")
    ap.add_argument("--out", default="bench-results/calibration.json")
    ap.add_argument("--save", action="store_true", help="write query/confidence_model.json")
    args = ap.parse_args(argv)

    from engine.index import VideoIndex
    from query.confidence import MODEL_PATH
    from query.planner import Searcher

    fit_neg, held_neg = _split_negatives(load_queries(NEGATIVES))
    fit_q = load_queries(MOMENTS) + fit_neg
    held_q = load_queries(args.public) + held_neg
    if {q.text for q in fit_q} & {q.text for q in held_q}:
        raise SystemExit("a query is in both the fit and the held-out set")
    t0 = time.perf_counter()
    index = VideoIndex.open(args.index)
    try:
        searcher = Searcher(index, confidence=None)
        fit_s, held_s = collect(searcher, fit_q), collect(searcher, held_q)
    finally:
        index.close()
    model = fit(fit_s)
    report = {
        "fit_on": {"queries": [str(MOMENTS.name), f"{NEGATIVES.name} (odd qids)"], "hits": len(fit_s)},
        "held_out": {"queries": [Path(args.public).name, f"{NEGATIVES.name} (even qids)"], "hits": len(held_s)},
        "model": model.to_dict(),
        "fit": measure(model, fit_s),
        "held_out_measures": measure(model, held_s),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("fit", "held_out_measures")}, indent=1))
    print(f"thresholds {model.thresholds}; wrote {args.out}", file=sys.stderr)
    if args.save:
        from query.confidence import ConfidenceModel

        info = {"fit_on": report["fit_on"], "held_out": report["held_out"],
                "held_out_measures": report["held_out_measures"], "fit_measures": report["fit"],
                "date": time.strftime("%Y-%m-%d")}
        ConfidenceModel(model.mean, model.scale, model.coef, model.intercept, model.thresholds, info).save(MODEL_PATH)
        print(f"saved {MODEL_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
