"""One retrain: logged feedback -> click model -> features -> ranker -> safety gate ->
(maybe) the new live model. ``vidseek learn retrain`` and the service's schedule both
call ``retrain``.

1. The impressions and their clicks (``FeedbackStore.sessions``), pooled over tenants;
   queries (tenant + normalised text) are split by a hash into train and held-out
   (``holdout_share``), so the gate judges on queries the model never saw.
2. The PBM click model (``clickmodel.fit_pbm``) gives each (query, video) shown at
   least ``min_impressions`` times a position-corrected relevance.
3. Each query's candidates are scored by the planner's stages now
   (``collect.collect``, with the query's tenant), the most frequent ``max_queries``.
4. ``train.fit_linear`` for each L2 in ``L2_GRID``; the one best on held-out feedback;
   then the click memory (``memory``) of the train queries, its weight chosen on a
   fifth of their sessions held out (``train.fit_memory``).
5. ``train.gate`` against the live model: the judged queries (``LearnConfig.judged``
   or ``--judged``: clips named by file stem) and the held-out feedback; the linear
   ranker with the memory first, else the memory alone. The model is saved either way
   (``learn/models/<version>.json`` with this report, the memory beside it); it goes
   live only if the gate passes and learning is not frozen.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.errors import InputError, NotFoundError
from query.learn.clickmodel import fit_pbm
from query.learn.collect import collect
from query.learn.config import LearnConfig
from query.learn.ranker import LinearRanker, ModelStore
from query.learn.store import FeedbackStore
from query.learn.train import JudgedQuery, feedback_ndcg, fit_linear, fit_memory, gate, training_queries
from query.plan import SearchOptions

__all__ = ["retrain", "load_judged", "L2_GRID", "MAX_QUERIES"]

L2_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
MAX_QUERIES = 2000  # distinct logged queries scored per retrain (the most frequent)


def _held_out(key, share: float) -> bool:
    return int(hashlib.sha256(json.dumps(key).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def load_judged(path: str | Path) -> list[tuple[str, str, frozenset[str]]]:
    """(query, kind, relevant clip names) per non-negative line of a judged JSONL
    (``shared/bench`` format: ``{"qid", "query", "kind", "relevant": [{"clip"}]}``)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"judged queries file {path} does not exist")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rel = frozenset(str(r["clip"]) for r in d.get("relevant", []))
            q, kind = str(d["query"]), str(d["kind"])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}:{n}: not a judged query line ({e})") from e
        if rel:
            out.append((q, kind, rel))
    return out


def _score_queries(searcher, keys, progress) -> dict:
    """Each logged (tenant, text) query's candidates, scored by the planner now."""
    cands = {}
    for n, (tenant, text) in enumerate(keys):
        cands[(tenant, text)] = collect(searcher, text, SearchOptions(tenant=tenant))
        if n % 100 == 99:
            progress(f"features: {n + 1}/{len(keys)} queries")
    return cands


def _fit_linear(cands, train_labels, held_labels, config: LearnConfig):
    """(weights, l2, training queries): the L2 best on the held-out queries' feedback."""
    tq = training_queries(cands, train_labels)
    best = None
    for l2 in sorted({config.l2, *L2_GRID}):
        w = fit_linear(tq, l2=l2)
        score = feedback_ndcg(w, cands, held_labels) or 0.0
        if best is None or score > best[0] + 1e-12:
            best = (score, l2, w)
    return best[2], best[1], len(tq)


def _judged(searcher, path) -> list[JudgedQuery]:
    if not path:
        return []
    return [JudgedQuery(collect(searcher, text, name=lambda v: Path(v.source).stem), rel, kind)
            for text, kind, rel in load_judged(path)]


def _candidate(w, beta, memory, info, live, judged, cands, held_labels):
    """The model to save and the gate's verdict: the linear ranker with the click memory,
    or failing the gate, the memory alone."""
    for w_try in (w, np.zeros_like(w)):
        model = LinearRanker.from_vector(w_try, info, beta=beta, memory=memory)
        verdict = gate(model.scorer(), live.scorer() if live else None, judged=judged, heldout_cands=cands,
                       heldout_labels=held_labels)
        if verdict.ok:
            break
    return model, verdict


def retrain(searcher, store: FeedbackStore, models: ModelStore, config: LearnConfig, *,
            judged: str | Path | None = None, promote: bool = True,
            progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Train, gate and maybe promote; returns the report (also saved with the model)."""
    t0 = time.perf_counter()
    report: dict[str, Any] = {"at": time.time(), "live_before": models.current_version()}
    if models.frozen:
        return {**report, "status": "frozen", "promoted": False}
    sessions = store.sessions()
    report["sessions"] = len(sessions)
    if len(sessions) < config.min_sessions:
        return {**report, "status": "too_few_sessions", "promoted": False,
                "detail": f"{len(sessions)} logged searches, {config.min_sessions} needed (min_sessions)"}
    keys = [k for k, _ in Counter(s.query for s in sessions).most_common(MAX_QUERIES)]
    held = {k for k in keys if _held_out(list(k), config.holdout_share)}
    train_keys = set(keys) - held
    train_sessions = [s for s in sessions if s.query in train_keys]
    train_rel = fit_pbm(train_sessions)
    held_rel = fit_pbm([s for s in sessions if s.query in held])
    progress(f"click model: {len(keys)} queries ({len(held)} held out)")
    cands = _score_queries(searcher, keys, progress)
    held_labels = {k: held_rel.for_query(k, config.min_impressions) for k in held}
    w, l2, n_train = _fit_linear(cands, {k: train_rel.for_query(k, config.min_impressions) for k in train_keys},
                                 held_labels, config)
    memory, beta, mem_detail = fit_memory(train_sessions, cands, w, min_impressions=config.min_impressions)
    report.update(theta=[round(float(t), 4) for t in train_rel.theta], training_queries=n_train, l2=l2, beta=beta,
                  memory_queries=len(memory), memory_ndcg_by_beta=mem_detail["ndcg_by_beta"])
    info = {"trained_at": report["at"], "l2": l2, "sessions": len(sessions)}
    model, verdict = _candidate(w, beta, memory, info, models.current(), _judged(searcher, judged or config.judged),
                                cands, held_labels)
    report.update(gate=verdict.to_dict(), version=model.version)
    models.save(LinearRanker(model.version, model.weights, {**model.info, "report": report}, model.beta,
                             model.memory))
    promoted = False
    if verdict.ok and promote and not models.frozen:
        models.promote(model.version, "passed the safety gate: " + json.dumps(verdict.checks, default=str)[:500])
        promoted = True
    report.update(status="trained", promoted=promoted, seconds=round(time.perf_counter() - t0, 2))
    return report
