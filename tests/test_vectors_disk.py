"""The on-disk refine stage (``Refine(SQfp16@disk)``, ``engine/vectors/vecfile.py``).

It must rank exactly like the in-RAM float16 refine stage, keep files consistent
with the manifest through appends, rebuilds, saves and reopenings, never write from
a read-only store, and name the file when one is damaged, truncated or missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import CorruptIndexError, InputError
from engine.vectors import MANIFEST_NAME, SearchParams, VectorSettings, VectorStore, compressed_factory
from engine.vectors import vecfile
from engine.vectors.factory import DISK_REFINE, split_disk_refine
from engine.vectors.vecfile import VectorFile

DIM = 64
DISK = f"IVF{{nlist}},PQ16x4fs{DISK_REFINE}"
RAM = "IVF{nlist},PQ16x4fs,Refine(SQfp16)"


def clustered(n: int, seed: int = 0, clusters: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


N = 8000
X = clustered(N)
IDS = np.arange(N, dtype=np.int64) * 3 + 11
KEYS = IDS // 30
Q = clustered(60, seed=5)


def settings(factory: str = DISK, **kw: object) -> VectorSettings:
    base = dict(dim=DIM, num_shards=2, flat_max=1000, approx_factory=factory, use_gpu="never", train_sample=4000)
    base.update(kw)
    return VectorSettings(**base)  # type: ignore[arg-type]


def build(path: Path, factory: str = DISK, n: int = N, **kw: object) -> VectorStore:
    store = VectorStore.create(path, settings(factory, **kw))
    for start in range(0, n, 1500):
        sl = slice(start, min(n, start + 1500))
        store.add(IDS[sl], X[sl], KEYS[sl])
    return store


def vec_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.endswith(vecfile.VEC_SUFFIX))


def manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST_NAME).read_text())


# ------------------------------------------------------------------ ranking
def test_ranks_exactly_like_the_in_ram_float16_refine(tmp_path: Path) -> None:
    params = SearchParams(k=10, nprobe=16, k_factor=6)
    with build(tmp_path / "disk") as disk, build(tmp_path / "ram", RAM) as ram:
        assert all(s["refine_on_disk"] for s in disk.info()["shards"])
        assert not any(s["refine_on_disk"] for s in ram.info()["shards"])
        d_scores, d_ids = disk.search(Q, params)
        r_scores, r_ids = ram.search(Q, params)
    np.testing.assert_array_equal(d_ids, r_ids)
    np.testing.assert_allclose(d_scores, r_scores, atol=1e-5)


def test_disk_refine_depth_defaults_to_16_and_follows_settings(tmp_path: Path) -> None:
    with build(tmp_path / "a") as store:
        default = store.search(Q, SearchParams(k=10, nprobe=64))
        np.testing.assert_array_equal(default[1], store.search(Q, SearchParams(k=10, nprobe=64, k_factor=16))[1])
    with build(tmp_path / "b", extra={"k_factor": 3}) as store:
        mine = store.search(Q, SearchParams(k=10, nprobe=64))
        np.testing.assert_array_equal(mine[1], store.search(Q, SearchParams(k=10, nprobe=64, k_factor=3))[1])
        assert not np.array_equal(mine[1], default[1])  # 30 candidates a shard rank worse than 160


def test_recall_and_exact_scores(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        scores, found = store.search(Q, SearchParams(k=10, nprobe=10_000, k_factor=64))
        truth = IDS[np.argsort(-(Q @ X.T), axis=1)[:, :10]]
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        assert recall >= 0.9
        # Scores are the float16 rows' inner products, not PQ estimates.
        pos = np.searchsorted(IDS, found[:, 0])
        exact = np.einsum("ij,ij->i", Q, X[pos].astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(scores[:, 0], exact, atol=1e-5)


def test_deleted_ids_never_come_back_and_compaction_writes_a_new_file(tmp_path: Path) -> None:
    with build(tmp_path, compact_ratio=0.9) as store:
        store.save(1)
        first = vec_files(tmp_path)
        gone = IDS[: N // 2 : 2]
        store.remove(gone, KEYS[: N // 2 : 2])
        _, found = store.search(X[: N // 2 : 2][:50], SearchParams(k=10, k_factor=16))
        assert not np.isin(found, gone).any()
        store.save(2)
        assert vec_files(tmp_path) == first  # tombstones alone do not rewrite the rows
        assert store.compact(force=True) == 2
        # The new files exist beside the saved ones until the next save supersedes them.
        assert len(vec_files(tmp_path)) == 4
        _, found = store.search(X[:50], SearchParams(k=10, k_factor=16))
        assert not np.isin(found, gone).any()
        store.save(3)
        after = vec_files(tmp_path)
        assert len(after) == 2 and not set(after) & set(first)
        assert store.count() == N - len(gone)
    with VectorStore.open(tmp_path) as again:
        assert again.count() == N - len(gone)
        entries = manifest(tmp_path)["shards"]
        assert sorted(e["vec_file"] for e in entries) == after
        assert sum(e["vec_rows"] for e in entries) == N - len(gone)


def test_rebuilds_between_saves_leave_no_stray_files(tmp_path: Path) -> None:
    # retrain_growth 1.5: several retrains per shard before the first save.
    with build(tmp_path, extra={"retrain_growth": 1.5}) as store:
        assert all(s["trained_n"] > 1000 for s in store.info()["shards"])
        assert len(vec_files(tmp_path)) == 2  # each rebuild deleted the unsaved file it replaced
        store.save(1)
        _, found = store.search(X[::400], SearchParams(k=1, k_factor=64))
        np.testing.assert_array_equal(found[:, 0], IDS[::400])


def test_stored_vectors_read_back_from_disk(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        want = IDS[[5, 4000, 7999]]
        got_ids, got = store.stored_vectors(np.concatenate([want, [-5]]))
        np.testing.assert_array_equal(np.sort(got_ids), np.sort(want))
        order = np.argsort(got_ids)
        pos = np.searchsorted(IDS, got_ids[order])
        np.testing.assert_array_equal(got[order], X[pos].astype(np.float16).astype(np.float32))


# -------------------------------------------------------------- persistence
def test_writer_reopen_drops_rows_no_manifest_names(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        store.save(1)
        store.add(np.array([10**9]), X[:1], np.array([0]))  # appended, never saved
    entries = manifest(tmp_path)["shards"]
    sizes = {e["vec_file"]: e["vec_rows"] * DIM * 2 for e in entries}
    assert any((tmp_path / name).stat().st_size > size for name, size in sizes.items())
    with VectorStore.open(tmp_path, read_only=True) as reader:  # readers ignore the tail
        assert reader.count() == N
    with VectorStore.open(tmp_path) as writer:
        assert writer.count() == N
        assert {name: (tmp_path / name).stat().st_size for name in sizes} == sizes
        writer.add(np.array([10**9]), X[:1], np.array([0]))
        writer.save(2)
    with VectorStore.open(tmp_path) as again:
        _, found = again.search(X[:1], SearchParams(k=1, k_factor=64))
        assert found[0, 0] in (10**9, IDS[0])
        assert again.count() == N + 1


def test_read_only_store_keeps_its_rows_in_memory(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        store.save(1)
    before = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    with VectorStore.open(tmp_path, read_only=True) as reader:
        reader.add(np.array([10**9]), X[:1] * -1, np.array([0]))
        _, found = reader.search(-X[:1], SearchParams(k=1, k_factor=64))
        assert found[0, 0] == 10**9
        reader.remove(IDS[:3000], KEYS[:3000])  # past compact_ratio: rebuilds, in memory
        assert reader.count() == N + 1 - 3000
        assert all(s["tombstones"] == 0 for s in reader.info()["shards"])
        _, found = reader.search(X[3000:3040], SearchParams(k=1, k_factor=64))
        np.testing.assert_array_equal(found[:, 0], IDS[3000:3040])
    assert {p.name: p.stat().st_size for p in tmp_path.iterdir()} == before


def test_damaged_truncated_or_missing_file_is_named(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        store.save(1)
    entry = manifest(tmp_path)["shards"][0]
    target = tmp_path / entry["vec_file"]
    data = bytearray(target.read_bytes())
    data[-3] ^= 0xFF  # the last block is checked on every open
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptIndexError, match="checksum mismatch") as err:
        VectorStore.open(tmp_path)
    assert target.name in str(err.value)
    target.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CorruptIndexError, match="truncated") as err:
        VectorStore.open(tmp_path, read_only=True)
    assert target.name in str(err.value)
    target.unlink()
    with pytest.raises(CorruptIndexError, match="missing") as err:
        VectorStore.open(tmp_path)
    assert target.name in str(err.value)


def test_verify_checks_every_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vecfile, "BLOCK_ROWS", 100)
    path = tmp_path / "rows.f16vec"
    vf = VectorFile.create(tmp_path, 0, DIM)
    vf.append(X[:450], writable=True)
    name, rows, digests = vf.commit()
    vf.close()
    assert rows == 450 and len(digests) == 5
    path = tmp_path / name
    data = bytearray(path.read_bytes())
    data[150 * DIM * 2] ^= 0x01  # a middle block: the quick check on open does not read it
    path.write_bytes(bytes(data))
    quick = VectorFile.open(path, DIM, rows, digests, writable=False)
    with pytest.raises(CorruptIndexError, match="rows 100"):
        quick.verify()
    quick.close()


def test_store_verify_hashes_every_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vecfile, "BLOCK_ROWS", 500)
    with build(tmp_path) as store:
        store.save(1)
        store.verify()  # all good
    entry = manifest(tmp_path)["shards"][1]
    assert len(entry["vec_sha256"]) > 2
    target = tmp_path / entry["vec_file"]
    data = bytearray(target.read_bytes())
    data[10] ^= 0x01  # first block: opening does not read it, verify() does
    target.write_bytes(bytes(data))
    with VectorStore.open(tmp_path, read_only=True) as reader:
        with pytest.raises(CorruptIndexError, match=target.name):
            reader.verify()


def test_vector_file_reads_rollback_and_memory_rows(tmp_path: Path) -> None:
    vf = VectorFile.create(tmp_path, 1, DIM)
    vf.append(X[:300], writable=True)
    vf.commit()
    vf.append(X[300:350], writable=True)
    positions = np.array([349, 0, 0, 120, 121, 122, 7])
    np.testing.assert_array_equal(vf.read(positions), X[positions].astype(np.float16).astype(np.float32))
    vf.rollback(320)
    assert vf.rows == 320
    with pytest.raises(ValueError, match="committed"):
        vf.rollback(10)
    vf.append(X[320:330], writable=False)  # a read-only store's rows stay in memory
    assert vf.in_memory and vf.rows == 330
    np.testing.assert_array_equal(vf.read(np.array([325, 1])), X[[325, 1]].astype(np.float16).astype(np.float32))
    with pytest.raises(IndexError):
        vf.read(np.array([330]))
    vf.close()


# ---------------------------------------------------------------- factories
def test_factory_syntax() -> None:
    assert split_disk_refine("IVF9,PQ8x4fs,Refine(SQfp16@disk)") == ("IVF9,PQ8x4fs", True)
    assert split_disk_refine("IVF9,PQ8x4fs,Refine(SQfp16)") == ("IVF9,PQ8x4fs,Refine(SQfp16)", False)
    assert compressed_factory(1536) == "IVF{nlist},PQ192x4fs,Refine(SQfp16@disk)"
    assert "@disk" not in compressed_factory(64)  # small dims stay IVF-Flat in RAM
    for bad in ("IVF9,PQ8x4fs,Refine(SQ8@disk)", "Flat,Refine(SQfp16@disk)", "IVF9,Flat@disk"):
        with pytest.raises(InputError, match="@disk|on-disk"):
            split_disk_refine(bad)


def test_compressed_names_the_disk_layout(tmp_path: Path) -> None:
    with build(tmp_path, "compressed", n=3000, flat_max=500) as store:
        info = store.info()["shards"]
    # At 64 dims "compressed" is IVF-Flat in RAM; at embedding dims the refine goes to disk.
    assert all(s["factory"].endswith(",Flat") and not s["refine_on_disk"] for s in info)
    with build(tmp_path / "wide", "compressed", n=0, dim=256, flat_max=500) as wide:
        wide.add(IDS[:1200], np.tile(X[:1200], 4) / 2.0, KEYS[:1200])
        info = wide.info()["shards"]
    assert all(s["refine_on_disk"] and s["factory"].endswith("PQ32x4fs,Refine(SQfp16@disk)") for s in info)


def test_bad_disk_factory_is_refused_at_create(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        VectorStore.create(tmp_path, settings("Flat,Refine(SQfp16@disk)"))


# ------------------------------------------- rotations and reductions (PCA, OPQ)
@pytest.mark.parametrize(
    "factory, floor",
    [
        # OPQ's rotation trains for about a minute on 2 cores: slow suite.
        pytest.param(f"OPQ16_64,IVF{{nlist}},PQ16x4fs{DISK_REFINE}", 0.9, marks=pytest.mark.slow),
        # This data's noise is isotropic, so dropping half the dims loses half of what
        # separates neighbours: a low floor, and the full-dim rows must lift it.
        ("PCAR32,IVF{nlist},SQ8", 0.2),
        (f"PCAR32,IVF{{nlist}},PQ8x4fs{DISK_REFINE}", 0.6),
    ],
)
def test_pca_and_opq_factories_switch_search_delete_and_reopen(tmp_path: Path, factory: str, floor: float) -> None:
    n = 3000
    params = SearchParams(k=10, nprobe=10_000, k_factor=32)
    with build(tmp_path, factory, n=n, train_sample=n) as store:
        info = store.info()["shards"]
        assert {s["kind"] for s in info} == {"approx"} and all(factory.split(",")[0] in s["factory"] for s in info)
        np.testing.assert_array_equal(store.live_ids(), IDS[:n])
        _, found = store.search(Q, params)
        truth = IDS[np.argsort(-(Q @ X[:n].T), axis=1)[:, :10]]
        assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]) >= floor
        gone = IDS[:n:5]
        store.remove(gone, KEYS[:n:5])
        scores, found = store.search(Q, params)
        assert not np.isin(found, gone).any()
        store.save(1)
    with VectorStore.open(tmp_path, expected=settings(factory, train_sample=n)) as again:
        scores2, found2 = again.search(Q, params)
    np.testing.assert_array_equal(found2, found)
    np.testing.assert_allclose(scores2, scores, atol=1e-6)
