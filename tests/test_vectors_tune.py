"""Search defaults tuned per shard on a held-out sample (issue 17: recall at every size)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.vectors import SearchDefaults, SearchParams, VectorSettings, VectorStore


def _clustered(n: int, dim: int, seed: int, centres: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _recall(store: VectorStore, base: np.ndarray, queries: np.ndarray) -> float:
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    _s, ids = store.search(queries, SearchParams(k=10))
    return float(np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(ids, truth)]))


@pytest.mark.parametrize("factory", ["auto", "IVF{nlist},PQ8x4fs,Refine(SQfp16)"])
def test_an_approximate_shard_tunes_its_defaults_and_keeps_them(tmp_path, factory):
    dim = 32
    centres = np.random.default_rng(0).normal(size=(300, dim)).astype(np.float32)
    base = _clustered(6000, dim, 1, centres)
    queries = _clustered(100, dim, 2, centres)
    settings = VectorSettings(dim=dim, num_shards=1, flat_max=1000, approx_factory=factory)
    with VectorStore.create(tmp_path / "v", settings) as store:
        store.add(np.arange(6000), base, np.zeros(6000, np.int64))
        tuned = store.info()["shards"][0]["tuned"]
        assert tuned is not None and tuned["recall"] >= tuned["target"] == 0.97
        nlist = store.info()["shards"][0]["nlist"]
        assert 1 <= tuned["nprobe"] <= nlist
        assert (tuned["k_factor"] is None) == (factory == "auto")  # IVF-Flat at dim 32 has no refine stage
        assert _recall(store, base, queries) >= 0.95
        store.save(1)
    entry = json.loads((tmp_path / "v" / "manifest.json").read_text())["shards"][0]
    assert entry["tuned"] == tuned
    with VectorStore.open(tmp_path / "v") as again:
        assert again.info()["shards"][0]["tuned"] == tuned
        assert _recall(again, base, queries) >= 0.95


def test_a_shard_retunes_when_it_doubles(tmp_path):
    dim = 16
    centres = np.random.default_rng(0).normal(size=(100, dim)).astype(np.float32)
    settings = VectorSettings(dim=dim, num_shards=1, flat_max=500, extra={"retrain_growth": 100})
    with VectorStore.create(tmp_path / "v", settings) as store:
        store.add(np.arange(1000), _clustered(1000, dim, 1, centres), np.zeros(1000, np.int64))
        first = store.info()["shards"][0]["tuned"]
        assert first["at_n"] == 1000
        store.add(np.arange(1000, 1500), _clustered(500, dim, 2, centres), np.zeros(500, np.int64))
        assert store.info()["shards"][0]["tuned"] == first  # 1.5x: kept
        store.add(np.arange(1500, 2100), _clustered(600, dim, 3, centres), np.zeros(600, np.int64))
        assert store.info()["shards"][0]["tuned"]["at_n"] == 2100


def test_tuning_can_be_turned_off_and_settings_beat_it(tmp_path):
    dim = 16
    centres = np.random.default_rng(0).normal(size=(50, dim)).astype(np.float32)
    x = _clustered(1200, dim, 1, centres)
    off = VectorSettings(dim=dim, num_shards=1, flat_max=500, extra={"tune": False})
    with VectorStore.create(tmp_path / "off", off) as store:
        store.add(np.arange(1200), x, np.zeros(1200, np.int64))
        assert store.info()["shards"][0]["tuned"] is None
    tuned = {"nprobe": 7, "k_factor": 32}
    assert SearchDefaults().tuned(tuned).nprobe_for(100) == 7
    assert SearchDefaults().tuned(tuned).k_factor == SearchDefaults().tuned(tuned).disk_k_factor == 32
    mine = SearchDefaults.from_settings(VectorSettings(dim=dim, extra={"nprobe": 3, "k_factor": 5}))
    assert mine.tuned(tuned).nprobe_for(100) == 3 and mine.tuned(tuned).k_factor == 5
    assert SearchDefaults().tuned(None) == SearchDefaults()
