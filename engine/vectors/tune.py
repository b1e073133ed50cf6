"""Search defaults tuned per shard on a held-out sample, at train time.

Why: one fixed probe share and refine depth cannot suit every shard size. On the
benchmark's synthetic joint vectors (d = 1536, 4 shards) a sixth of the lists and
``k_factor`` 8 gave recall@10 0.80 just past ``flat_max`` (20k-vector shards), 0.93 at
100k vectors and 0.985 at 1M, and 10M needed ``k_factor`` 16 (``docs/vectors.md``).
So each approximate shard measures, after it is trained (and again each time it has
doubled since), which ``(nprobe, k_factor)`` reach ``TARGET_RECALL`` on its own data:

- **Sample.** Up to ``tune_queries`` (default 200) of its live vectors, drawn with a
  seeded generator, serve as queries; each one's exact top 10 among the *other* live
  vectors (itself excluded, so the sample is held out) is found by brute force over
  the stored vectors, read back in chunks.
- **Ladder.** Probe shares from the untuned default (a sixth of the lists, 16 to 384)
  to all of them, ``k_factor`` from its default (8 in RAM, 16 on disk) to 64 (only for
  factories with a refine stage): tuning only ever raises them, because queries from
  another distribution than the data (``tests/test_vectors.py`` draws its queries from
  other cluster centres) can need more than the sample does. Tried in order of an estimated cost (codes
  scanned plus refine rows scored, disk rows weighted as random reads); a setting
  no better on both knobs than one that already missed the target is skipped. The
  first that reaches the target wins; if none does, the best recall found.
- **Result.** ``{"nprobe", "k_factor", "recall", "at_n", "queries", "target"}``: the
  shard's manifest entry keeps it and its searches use it where a query's
  ``SearchParams`` and ``settings.extra`` leave the knob unset.

The self-excluded sample stands for queries drawn from the data's distribution;
queries from elsewhere (a text query against image blocks) may need more, which is why
the target (0.97) sits above the product's promise (0.95). ``settings.extra`` keys:
``tune`` (false turns it off), ``tune_recall``, ``tune_queries``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import faiss
import numpy as np

from engine.vectors.base import SearchParams

# The shard is duck-typed (engine.vectors.shard.FaissShard: ivf_nlist, has_refine,
# refine_on_disk, code_bytes, live_positions, reconstruct, id_map, settings, dim,
# shard_no, ntotal); importing it here would make a cycle.
FaissShard = Any

__all__ = ["TARGET_RECALL", "TUNE_QUERIES", "PROBE_SHARES", "K_FACTORS", "tune_shard", "tuning_enabled"]

log = logging.getLogger(__name__)

TARGET_RECALL = 0.97
TUNE_QUERIES = 200
TUNE_K = 10
PROBE_SHARES = (1 / 32, 1 / 16, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 1.0)
K_FACTORS = (4, 8, 16, 32, 64)
_CHUNK = 32_768  # rows read back at a time for the exact truth
DISK_ROW_WEIGHT = 16  # a refine row read from the file costs about this many in-RAM rows


def tuning_enabled(extra: dict | None) -> bool:
    """False when ``settings.extra`` turns tuning off (``tune = false``)."""
    value = (extra or {}).get("tune", True)
    return value not in (False, 0, "false", "no", "off")


def tune_shard(shard: FaissShard, search: Callable[[np.ndarray, int, SearchParams], np.ndarray],
               floor_nprobe: int = 1, floor_k_factor: int = 1) -> dict | None:
    """Tune ``shard`` (see the module doc); ``search(queries, k, params)`` returns the
    global ids (nq, k) of a CPU search of the shard. Settings below ``floor_nprobe`` /
    ``floor_k_factor`` (the untuned defaults) are never chosen: tuning only raises them.
    None when the shard has no IVF knob to tune or too few live vectors."""
    ivf_nlist = shard.ivf_nlist
    if ivf_nlist is None:
        return None
    extra = shard.settings.extra or {}
    target = float(extra.get("tune_recall", TARGET_RECALL))
    live = shard.live_positions()
    nq = min(int(extra.get("tune_queries", TUNE_QUERIES)), len(live) // 20)
    if nq < 10:
        return None
    rng = np.random.default_rng([shard.shard_no, len(live), 17])
    q_pos = np.sort(rng.choice(live, size=nq, replace=False))
    queries = np.ascontiguousarray(shard.reconstruct(q_pos), dtype=np.float32)
    truth = _exact_truth(shard, queries, q_pos, live)
    id_map = shard.id_map()
    truth_ids = np.where(truth >= 0, id_map[np.maximum(truth, 0)], -1)
    self_ids = id_map[q_pos]

    refine = shard.has_refine
    k_factors: tuple[int | None, ...] = (
        tuple(sorted({floor_k_factor, *(kf for kf in K_FACTORS if kf > floor_k_factor)})) if refine else (None,))
    floor_p = max(1, min(ivf_nlist, floor_nprobe))
    nprobes = sorted({max(floor_p, min(ivf_nlist, int(round(ivf_nlist * s)))) for s in PROBE_SHARES})
    n = len(live)
    code = max(1, shard.code_bytes)
    row = 2 * shard.dim * (DISK_ROW_WEIGHT if shard.refine_on_disk else 1)

    def cost(p: int, kf: int | None) -> float:
        return (p / ivf_nlist) * n * code + p * 64 + (TUNE_K * kf * row if kf else 0)

    combos = sorted(((p, kf) for p in nprobes for kf in k_factors), key=lambda c: cost(*c))
    failed: list[tuple[int, int]] = []
    best: tuple[float, int, int | None] | None = None
    for p, kf in combos:
        if any(p <= fp and (kf or 0) <= fk for fp, fk in failed):
            continue  # dominated by a setting that already missed
        found = search(queries, TUNE_K + 1, SearchParams(k=TUNE_K + 1, nprobe=p, k_factor=kf))
        recall = _recall(found, truth_ids, self_ids)
        if best is None or recall > best[0]:
            best = (recall, p, kf)
        if recall >= target:
            best = (recall, p, kf)
            break
        failed.append((p, kf or 0))
    assert best is not None
    recall, p, kf = best
    if recall < target:
        log.warning("shard %d: best tuned recall@10 %.3f < target %.2f (nprobe %d of %d, k_factor %s)",
                    shard.shard_no, recall, target, p, ivf_nlist, kf)
    return {"nprobe": int(p), "k_factor": None if kf is None else int(kf), "recall": round(float(recall), 4),
            "at_n": int(shard.ntotal), "queries": int(nq), "target": target}


def _exact_truth(shard: FaissShard, queries: np.ndarray, q_pos: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Positions (nq, TUNE_K) of each query's exact top 10 among the live vectors, itself excluded."""
    heap = faiss.ResultHeap(len(queries), TUNE_K, keep_max=True)
    for start in range(0, len(live), _CHUNK):
        pos = live[start : start + _CHUNK]
        x = np.ascontiguousarray(shard.reconstruct(pos), dtype=np.float32)
        kk = min(TUNE_K + 1, len(pos))
        d, i = faiss.knn(queries, x, kk, metric=faiss.METRIC_INNER_PRODUCT)
        got = np.where(i >= 0, pos[np.maximum(i, 0)], -1)
        d = np.where(got == q_pos[:, None], -np.inf, d)  # a query is not its own neighbour
        got = np.where(np.isfinite(d), got, -1)
        heap.add_result(np.ascontiguousarray(d, dtype=np.float32), np.ascontiguousarray(got, dtype=np.int64))
    heap.finalize()
    return heap.I.copy()


def _recall(found: np.ndarray, truth_ids: np.ndarray, self_ids: np.ndarray) -> float:
    """Share of each query's true top 10 among its top 10 results other than itself."""
    hits = 0
    total = 0
    for f, t, s in zip(found, truth_ids, self_ids):
        f = f[(f >= 0) & (f != s)][:TUNE_K]
        t = t[t >= 0]
        hits += len(np.intersect1d(f, t))
        total += len(t)
    return hits / total if total else 1.0


def describe(tuning: dict[str, Any] | None) -> str:
    """A short human line for logs."""
    if not tuning:
        return "untuned"
    return f"nprobe {tuning['nprobe']}, k_factor {tuning['k_factor']}, recall@10 {tuning['recall']}"
