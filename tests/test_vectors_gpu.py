"""The vector store's GPU path: shards copied to a FAISS GPU index for search.

These tests need a FAISS build with GPU support and a visible GPU; everywhere else
(CI, the 2-core development machines) they skip with that reason, and the same code
runs with the GPU move skipped, which ``tests/test_vectors.py`` covers. They were run
on a lent H200 through ``scripts/gpu-check.sh`` (see docs/gpu.md for the record).
"""
from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
import pytest

from engine.errors import InputError
from engine.vectors import SearchParams, VectorSettings, VectorStore
from tests.test_vectors import clustered

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        getattr(faiss, "get_num_gpus", lambda: 0)() == 0,
        reason="needs faiss-gpu and a visible GPU (CI and the dev machines have none)",
    ),
]

DIM = 64
N = 20_000
X = clustered(N)
IDS = np.arange(N, dtype=np.int64) * 7 + 100
KEYS = np.arange(N, dtype=np.int64) // 10
QUERIES = clustered(100, seed=1)


def truth(queries: np.ndarray, base: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]
    return ids[order]


def recall(found: np.ndarray, expected: np.ndarray) -> float:
    k = expected.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, expected)]))


def build(path: Path, **kw: object) -> VectorStore:
    base = dict(dim=DIM, num_shards=4, flat_max=2000, use_gpu="always")
    base.update(kw)
    store = VectorStore.create(path, VectorSettings(**base))  # type: ignore[arg-type]
    for start in range(0, N, 5000):
        sl = slice(start, start + 5000)
        store.add(IDS[sl], X[sl], KEYS[sl])
    return store


def test_flat_shards_on_gpu_match_brute_force(tmp_path: Path) -> None:
    store = build(tmp_path / "v", flat_max=10**9)
    scores, found = store.search(QUERIES, SearchParams(k=10))
    assert all(s["on_gpu"] for s in store.info()["shards"]), store.info()["shards"]
    # GPU GEMM may order exact ties differently; the sets must agree.
    assert recall(found, truth(QUERIES, X, IDS, 10)) >= 0.999
    expected = np.sort(QUERIES @ X.T, axis=1)[:, ::-1][:, :10]
    np.testing.assert_allclose(scores, expected, atol=1e-3)


def test_ivf_on_gpu_honours_per_query_nprobe(tmp_path: Path) -> None:
    store = build(tmp_path / "v", approx_factory="IVF{nlist},Flat")
    kinds = {s["kind"] for s in store.info()["shards"]}
    assert kinds == {"approx"}
    expected = truth(QUERIES, X, IDS, 10)
    _, few = store.search(QUERIES, SearchParams(k=10, nprobe=1))
    _, all_lists = store.search(QUERIES, SearchParams(k=10, nprobe=4096))
    assert all(s["on_gpu"] for s in store.info()["shards"])
    assert recall(all_lists, expected) >= 0.999  # every list probed: exact
    assert recall(few, expected) < recall(all_lists, expected)


def test_gpu_ivf_pq_recall_floor(tmp_path: Path) -> None:
    store = build(tmp_path / "v", approx_factory="IVF{nlist},SQ8")
    _, found = store.search(QUERIES, SearchParams(k=10, nprobe=64))
    assert all(s["on_gpu"] for s in store.info()["shards"])
    assert recall(found, truth(QUERIES, X, IDS, 10)) >= 0.9


def test_deleted_video_never_returned_on_gpu(tmp_path: Path) -> None:
    store = build(tmp_path / "v", approx_factory="IVF{nlist},Flat")
    store.search(QUERIES[:1], SearchParams(k=10))  # replicas exist before the delete
    near = truth(QUERIES, X, IDS, 5)
    gone_ids = np.unique(near)
    pos = np.searchsorted(IDS, gone_ids)
    # Delete whole videos: every id sharing a shard key with a top hit.
    gone_keys = np.unique(KEYS[pos])
    mask = np.isin(KEYS, gone_keys)
    store.remove(IDS[mask], KEYS[mask])
    _, found = store.search(QUERIES, SearchParams(k=10, nprobe=4096))
    assert not np.isin(found, IDS[mask]).any()
    keep = ~mask
    assert recall(found, truth(QUERIES, X[keep], IDS[keep], 10)) >= 0.999


def test_add_after_search_refreshes_gpu_replica(tmp_path: Path) -> None:
    store = build(tmp_path / "v", flat_max=10**9)
    store.search(QUERIES[:1], SearchParams(k=1))
    new = QUERIES[:5].copy()  # exact copies of queries: each must become its own top hit
    new_ids = np.arange(5, dtype=np.int64) + 10**9
    store.add(new_ids, new, np.arange(5, dtype=np.int64) + 10**6)
    _, found = store.search(QUERIES[:5], SearchParams(k=1))
    assert found[:, 0].tolist() == new_ids.tolist()


def test_fast_scan_refuses_always_and_stays_on_cpu_under_auto(tmp_path: Path, caplog) -> None:
    with pytest.raises(InputError, match="cannot move"):
        build(tmp_path / "a", approx_factory="IVF{nlist},PQ16x4fs").search(QUERIES[:1], SearchParams(k=10))
    caplog.set_level(logging.WARNING)
    # (At DIM 64 the auto factory is IVF-Flat, which does move: name fast-scan here.)
    fast_scan = "IVF{nlist},PQ16x4fs"
    store = build(tmp_path / "b", use_gpu="auto", approx_factory=fast_scan)
    scores, found = store.search(QUERIES, SearchParams(k=10))
    assert not any(s["on_gpu"] for s in store.info()["shards"] if s["kind"] == "approx")
    assert "stays on CPU" in caplog.text
    cpu = build(tmp_path / "c", use_gpu="never", approx_factory=fast_scan)
    cpu_scores, cpu_found = cpu.search(QUERIES, SearchParams(k=10))
    np.testing.assert_array_equal(found, cpu_found)  # the same CPU index answered both
    np.testing.assert_allclose(scores, cpu_scores, rtol=1e-5, atol=1e-5)
