"""Batched search (issue 17): ``Searcher.search_many`` and ``POST /v1/search/batch`` return
what single searches return, with one vector search for the batch."""
from __future__ import annotations

import shutil

import pytest

from engine.index import VideoIndex
from query.planner import SearchOptions, Searcher
from tests.conftest import E2E_SPEECH, E2E_TEXT

QUERIES = [E2E_SPEECH, E2E_TEXT, "a person talking", "coloured test pattern", "dur:>1s", "sign"]


def _key(resp) -> list:
    return [(h.video_id, round(h.start, 3), round(h.end, 3), round(h.score, 5)) for h in resp.hits]


@pytest.fixture(scope="module")
def searcher(e2e_index):
    idx = VideoIndex.open(e2e_index)
    yield Searcher(idx)
    idx.close()


def test_search_many_equals_single_searches_with_one_vector_search(searcher, monkeypatch):
    opts = SearchOptions(k=5, min_confidence="low")
    single = [searcher.search(q, options=opts) for q in QUERIES]
    calls = []
    real = searcher.index.search_vectors
    monkeypatch.setattr(searcher.index, "search_vectors", lambda q, p: calls.append(len(q)) or real(q, p))
    batch = searcher.search_many(QUERIES, options=opts)
    assert len(batch) == len(QUERIES)
    assert len(calls) == 1, f"{len(calls)} vector searches for one batch"
    assert calls[0] >= len(QUERIES) - 1  # every text query's joint run (the filter-only one has none)
    for q, a, b in zip(QUERIES, single, batch):
        assert b.query == q
        assert _key(b) == _key(a), q
        assert b.intent == a.intent
    assert any(r.hits for r in batch)


def test_batch_route_equals_the_search_route(e2e_index, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    idx = tmp_path / "idx"
    shutil.copytree(e2e_index, idx)  # the service opens it as a writer
    with TestClient(create_app(idx, Settings(rate=0, warm_models=False))) as c:
        queries = [E2E_SPEECH, E2E_TEXT, "sign"]
        r = c.post("/v1/search/batch", json={"queries": queries, "k": 3, "min_confidence": "low"})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert len(results) == 3
        for q, got in zip(queries, results):
            want = c.post("/v1/search", json={"q": q, "k": 3, "min_confidence": "low"}).json()
            assert got["query"] == q
            assert [(h["video_id"], h["start"], h["end"]) for h in got["hits"]] == \
                   [(h["video_id"], h["start"], h["end"]) for h in want["hits"]]
            assert got["has_more"] == (want["next_cursor"] is not None)
        assert c.post("/v1/search/batch", json={"queries": []}).status_code == 400  # validation errors are 400 bad_input here
        bad = c.post("/v1/search/batch", json={"queries": ["fine", "  "]})
        assert bad.status_code == 400 and "queries[1]" in bad.text


def test_dense_runs_leave_out_segments_that_scored_nothing():
    """A one-block query meets the zero vector of every segment without that modality:
    those ties are no evidence, and which of them filled the list used to depend on the
    shards' merge order (two builds of one library answered differently)."""
    import numpy as np

    from query.retrieve import _runs

    scores = np.array([[0.5, 0.2, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    ids = np.array([[7, 9, 3, 1, 2], [4, 5, 6, -1, -1]])
    assert _runs(scores, ids) == [[(7, 0.5), (3, pytest.approx(0.2)), (9, pytest.approx(0.2))], []]
