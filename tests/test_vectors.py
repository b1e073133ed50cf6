"""Behaviour of the sharded FAISS vector store (``engine.vectors``) on seeded data.

Exact shards are checked against numpy brute force; approximate and sharded paths
against a recall floor; deletion, persistence, checksums and per-query parameters
against what the contract in ``engine/vectors/base.py`` promises.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from engine.errors import CorruptIndexError, IndexLockedError, IndexMismatchError, InputError, NotFoundError
from engine.vectors import MANIFEST_NAME, SearchParams, VectorSettings, VectorStore

DIM = 64


def clustered(n: int, dim: int = DIM, clusters: int = 50, noise: float = 0.6, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``clusters`` gaussian centres (seeded)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(queries: np.ndarray, base: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ base.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))


def settings(**kw: object) -> VectorSettings:
    base = dict(dim=DIM, num_shards=4, flat_max=2000, use_gpu="never")
    base.update(kw)
    return VectorSettings(**base)  # type: ignore[arg-type]


def build(path: Path, x: np.ndarray, ids: np.ndarray, keys: np.ndarray, batch: int = 5000, **kw: object) -> VectorStore:
    store = VectorStore.create(path, settings(**kw))
    for start in range(0, len(ids), batch):
        sl = slice(start, start + batch)
        store.add(ids[sl], x[sl], keys[sl])
    return store


# Shared read-only data: 20k clustered vectors, ids not equal to positions, and
# shard keys that group ~10 "segments" per "video".
N = 20_000
X = clustered(N)
IDS = np.arange(N, dtype=np.int64) * 7 + 100
KEYS = IDS // 70
QUERIES = clustered(200, seed=1)


@pytest.fixture(scope="module")
def sharded_store(tmp_path_factory: pytest.TempPathFactory) -> VectorStore:
    store = build(tmp_path_factory.mktemp("sharded"), X, IDS, KEYS)
    yield store
    store.close()


# ------------------------------------------------------------------- search
def test_flat_search_equals_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = clustered(3000, dim=32, seed=3)
    ids = rng.choice(10**9, size=3000, replace=False).astype(np.int64)
    keys = rng.integers(0, 1000, 3000)
    with build(tmp_path, x, ids, keys, batch=700, dim=32, num_shards=3, flat_max=10_000) as store:
        assert {s["kind"] for s in store.info()["shards"]} == {"flat"}
        q = clustered(40, dim=32, seed=4)
        scores, found = store.search(q, SearchParams(k=15))
        want_scores, want_ids = brute_force(q, x, ids, 15)
        np.testing.assert_array_equal(found, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


def test_results_padded_when_fewer_than_k(tmp_path: Path) -> None:
    with VectorStore.create(tmp_path, settings()) as store:
        scores, ids = store.search(QUERIES[:3], SearchParams(k=5))
        assert (ids == -1).all() and np.isneginf(scores).all()
        store.add(IDS[:3], X[:3], KEYS[:3])
        scores, ids = store.search(QUERIES[:2], SearchParams(k=5))
        assert ids.shape == (2, 5)
        assert (ids[:, :3] >= 0).all() and (ids[:, 3:] == -1).all()
        assert np.isneginf(scores[:, 3:]).all() and np.isfinite(scores[:, :3]).all()


def test_approximate_single_shard_recall(tmp_path: Path) -> None:
    with build(tmp_path, X, IDS, KEYS, num_shards=1) as store:
        [shard] = store.info()["shards"]
        assert shard["kind"] == "approx" and shard["count"] == N
        _, found = store.search(QUERIES, SearchParams(k=10))
        _, truth = brute_force(QUERIES, X, IDS, 10)
        assert recall_at_k(found, truth) >= 0.9


def test_sharded_recall(sharded_store: VectorStore) -> None:
    assert sharded_store.count() == N
    assert {s["kind"] for s in sharded_store.info()["shards"]} == {"approx"}
    scores, found = sharded_store.search(QUERIES, SearchParams(k=10))
    _, truth = brute_force(QUERIES, X, IDS, 10)
    assert recall_at_k(found, truth) >= 0.9
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "merged scores must be descending"
    assert all(len(set(row)) == 10 for row in found.tolist()), "no id twice in one result"


def test_switch_to_approximate_keeps_every_id(tmp_path: Path) -> None:
    with VectorStore.create(tmp_path, settings(num_shards=2, flat_max=1500)) as store:
        store.add(IDS[:2500], X[:2500], KEYS[:2500])
        before = store.live_ids()
        assert {s["kind"] for s in store.info()["shards"]} == {"flat"}
        store.add(IDS[2500:5000], X[2500:5000], KEYS[2500:5000])
        info = store.info()
        assert {s["kind"] for s in info["shards"]} == {"approx"}
        assert all(s["ntotal"] == s["count"] for s in info["shards"])
        after = store.live_ids()
        np.testing.assert_array_equal(after, np.sort(np.concatenate([before, IDS[2500:5000]])))
        # Each vector is still stored under its own id: it finds itself first.
        _, found = store.search(X[:2500:50], SearchParams(k=1, nprobe=10_000))
        np.testing.assert_array_equal(found[:, 0], IDS[:2500:50])


def test_retrain_on_growth_keeps_ids(tmp_path: Path) -> None:
    with VectorStore.create(tmp_path, settings(num_shards=1, flat_max=500, extra={"retrain_growth": 2.0})) as store:
        for start in range(0, 6000, 600):
            store.add(IDS[start : start + 600], X[start : start + 600], KEYS[start : start + 600])
        [shard] = store.info()["shards"]
        assert shard["trained_n"] > 600  # retrained at least once as it grew
        np.testing.assert_array_equal(store.live_ids(), np.sort(IDS[:6000]))
        _, found = store.search(X[:6000:97], SearchParams(k=1, nprobe=10_000))
        np.testing.assert_array_equal(found[:, 0], IDS[:6000:97])


# -------------------------------------------------------------- parameters
def test_per_query_params_do_not_change_the_shared_index(sharded_store: VectorStore) -> None:
    default = sharded_store.search(QUERIES, SearchParams(k=10))
    narrow = sharded_store.search(QUERIES, SearchParams(k=10, nprobe=1, k_factor=1))
    again = sharded_store.search(QUERIES, SearchParams(k=10))
    np.testing.assert_array_equal(default[1], again[1])
    np.testing.assert_array_equal(default[0], again[0])
    assert not np.array_equal(default[1], narrow[1]), "nprobe=1 should change results on this data"
    for shard in sharded_store._shards:
        ivf = faiss.extract_index_ivf(shard.inner)
        assert ivf.nprobe == 1  # FAISS's own default, never touched by a search


def test_probe_share_scales_with_each_shard(sharded_store: VectorStore) -> None:
    """probe_share=1 probes every list of every shard (same as a huge nprobe); a tiny
    share probes one list; an explicit nprobe wins over the share."""
    everything = sharded_store.search(QUERIES, SearchParams(k=10, nprobe=10_000, k_factor=1))
    np.testing.assert_array_equal(
        sharded_store.search(QUERIES, SearchParams(k=10, probe_share=1.0, k_factor=1))[1], everything[1])
    one = sharded_store.search(QUERIES, SearchParams(k=10, nprobe=1, k_factor=1))
    np.testing.assert_array_equal(
        sharded_store.search(QUERIES, SearchParams(k=10, probe_share=1e-6, k_factor=1))[1], one[1])
    np.testing.assert_array_equal(
        sharded_store.search(QUERIES, SearchParams(k=10, nprobe=1, probe_share=1.0, k_factor=1))[1], one[1])
    with pytest.raises(ValueError, match="probe_share"):
        SearchParams(probe_share=0.0)


def test_concurrent_searches_with_different_params(sharded_store: VectorStore) -> None:
    settings_list = [SearchParams(k=10), SearchParams(k=10, nprobe=1), SearchParams(k=5, nprobe=3), SearchParams(k=10, nprobe=64)]
    expected = [sharded_store.search(QUERIES, p) for p in settings_list]
    errors: list[str] = []

    def worker(i: int) -> None:
        for _ in range(15):
            j = (i + _) % len(settings_list)
            scores, ids = sharded_store.search(QUERIES, settings_list[j])
            if not np.array_equal(ids, expected[j][1]):
                errors.append(f"thread {i} params {settings_list[j]}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_hnsw_ef_search_travels_with_the_call(tmp_path: Path) -> None:
    with build(tmp_path, X[:3000], IDS[:3000], KEYS[:3000], flat_max=500, approx_factory="HNSW16,Flat") as store:
        hnsw_before = [faiss.downcast_index(s.inner).hnsw.efSearch for s in store._shards]
        default = store.search(QUERIES, SearchParams(k=10))
        store.search(QUERIES, SearchParams(k=10, ef_search=10))
        store.search(QUERIES, SearchParams(k=10, ef_search=400))
        np.testing.assert_array_equal(store.search(QUERIES, SearchParams(k=10))[1], default[1])
        assert [faiss.downcast_index(s.inner).hnsw.efSearch for s in store._shards] == hnsw_before
        _, truth = brute_force(QUERIES, X[:3000], IDS[:3000], 10)
        assert recall_at_k(default[1], truth) >= 0.9


def test_search_defaults_come_from_settings_extra(tmp_path: Path) -> None:
    with build(tmp_path / "a", X, IDS, KEYS, extra={"nprobe": 1}) as store:
        one = store.search(QUERIES, SearchParams(k=10))
        np.testing.assert_array_equal(one[1], store.search(QUERIES, SearchParams(k=10, nprobe=1))[1])
    with pytest.raises(InputError, match="nprobe"):
        VectorStore.create(tmp_path / "b", settings(extra={"nprobe": 0}))


def test_k_validation_and_query_shape(sharded_store: VectorStore) -> None:
    with pytest.raises(ValueError):
        SearchParams(k=0)
    with pytest.raises(InputError, match="shape"):
        sharded_store.search(np.zeros((2, DIM + 1), np.float32), SearchParams())
    with pytest.raises(InputError, match="NaN"):
        sharded_store.search(np.full((1, DIM), np.nan, np.float32), SearchParams())


# ------------------------------------------------------------------ removal
def test_remove_on_flat_shards_uses_remove_ids(tmp_path: Path) -> None:
    with build(tmp_path, X[:3000], IDS[:3000], KEYS[:3000], flat_max=5000) as store:
        gone = IDS[:3000:3]
        store.remove(gone, KEYS[:3000:3])
        info = store.info()
        assert all(s["kind"] == "flat" and s["tombstones"] == 0 for s in info["shards"])
        assert store.count() == 3000 - len(gone)
        keep = np.ones(3000, bool)
        keep[::3] = False
        scores, found = store.search(QUERIES, SearchParams(k=20))
        assert not np.isin(found, gone).any()
        _, truth = brute_force(QUERIES, X[:3000][keep], IDS[:3000][keep], 20)
        np.testing.assert_array_equal(found, truth)
        store.remove(np.array([10**12]), np.array([5]))  # unknown id: no-op
        assert store.count() == 3000 - len(gone)


@pytest.mark.parametrize("factory", ["auto", "IVF{nlist},PQ16x4fs,Refine(SQfp16)", "HNSW16,Flat"])
@pytest.mark.parametrize("selector", [True, False], ids=["selector", "overfetch"])
def test_remove_on_approximate_shards_uses_tombstones(tmp_path: Path, factory: str, selector: bool) -> None:
    n = 4000
    with build(tmp_path, X[:n], IDS[:n], KEYS[:n], flat_max=400, approx_factory=factory, compact_ratio=0.5) as store:
        if not selector:  # the path GPU indexes take: search deeper, then filter
            for shard in store._shards:
                shard._structure.selector_ok = False
        gone = IDS[:n:5]
        store.remove(gone, KEYS[:n:5])
        assert sum(s["tombstones"] for s in store.info()["shards"]) == len(gone)
        assert store.count() == n - len(gone)
        q = np.concatenate([X[:n:5][:40], QUERIES[:40]])  # deleted vectors as queries: worst case
        _, found = store.search(q, SearchParams(k=30))
        assert not np.isin(found, gone).any()
        assert (found >= 0).all(), "tombstones must not leave holes in the top k"

        store.save(1)
        store.close()
        with VectorStore.open(tmp_path) as reopened:
            if not selector:
                for shard in reopened._shards:
                    shard._structure.selector_ok = False
            assert sum(s["tombstones"] for s in reopened.info()["shards"]) == len(gone)
            _, again = reopened.search(q, SearchParams(k=30))
            np.testing.assert_array_equal(again, found)
            assert reopened.compact(force=True) == 4
            assert all(s["tombstones"] == 0 for s in reopened.info()["shards"])
            np.testing.assert_array_equal(reopened.live_ids(), np.setdiff1d(IDS[:n], gone))
            _, compacted = reopened.search(q, SearchParams(k=30))
            assert not np.isin(compacted, gone).any()


def test_remove_past_compact_ratio_compacts(tmp_path: Path) -> None:
    with build(tmp_path, X[:4000], IDS[:4000], KEYS[:4000], flat_max=400, compact_ratio=0.2) as store:
        store.remove(IDS[:400], KEYS[:400])  # 10%: tombstones stay
        assert sum(s["tombstones"] for s in store.info()["shards"]) == 400
        store.remove(IDS[400:1200], KEYS[400:1200])  # 30% of each shard: compacted
        assert all(s["tombstones"] == 0 for s in store.info()["shards"])
        np.testing.assert_array_equal(store.live_ids(), np.sort(IDS[1200:4000]))
        _, found = store.search(X[:1200:10], SearchParams(k=20))
        assert not np.isin(found, IDS[:1200]).any()


def test_duplicate_add_raises_and_readd_after_remove_works(tmp_path: Path) -> None:
    with build(tmp_path, X[:3000], IDS[:3000], KEYS[:3000], flat_max=500) as store:
        with pytest.raises(InputError, match="already live"):
            store.add(IDS[10:12], X[10:12], KEYS[10:12])
        with pytest.raises(InputError, match="already live"):  # same id, other shard key
            store.add(IDS[10:11], X[10:11], KEYS[10:11] + 1)
        with pytest.raises(InputError, match="repeat"):
            store.add(np.array([5, 5]), X[:2], np.array([1, 1]))
        assert store.count() == 3000
        store.remove(IDS[10:12], KEYS[10:12])  # tombstones (approximate shards)
        store.add(IDS[10:12], X[20:22], KEYS[10:12])  # same ids, new vectors
        assert store.count() == 3000
        _, found = store.search(X[20:22], SearchParams(k=1, nprobe=10_000))
        np.testing.assert_array_equal(found[:, 0], IDS[10:12])
        _, found = store.search(X[10:12], SearchParams(k=3, nprobe=10_000))
        # the old vectors are gone: ids 10..11 now sit at X[20:22], not at X[10:12]
        assert found[0, 0] != IDS[10] and found[1, 0] != IDS[11]


def test_bad_inputs_raise_input_error(tmp_path: Path) -> None:
    with VectorStore.create(tmp_path, settings()) as store:
        with pytest.raises(InputError, match="shape"):
            store.add(IDS[:2], X[:2, :10], KEYS[:2])
        with pytest.raises(InputError, match="differ in length"):
            store.add(IDS[:3], X[:2], KEYS[:2])
        with pytest.raises(InputError, match=">= 0"):
            store.add(np.array([-1, 2]), X[:2], KEYS[:2])
        with pytest.raises(InputError, match="integers"):
            store.add(np.array([1.5, 2.0]), X[:2], KEYS[:2])
    with pytest.raises(InputError, match="approx_factory"):
        VectorStore.create(tmp_path / "bad", settings(approx_factory="NotAnIndex{nlist}"))


# ------------------------------------------------------------- persistence
def test_save_open_roundtrip_writes_only_dirty_shards(tmp_path: Path) -> None:
    store = build(tmp_path, X[:6000], IDS[:6000], KEYS[:6000])
    before = store.search(QUERIES, SearchParams(k=10))
    store.save(5)
    store.close()
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["format_version"] == 1 and manifest["faiss_version"] == faiss.__version__
    assert manifest["applied_seq"] == 5 and manifest["count"] == 6000
    assert manifest["settings"]["dim"] == DIM and manifest["created"] and manifest["updated"]
    assert all(len(e["sha256"]) == 64 and e["file"].endswith(".000001.faiss") for e in manifest["shards"])

    with VectorStore.open(tmp_path, expected=settings()) as store:
        assert store.applied_seq == 5 and store.count() == 6000
        after = store.search(QUERIES, SearchParams(k=10))
        np.testing.assert_array_equal(after[1], before[1])
        np.testing.assert_array_equal(after[0], before[0])
        # One new vector in one shard: only that shard gets a new file.
        new_id, new_key = np.array([10**9]), np.array([2])
        store.add(new_id, X[:1], new_key)
        store.save(6)
    manifest2 = json.loads((tmp_path / MANIFEST_NAME).read_text())
    changed = [a["file"] != b["file"] for a, b in zip(manifest["shards"], manifest2["shards"])]
    assert changed == [i == 2 for i in range(4)]
    on_disk = sorted(p.name for p in tmp_path.glob("shard-*"))
    assert on_disk == sorted(e["file"] for e in manifest2["shards"]), "superseded files are deleted"
    with VectorStore.open(tmp_path, read_only=True) as store:
        assert store.count() == 6001 and store.applied_seq == 6
        info = store.info()
        assert info["generation"] == 2 and info["disk_bytes"] > 0 and len(info["shards"]) == 4
        json.dumps(info)


def test_unsaved_changes_are_not_on_disk(tmp_path: Path) -> None:
    with VectorStore.create(tmp_path, settings()) as store:
        store.add(IDS[:100], X[:100], KEYS[:100])
        store.save(1)
        store.add(IDS[100:200], X[100:200], KEYS[100:200])
    with VectorStore.open(tmp_path) as store:
        assert store.count() == 100 and store.applied_seq == 1
        with pytest.raises(InputError, match="behind"):
            store.save(0)


def test_manifest_mismatch_names_the_difference(tmp_path: Path) -> None:
    VectorStore.create(tmp_path, settings(dim=384)).close()
    with pytest.raises(IndexMismatchError, match="dim 384 != 1536"):
        VectorStore.open(tmp_path, expected=settings(dim=1536))
    with pytest.raises(IndexMismatchError, match="num_shards 4 != 8"):
        VectorStore.open(tmp_path, expected=settings(dim=384, num_shards=8))
    with pytest.raises(IndexMismatchError, match="approx_factory"):
        VectorStore.open(tmp_path, expected=settings(dim=384, approx_factory="HNSW32,Flat"))
    # Tuning knobs may change between runs.
    with VectorStore.open(tmp_path, expected=settings(dim=384, flat_max=10, compact_ratio=0.5)) as store:
        assert store.settings.flat_max == 10


def test_manifest_format_and_missing_store(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        VectorStore.open(tmp_path / "nothing")
    VectorStore.create(tmp_path, settings()).close()
    with pytest.raises(InputError, match="already holds"):
        VectorStore.create(tmp_path, settings())
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    manifest["format_version"] = 99
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="format_version 99"):
        VectorStore.open(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(CorruptIndexError):
        VectorStore.open(tmp_path)


def test_corrupt_or_missing_shard_file_is_detected(tmp_path: Path) -> None:
    with build(tmp_path, X[:3000], IDS[:3000], KEYS[:3000]) as store:
        store.save(1)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    target = tmp_path / manifest["shards"][1]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptIndexError, match="checksum mismatch") as err:
        VectorStore.open(tmp_path)
    assert target.name in str(err.value)
    target.unlink()
    with pytest.raises(CorruptIndexError, match="missing"):
        VectorStore.open(tmp_path)


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with VectorStore.create(tmp_path, settings()) as writer:
        writer.add(IDS[:10], X[:10], KEYS[:10])
        writer.save(1)
        with pytest.raises(IndexLockedError):
            VectorStore.open(tmp_path)
        with VectorStore.open(tmp_path, read_only=True) as reader:
            assert reader.count() == 10
            # A reader replays in memory but can never write files.
            reader.add(IDS[10:11], X[10:11], KEYS[10:11])
            assert reader.count() == 11
            with pytest.raises(InputError, match="read_only"):
                reader.save(2)
        with VectorStore.open(tmp_path, read_only=True) as reader:
            assert reader.count() == 10  # nothing of the reader's replay reached disk
    VectorStore.open(tmp_path).close()  # released on close


def test_orphans_from_a_crashed_save_are_removed(tmp_path: Path) -> None:
    with VectorStore.create(tmp_path, settings()) as store:
        store.add(IDS[:100], X[:100], KEYS[:100])
        store.save(1)
    (tmp_path / "shard-000.000002.faiss").write_bytes(b"half a file")
    (tmp_path / ".shard-001.000002.faiss.tmp").write_bytes(b"temp")
    (tmp_path / "notes.txt").write_text("not ours")
    with VectorStore.open(tmp_path) as store:
        assert store.count() == 100
    names = {p.name for p in tmp_path.iterdir()}
    assert "shard-000.000002.faiss" not in names and ".shard-001.000002.faiss.tmp" not in names
    assert "notes.txt" in names


# -- the node index (issue 17: a GPU node holds its shards as one index; this is its CPU twin) --
def test_the_node_index_answers_as_the_shards_do(tmp_path: Path) -> None:
    x, ids, keys = X[:6000], IDS[:6000], KEYS[:6000]
    with build(tmp_path / "shards", x, ids, keys, flat_max=10_000) as per_shard, \
            build(tmp_path / "node", x, ids, keys, flat_max=10_000, extra={"node_index": True}) as node:
        assert all(s["kind"] == "flat" for s in node.info()["shards"])
        want = per_shard.search(QUERIES, SearchParams(k=10))
        got = node.search(QUERIES, SearchParams(k=10))
        assert node._node is not None  # served by the node index
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        # a change rebuilds it: removed ids vanish, added ones appear
        gone = ids[keys % 4 == 1][:50]
        node.remove(gone, keys[np.isin(ids, gone)])
        per_shard.remove(gone, keys[np.isin(ids, gone)])
        node.add(np.array([10**9]), QUERIES[:1], np.array([5]))
        per_shard.add(np.array([10**9]), QUERIES[:1], np.array([5]))
        got = node.search(QUERIES, SearchParams(k=10))
        np.testing.assert_array_equal(got[1], per_shard.search(QUERIES, SearchParams(k=10))[1])
        assert got[1][0, 0] == 10**9 and not np.isin(got[1], gone).any()
