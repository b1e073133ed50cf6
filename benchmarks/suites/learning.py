"""Learning-from-use simulation: simulated users click on the real index's results,
the learner learns from their clicks, and the judged queries it never saw say whether
the ranking got better.

1. **Queries.** Both judged sets (``shared/bench/queries-public.jsonl`` and
   ``benchmarks/data/moments-queries.jsonl``) are split per kind by a hash of the
   query id: half to *train* (users issue them, and two perturbed variants of each:
   quotes dropped and case folded, a quarter of the content words dropped, a few
   words swapped for synonyms), half to *eval* (never issued, never trained on;
   every figure below is measured on them).
2. **Candidates.** Every query text runs once through the planner's stages on the
   real index (``query.learn.collect``); its candidates' features are cached, so that
   a ranking under any linear model is a matrix product (100k sessions are cheap).
   Check: the cached default ranking gives the judged harness's figures.
3. **Sessions.** A user issues a random train text; the logging ranker is the
   default, with one adjacent pair of the shown 10 swapped in ``randomise_share`` of the
   searches (as the service does). The user looks at position k with probability
   ``(1/k)^eta``, clicks a result it looks at with probability ``p_rel`` if the clip
   is relevant to the query (ground truth), ``p_noise`` otherwise, and stops after a
   relevant click with probability ``p_stop`` (so the users are not the PBM the
   learner assumes).
4. **Learners.** From the first 1k, 10k, 100k sessions: *naive* (labels = clicks /
   impressions) and *corrected* (labels = the PBM's relevance, EM-fitted); the same
   ranker fit (``query.learn.train.fit_linear``), L2 picked on the held-out 20 % of
   the train texts; then the safety gate (train-split judged queries + held-out
   feedback). Reported: MRR, R@1, R@5 on eval, overall and per kind, for the default,
   each learner as trained, and what goes live (gated).
5. **Interleaving.** Team-draft interleaving of the default (A) and the corrected
   100k model (B) over simulated sessions of the eval queries: the share of wins, and
   the regret: the reciprocal rank users got from the interleaved list, against the
   better of the two lists.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.suites import judged
from benchmarks.suites.common import Metric, SuiteResult
from benchmarks.suites.judged import Query
from engine.errors import InputError
from query.learn.clickmodel import Session, fit_pbm, naive_ctr
from query.learn.features import FEATURES, QueryCandidates
from query.learn.interleave import Tally, credit, team_draft
from query.learn.train import JudgedQuery, Scorer, feedback_ndcg, fit_linear, fit_memory, gate, judged_metrics, \
    training_queries

__all__ = ["SimConfig", "split", "variants", "build_cache", "simulate_sessions", "learn", "run", "render_markdown"]

K = 10
STOP = {"a", "an", "the", "of", "in", "on", "at", "to", "and", "with", "is", "are", "by", "for", "from", "his",
        "her", "their", "its", "that", "this", "it", "he", "she", "they", "as", "into", "while", "who"}
SYNONYMS = {
    "man": "guy", "woman": "lady", "person": "someone", "people": "folks", "car": "vehicle", "boat": "vessel",
    "video": "clip", "shows": "displays", "says": "mentions", "talking": "speaking", "speaks": "talks",
    "large": "big", "small": "little", "playing": "performing", "walking": "strolling", "city": "town",
    "screen": "display", "text": "words", "white": "pale", "children": "kids", "child": "kid", "dog": "puppy",
    "sign": "board", "street": "road", "sitting": "seated", "standing": "upright", "camera": "lens",
}


@dataclass(frozen=True)
class SimConfig:
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    seeds: tuple[int, ...] = (0, 1, 2)
    eta: float = 1.0  # position bias: P(look at position k) = (1/k)^eta
    p_rel: float = 0.9  # P(click | looked at, relevant)
    p_noise: float = 0.1  # P(click | looked at, not relevant)
    p_stop: float = 0.5  # P(stop | clicked a relevant result)
    randomise_share: float = 0.05
    randomise_depth: int = 10
    min_impressions: int = 3
    l2_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    holdout_share: float = 0.2
    interleave_sessions: int = 20_000


def _h(s: str) -> float:
    return int(hashlib.sha256(s.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split(queries: Sequence[Query]) -> tuple[list[Query], list[Query]]:
    """(train, eval): per kind, queries sorted by a hash of their id, alternately."""
    train, ev = [], []
    kinds: dict[str, list[Query]] = {}
    for q in queries:
        kinds.setdefault(q.kind, []).append(q)
    for qs in kinds.values():
        for n, q in enumerate(sorted(qs, key=lambda q: _h(q.qid))):
            (train if n % 2 == 0 else ev).append(q)
    return train, ev


def variants(text: str, seed: str) -> list[str]:
    """Two perturbed variants of a query (users phrase the same need differently)."""
    rng = random.Random(seed)
    plain = " ".join(re.sub(r'["“”]', " ", text).lower().split())
    words = plain.split()
    content = [i for i, w in enumerate(words) if w not in STOP]
    drop = set(rng.sample(content, len(content) // 4)) if len(content) >= 4 else set()
    dropped = " ".join(w for i, w in enumerate(words) if i not in drop)
    swapped = " ".join(SYNONYMS.get(w, w) for w in dropped.split())
    out = [plain, swapped if swapped != plain else dropped]
    return [v for v in dict.fromkeys(out) if v and v != text]


def _cache_key(index_dir: Path, texts: Sequence[str]) -> str:
    manifest = (index_dir / "manifest.json").read_bytes() if (index_dir / "manifest.json").exists() else b""
    h = hashlib.sha256(manifest + json.dumps(["v2 qvec", FEATURES, sorted(texts)]).encode())
    return h.hexdigest()[:16]


def build_cache(index_dir: Path, texts: Sequence[str], cache_dir: Path,
                progress: Callable[[str], None] = lambda s: None) -> dict[str, QueryCandidates]:
    """Each text's candidates on the real index (cached on disk, keyed by the index's
    manifest, the feature names and the texts)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"learning-cands-{_cache_key(index_dir, texts)}.pkl"
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f)
    from engine.index import VideoIndex
    from query.learn.collect import collect
    from query.planner import SearchOptions, Searcher

    index = VideoIndex.open(index_dir)
    try:
        searcher = Searcher(index, ranking=None)
        out = {}
        t0 = time.perf_counter()
        for n, t in enumerate(texts):
            out[t] = collect(searcher, t, SearchOptions(k=K), name=lambda v: judged.clip_id(v.source))
            if n % 50 == 49:
                progress(f"learning: candidates of {n + 1}/{len(texts)} texts ({time.perf_counter() - t0:.0f} s)")
    finally:
        index.close()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(out, f)
    tmp.replace(path)
    return out


def _user_clicks(shown: Sequence[str], relevant: frozenset[str], cfg: SimConfig, rng: np.random.Generator
                 ) -> tuple[bool, ...]:
    clicks = []
    stopped = False
    u = rng.random(3 * len(shown))
    for k, c in enumerate(shown):
        if stopped:
            clicks.append(False)
            continue
        look = u[3 * k] < (1.0 / (k + 1)) ** cfg.eta
        rel = c in relevant
        click = look and u[3 * k + 1] < (cfg.p_rel if rel else cfg.p_noise)
        clicks.append(bool(click))
        if click and rel and u[3 * k + 2] < cfg.p_stop:
            stopped = True
    return tuple(clicks)


def simulate_sessions(texts: Sequence[tuple[str, frozenset[str]]], rankings: dict[str, list[str]], n: int,
                      cfg: SimConfig, seed: int) -> list[Session]:
    """``n`` sessions of the logging ranker (``rankings``: each text's top K)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(texts), size=n)
    rand = rng.random(n)
    out = []
    for i in range(n):
        text, rel = texts[picks[i]]
        shown = list(rankings[text])
        if rand[i] < cfg.randomise_share and len(shown) > 1:
            j = int(rng.integers(0, min(len(shown), cfg.randomise_depth) - 1))
            shown[j], shown[j + 1] = shown[j + 1], shown[j]
        out.append(Session(text, tuple(shown), _user_clicks(shown, rel, cfg, rng)))
    return out


def learn(sessions: Sequence[Session], cands: dict[str, QueryCandidates], train_judged: Sequence[JudgedQuery],
          cfg: SimConfig, corrected: bool, group: dict[str, str]) -> dict[str, Any]:
    """Train one learner on ``sessions``: the linear ranker (L2 picked on held-out
    needs), the click memory (its weight picked on held-out sessions), and what the
    safety gate lets go live: both, else the memory alone, else nothing.
    ``group``: text -> its need (a query and its variants are held out together)."""
    texts = sorted({s.query for s in sessions})
    held = {t for t in texts if _h("holdout:" + group[t]) < cfg.holdout_share}
    fit = fit_pbm if corrected else naive_ctr
    train_sessions = [s for s in sessions if s.query not in held]
    train_rel = fit(train_sessions)
    held_rel = fit_pbm([s for s in sessions if s.query in held])  # the gate always corrects
    train_labels = {t: train_rel.for_query(t, cfg.min_impressions) for t in texts if t not in held}
    held_labels = {t: held_rel.for_query(t, cfg.min_impressions) for t in held}
    tq = training_queries(cands, train_labels)
    best = None
    for l2 in cfg.l2_grid:
        w = fit_linear(tq, l2=l2)
        score = feedback_ndcg(w, cands, held_labels) or 0.0
        if best is None or score > best[0] + 1e-12:
            best = (score, l2, w)
    _, l2, w = best
    memory, beta, _ = fit_memory(train_sessions, cands, w, min_impressions=cfg.min_impressions, labels_fit=fit)
    learned = Scorer(w, memory, beta)
    live, verdict = None, None
    for cand in (learned, Scorer(None, memory, beta)):
        verdict = gate(cand, None, judged=train_judged, heldout_cands=cands, heldout_labels=held_labels)
        if verdict.ok:
            live = cand
            break
    return {"w": w, "l2": l2, "beta": beta, "learned": learned, "live": live, "gate": verdict,
            "theta": train_rel.theta.tolist(), "n_train_queries": len(tq), "labels": train_labels}


def _oracle(truth, cands, train_judged, group, cfg: SimConfig) -> dict[str, Any]:
    held = {t for t in truth if _h("holdout:" + group[t]) < cfg.holdout_share}
    tq = training_queries(cands, {t: v for t, v in truth.items() if t not in held})
    held_labels = {t: v for t, v in truth.items() if t in held}
    best = max(((feedback_ndcg(w, cands, held_labels) or 0.0, l2, w) for l2 in cfg.l2_grid
                for w in [fit_linear(tq, l2=l2)]), key=lambda b: b[0])
    return {"l2": best[1], "w": best[2]}


def inverted_pair_accuracy(labels: dict[str, dict[str, float]], rankings: dict[str, list[str]],
                           relevant: dict[str, frozenset[str]]) -> float | None:
    """Over the pairs a learner must flip (a relevant result shown below a non-relevant
    one, both labelled), the share its labels order right: position bias shows here."""
    right = total = 0
    for t, lab in labels.items():
        r, rel = rankings[t], relevant[t]
        for i, a in enumerate(r):
            for b in r[i + 1:]:
                if a not in rel and b in rel and a in lab and b in lab:
                    total += 1
                    right += lab[b] > lab[a]
    return right / total if total else None


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def run(index_dir: Path, query_files: Sequence[Path], cache_dir: Path, cfg: SimConfig = SimConfig(),
        progress: Callable[[str], None] = lambda s: None) -> SuiteResult:
    t_start = time.perf_counter()
    per_file = [judged.load_queries(f) for f in query_files]
    queries = [q for qs in per_file for q in qs]
    if len({q.qid for q in queries}) != len(queries):
        raise InputError("the query files share query ids", hint="give each file's queries their own ids")
    train, ev = split(queries)
    issued: list[tuple[str, frozenset[str]]] = []
    group: dict[str, str] = {}
    for q in train:
        rel = frozenset(q.relevant_clips)
        for t in variants(q.text, q.qid):  # never the judged text itself: see "repeat needs"
            issued.append((t, rel))
            group.setdefault(t, q.qid)
    texts = list(dict.fromkeys([t for t, _ in issued] + [q.text for q in queries]))
    progress(f"learning: {len(train)} train queries ({len(issued)} texts with variants), {len(ev)} eval")
    cands = build_cache(index_dir, texts, cache_dir, progress)
    jq = lambda qs: [JudgedQuery(cands[q.text], frozenset(q.relevant_clips), q.kind) for q in qs]  # noqa: E731
    eval_judged, train_judged = jq([q for q in ev if not q.is_negative]), jq([q for q in train if not q.is_negative])
    fidelity = judged_metrics(None, jq([q for q in per_file[0] if not q.is_negative]))["overall"]
    rankings = {t: cands[t].ranking(None, K) for t, _ in issued}
    default_eval = judged_metrics(None, eval_judged)
    default_repeat = judged_metrics(None, train_judged)
    relevant = dict(issued)
    # The ceiling of the ranker on these features: trained on the true labels of the
    # shown results (what a perfect click model would give), same L2 choice.
    truth = {t: {c: float(c in rel) for c in rankings[t]} for t, rel in issued}
    oracle = _oracle(truth, cands, train_judged, group, cfg)
    rows: list[dict[str, Any]] = []
    for seed in cfg.seeds:
        all_sessions = simulate_sessions(issued, rankings, max(cfg.sizes), cfg, seed)
        for n in cfg.sizes:
            for corrected in (False, True):
                res = learn(all_sessions[:n], cands, train_judged, cfg, corrected, group)
                if corrected and n == max(cfg.sizes) and seed == cfg.seeds[0]:
                    learned_big = res["learned"]
                live = res["live"] or Scorer()
                rows.append({"seed": seed, "sessions": n, "learner": "corrected" if corrected else "naive",
                             "l2": res["l2"], "beta": res["beta"], "gate_ok": res["live"] is not None,
                             "live_kind": ("none" if res["live"] is None else
                                           "memory" if res["live"].w is None else "linear+memory"),
                             "gate_reasons": res["gate"].reasons,
                             "eval": judged_metrics(res["learned"], eval_judged),
                             "live": judged_metrics(live, eval_judged),
                             "repeat": judged_metrics(live, train_judged),
                             "theta": res["theta"], "w": res["w"].tolist(),
                             "inverted_pairs": inverted_pair_accuracy(res["labels"], rankings, relevant)})
                r = rows[-1]
                progress(f"learning: seed {seed}, {n} sessions, {r['learner']}: eval MRR "
                         f"{r['eval']['overall']['MRR']:.3f} (default {default_eval['overall']['MRR']:.3f}), "
                         f"live {r['live_kind']}, repeat needs MRR {r['repeat']['overall']['MRR']:.3f}")
    # Interleaving: default (A) vs the corrected learner from the most sessions, first seed.
    inter = interleaving(eval_judged, learned_big, cfg, seed=99)
    inter["from_sessions"] = max(cfg.sizes)
    oracle_eval = judged_metrics(oracle["w"], eval_judged)
    details = {"oracle_eval": oracle_eval, "default_repeat": default_repeat, "oracle_l2": oracle["l2"],
               "config": asdict(cfg), "split": {"train": [q.qid for q in train], "eval": [q.qid for q in ev]},
               "n_texts": len(texts), "fidelity_public_default": fidelity, "default_eval": default_eval,
               "rows": rows, "interleaving": inter}
    details["markdown"] = render_markdown(details)
    metrics = []
    for r in rows:
        for part in ("eval", "live"):
            metrics.append(Metric(f"learning/{r['learner']}/{r['sessions']}/seed{r['seed']}/{part}/MRR",
                                  round(r[part]["overall"]["MRR"], 6), "higher"))
    return SuiteResult("learning", {"index_dir": str(index_dir), "queries": [str(f) for f in query_files]},
                       metrics, details, time.perf_counter() - t_start)


def interleaving(queries: Sequence[JudgedQuery], w: Scorer, cfg: SimConfig, seed: int) -> dict[str, Any]:
    """Team-draft interleaving of the default (A) and ``w`` (B) over simulated sessions."""
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    tally = Tally()
    rr_inter, rr_a, rr_b, rr_best = [], [], [], []
    lists = [(q.cands.ranking(None, K), w.ranking(q.cands, K), q.relevant) for q in queries]

    def rr(r, rel):
        return next((1.0 / (i + 1) for i, c in enumerate(r) if c in rel), 0.0)

    for _ in range(cfg.interleave_sessions):
        a, b, rel = lists[int(rng.integers(0, len(lists)))]
        il = team_draft(a, b, K, prng)
        clicks = _user_clicks(il.docs, rel, cfg, rng)
        tally.add(credit(il.teams, [i for i, c in enumerate(clicks) if c]))
        rr_inter.append(rr(il.docs, rel))
        rr_a.append(rr(a, rel))
        rr_b.append(rr(b, rel))
        rr_best.append(max(rr(a, rel), rr(b, rel)))
    better = "B" if np.mean(rr_b) > np.mean(rr_a) else ("A" if np.mean(rr_a) > np.mean(rr_b) else "tie")
    return {"sessions": cfg.interleave_sessions, **tally.to_dict(), "truly_better": better,
            "mrr_a": float(np.mean(rr_a)), "mrr_b": float(np.mean(rr_b)), "mrr_interleaved": float(np.mean(rr_inter)),
            "regret_vs_better": float(np.mean(rr_best) - np.mean(rr_inter)),
            "regret_vs_better_list": float(max(np.mean(rr_a), np.mean(rr_b)) - np.mean(rr_inter))}


def _row(label: str, m: dict[str, Any]) -> str:
    o = m["overall"]
    return f"| {label} | {_fmt(o['MRR'])} | {_fmt(o['R@1'])} | {_fmt(o['R@5'])} |"


def render_markdown(d: dict[str, Any]) -> str:
    de, dr, oe = d["default_eval"], d["default_repeat"], d["oracle_eval"]
    kinds = [k for k in de if k != "overall"]
    fid = d["fidelity_public_default"]
    by: dict[tuple[int, str], list[dict]] = {}
    for r in d["rows"]:
        by.setdefault((r["sessions"], r["learner"]), []).append(r)

    def mean(rs, part, kind="overall", metric="MRR"):
        return float(np.mean([r[part][kind][metric] for r in rs]))

    lines = [f"Cached default ranking on every query of the first file: MRR {_fmt(fid['MRR'])}, "
             f"R@1 {_fmt(fid['R@1'])} (the judged harness's figures). Means over seeds {list(d['config']['seeds'])}.",
             "", f"**Held-out needs** (eval split: never issued, never trained on): {de['overall']['n']} queries "
             f"({', '.join(k + ' ' + str(de[k]['n']) for k in kinds)}). *learned*: linear ranker + click memory "
             "as trained; *live*: what the safety gate let through (else the default).", "",
             "| sessions | learner | labels right on inverted pairs | learned MRR | learned R@5 "
             "| worst kind Δ MRR, learned | live (runs) | live MRR | live R@1 | live R@5 | worst kind Δ MRR, live |",
             "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
             f"| 0 | default | - | {_fmt(de['overall']['MRR'])} | {_fmt(de['overall']['R@5'])} | - | - "
             f"| {_fmt(de['overall']['MRR'])} | {_fmt(de['overall']['R@1'])} | {_fmt(de['overall']['R@5'])} | - |",
             f"| all | true labels, linear only (ceiling) | 1.000 | {_fmt(oe['overall']['MRR'])} "
             f"| {_fmt(oe['overall']['R@5'])} | {min(oe[k]['MRR'] - de[k]['MRR'] for k in kinds):+.3f} | not gated "
             "| - | - | - | - |"]
    for (n, learner), rs in sorted(by.items()):
        inv = [r["inverted_pairs"] for r in rs if r["inverted_pairs"] is not None]
        kinds_live = ", ".join(f"{k} {v}" for k, v in sorted(
            {k: sum(r["live_kind"] == k for r in rs) for k in {r["live_kind"] for r in rs}}.items()))
        worst = min(r["eval"][k]["MRR"] - de[k]["MRR"] for r in rs for k in kinds)
        worst_live = min(r["live"][k]["MRR"] - de[k]["MRR"] for r in rs for k in kinds)
        lines.append(f"| {n} | {learner} | {_fmt(float(np.mean(inv))) if inv else '-'} | {_fmt(mean(rs, 'eval'))} "
                     f"| {_fmt(mean(rs, 'eval', metric='R@5'))} | {worst:+.3f} | {kinds_live} "
                     f"| {_fmt(mean(rs, 'live'))} | {_fmt(mean(rs, 'live', metric='R@1'))} "
                     f"| {_fmt(mean(rs, 'live', metric='R@5'))} | {worst_live:+.3f} |")
    lines += ["", f"**Repeat needs** (the train split's {dr['overall']['n']} judged queries: users issued variants "
              "of them, lower-cased without quotes or with a quarter of the words dropped and synonyms, never the "
              "judged text itself; the gate's judged check also uses them). Live ranking:", "",
              "| sessions / learner | MRR | R@1 | R@5 |", "|---|---:|---:|---:|", _row("default", dr)]
    for (n, learner), rs in sorted(by.items()):
        lines.append(f"| {n} {learner} | {_fmt(mean(rs, 'repeat'))} | {_fmt(mean(rs, 'repeat', metric='R@1'))} "
                     f"| {_fmt(mean(rs, 'repeat', metric='R@5'))} |")
    lines += ["", "Per kind, held-out needs, MRR (learned / live):", "",
              "| sessions | learner | " + " | ".join(kinds) + " |", "|---:|---|" + "---:|" * len(kinds),
              "| 0 | default | " + " | ".join(_fmt(de[k]["MRR"]) for k in kinds) + " |",
              "| all | true labels | " + " | ".join(_fmt(oe[k]["MRR"]) for k in kinds) + " |"]
    for (n, learner), rs in sorted(by.items()):
        lines.append(f"| {n} | {learner} | " + " | ".join(
            f"{_fmt(mean(rs, 'eval', k))} / {_fmt(mean(rs, 'live', k))}" for k in kinds) + " |")
    il = d["interleaving"]
    lines += ["", f"Interleaving the default (A) with the corrected learner's model from {il['from_sessions']} "
              f"sessions (B), {il['sessions']} simulated sessions of the held-out needs: wins A {il['wins_a']}, "
              f"B {il['wins_b']}, ties {il['ties']} (preference for B {il['preference_b']:+.3f}; better by MRR: "
              f"{il['truly_better']}, A {il['mrr_a']:.3f}, B {il['mrr_b']:.3f}). Users' MRR on the interleaved lists "
              f"{il['mrr_interleaved']:.3f}: regret {il['regret_vs_better_list']:+.4f} against the better "
              "ranker's list."]
    return "\n".join(lines) + "\n"
