"""Learning from use through the service and the planner, with real models on the
synthetic e2e index (a copy: these tests write feedback and models into it)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from api.app import Settings, create_app  # noqa: E402
from engine.index import VideoIndex  # noqa: E402
from query.learn.features import N_FEATURES  # noqa: E402
from query.learn.ranker import LinearRanker, ModelStore  # noqa: E402
from query.planner import Searcher  # noqa: E402

QUERIES = ["baking a chocolate cake", "grand opening sale sign", "soldier in uniform", "a cooking show",
           "strawberries", "a sign in a shop window"]


@pytest.fixture(scope="module")
def idx(e2e_index, tmp_path_factory):
    dst = tmp_path_factory.mktemp("learn") / "index"
    shutil.copytree(e2e_index, dst)
    (dst / "learn").mkdir()
    (dst / "learn" / "config.toml").write_text(
        "min_sessions = 4\nmin_impressions = 1\nrandomise_share = 0.0\nretrain_every_s = 0\n")
    return dst


@pytest.fixture(scope="module")
def client(idx):
    with TestClient(create_app(idx, Settings(rate=0, warm_models=False))) as c:
        yield c


def _search(client, q: str) -> dict:
    r = client.get("/v1/search", params={"q": q})
    assert r.status_code == 200, r.text
    return r.json()


def test_search_response_carries_search_id_and_ranker(client):
    body = _search(client, "baking a chocolate cake")
    assert len(body["search_id"]) == 32 and body["ranker"] == {"version": "default"}
    assert body["search_id"] != _search(client, "baking a chocolate cake")["search_id"]


def test_feedback_events_are_stored_once_and_checked(client):
    body = _search(client, "grand opening sale sign")
    sid = body["search_id"]
    ev = {"kind": "click", "search_id": sid, "position": 0, "video_id": body["hits"][0]["video_id"],
          "event_id": "evt-0001-abcdef"}
    r = client.post("/v1/search/feedback", json=ev)
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    r = client.post("/v1/search/feedback", json=ev)  # a retry
    assert r.json() == {"stored": 0, "duplicates": 1, "event_ids": ["evt-0001-abcdef"]}
    r = client.post("/v1/search/feedback", json={"events": [
        {"kind": "dwell", "search_id": sid, "position": 0, "value": 12.5, "user": "u-42"},
        {"kind": "reformulation", "search_id": sid, "query": "sale sign", "next_search_id": "x" * 32}]})
    assert r.status_code == 200 and r.json()["stored"] == 2, r.text
    assert client.post("/v1/search/feedback", json={**ev, "search_id": "f" * 32, "event_id": None}).status_code == 404
    r = client.post("/v1/search/feedback", json={**ev, "kind": "like", "event_id": None})
    assert r.status_code == 400 and "like" in r.json()["error"]["message"]
    assert client.post("/v1/search/feedback", json={**ev, "kind": "impression"}).status_code == 400
    no_position = {"kind": "click", "search_id": sid}
    assert client.post("/v1/search/feedback", json=no_position).status_code == 400
    st = client.get("/v1/learn").json()
    assert st["live"] == "default" and st["events"]["click"] == 1 and st["events"]["dwell"] == 1
    assert st["events"]["impression"] >= 2


def test_retrain_from_feedback_then_freeze(client, idx):
    for q in QUERIES:
        body = _search(client, q)
        if len(body["hits"]) > 1:
            click = {"kind": "click", "search_id": body["search_id"], "position": 1}
            r = client.post("/v1/search/feedback", json=click)
            assert r.status_code == 200
    report = client.post("/v1/learn/retrain").json()
    assert report["status"] == "trained", report
    assert report["version"].startswith("lin-") and "reasons" in report["gate"]
    assert report["beta"] in (0.0, 0.1, 0.3, 1.0, 3.0) and report["memory_queries"] >= 1
    assert report["promoted"] == report["gate"]["ok"]
    assert report["version"] in client.get("/v1/learn").json()["models"]
    assert client.post("/v1/learn/freeze", json={"frozen": True}).json()["frozen"] is True
    assert client.post("/v1/learn/retrain").json()["status"] == "frozen"
    assert client.post("/v1/learn/freeze", json={"frozen": False}).json()["frozen"] is False


def test_a_live_model_names_itself_and_zero_weights_change_nothing(idx):
    store = ModelStore(idx)
    zero = LinearRanker.from_vector(np.zeros(N_FEATURES))
    store.save(zero)
    with VideoIndex.open(idx) as index:
        plain = Searcher(index, ranking=None).search("baking a chocolate cake")
        store.promote(zero.version, "test")
        learned = Searcher(index).search("baking a chocolate cake")
        store.promote("default", "test done")
    assert learned.ranker["version"] == zero.version and plain.ranker == {"version": "default"}
    assert [h.to_dict() for h in learned.hits] == [h.to_dict() for h in plain.hits]


def test_cli_learn_status_and_freeze(idx, capsys):
    from api.cli import main

    assert main(["learn", "freeze", "--index", str(idx)]) == 0
    assert main(["learn", "status", "--index", str(idx), "--json"]) == 0
    out = capsys.readouterr().out
    st = json.loads(out[out.index("{"):])
    assert st["frozen"] is True and st["live"] == "default"
    assert main(["learn", "unfreeze", "--index", str(idx)]) == 0


def test_randomised_and_interleaved_searches_are_logged_as_such(idx, tmp_path):
    import random

    from query.learn.config import LearnConfig
    from query.learn.serve import LiveRanking
    from query.learn.store import Event, FeedbackStore
    from query.plan import SearchOptions

    q, opts = "baking a chocolate cake", SearchOptions(tenant="default")
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with VideoIndex.open(idx) as index:
        plain = [h.video_id for h in Searcher(index, ranking=None).search(q, options=opts).hits]
        assert len(plain) > 1
        swap = LiveRanking(idx, config=LearnConfig(randomise_share=1.0), store=store, rng=random.Random(1))
        resp = Searcher(index, ranking=swap).search(q, options=opts)
        shown = [h.video_id for h in resp.hits]
        assert resp.ranker["randomised"] is True and sorted(shown) == sorted(plain)
        moved = [i for i, (a, b) in enumerate(zip(shown, plain)) if a != b]
        assert len(moved) == 2 and moved[1] == moved[0] + 1  # one adjacent pair swapped

        zero = LinearRanker.from_vector(np.zeros(N_FEATURES))
        ModelStore(idx).save(zero)
        mix = LiveRanking(idx, config=LearnConfig(randomise_share=0.0, interleave_share=1.0), store=store)
        mix.set_challenger(zero.version)
        resp = Searcher(index, ranking=mix).search(q, options=opts)
        mix.set_challenger(None)
    assert resp.ranker == {"version": "default", "interleaved": True, "challenger": zero.version}
    imp = next(i for i in store.impressions() if i["search_id"] == resp.search_id)
    assert len(imp["teams"]) == len(resp.hits) and set(imp["teams"]) <= {"A", "B"}
    store.record("default", Event("click", resp.search_id, position=0))
    (pair, tally), = store.interleaving().items()
    assert pair == f"default vs {zero.version}" and tally.a + tally.b == 1
    assert [i["randomised"] for i in store.impressions()] == [True, False]
