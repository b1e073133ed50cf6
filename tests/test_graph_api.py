"""The knowledge graph in search, on the command line and over HTTP, on a tiny real
index (synthetic clips, real models, speech and OCR off): a query naming a known
entity (in either script) gets intent "entity" and ranks that entity's videos first;
`vidseek graph ...`; the /v1 entity and related routes with their tenant rules."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from api.cli import main
from engine.graph import GraphStore
from engine.index import VideoIndex
from tests import synth


@pytest.fixture(scope="module")
def graph_index(tmp_path_factory, tools) -> dict:
    from indexer.pipeline import IndexOptions, index_paths

    base = tmp_path_factory.mktemp("graph_api")
    d = base / "clips"
    d.mkdir()
    clips = {
        "fight": synth.make_cuts_clip(d, name="fight.mp4")[0],
        "interview": synth.make_text_clip(d, "PRESS DAY", name="interview.mp4"),
        "street": synth.make_no_audio_clip(d, seconds=3.0, name="street.mp4"),
        "cooking": synth.make_text_clip(d, "COOKING", name="cooking.mp4"),
    }
    side = base / "meta.jsonl"
    rows = [
        {"source": str(clips["fight"]), "title": "Ladder fight", "cast": ["成龙 (Jackie Chan)", "Michelle Yeoh"],
         "series": "Police Story", "tags": ["action"]},
        {"source": str(clips["interview"]), "title": "Press day", "people": ["Jackie Chan"], "tags": ["interview"]},
        {"source": str(clips["street"]), "title": "A street", "tags": ["city"]},
        {"source": str(clips["cooking"]), "title": "Cooking show", "people": ["Gordon Ramsay"], "tags": ["food"]},
    ]
    side.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    idx = base / "index"
    r = index_paths([str(p) for p in clips.values()], idx, metadata=side,
                    options=IndexOptions(speech=False, ocr=False))
    assert not r.failed, r.summary()
    with VideoIndex.open(idx) as index:
        ids = {k: index.catalog.find_by_source(str(p)).video_id for k, p in clips.items()}
    return {"index": idx, "ids": ids, "clips": clips, "base": base}


@pytest.fixture(scope="module")
def searcher(graph_index):
    from query.planner import Searcher

    index = VideoIndex.open(graph_index["index"])
    yield Searcher(index)
    index.close()


@pytest.mark.parametrize("q", ["成龙", "Jackie Chan", "jackie chan ladder fight"])
def test_entity_query_ranks_the_entity_videos_first(graph_index, searcher, q):
    from query.planner import SearchOptions

    resp = searcher.search(q, options=SearchOptions(k=4))
    ids = graph_index["ids"]
    assert resp.intent["label"] == "entity" and "known_entity" in resp.intent["rules_fired"]
    assert [e["name"] for e in resp.intent["entities"]] == ["成龙"]
    assert {h.video_id for h in resp.hits[:2]} == {ids["fight"], ids["interview"]}
    assert {h.video_id for h in resp.hits[2:]} <= {ids["street"], ids["cooking"]}


def test_a_query_naming_no_entity_is_unchanged(searcher):
    resp = searcher.search("a red screen")
    assert resp.intent["label"] != "entity" and "entities" not in resp.intent


def test_alias_expansion_reaches_bm25(graph_index, searcher):
    from query.entities import EntityRecognizer

    with VideoIndex.open(graph_index["index"]) as index:
        m = EntityRecognizer(index.catalog).recognise("成龙 fights")
        assert m is not None and m.expand("成龙 fights") == "成龙 fights Jackie Chan"
        # The sidecar puts "Jackie Chan" only in the interview's people field (BM25 metadata):
        hits = index.lexical.search(m.expand("成龙"), k=10)
        keys = {index.catalog.get_segments([h.id])[h.id].video for h in hits}
        assert index.catalog.get_video(graph_index["ids"]["interview"]).key in keys


def test_cli_graph_commands(graph_index, capsys, tmp_path):
    idx = str(graph_index["index"])
    png = tmp_path / "jc.png"
    assert main(["graph", "entity", "jackie", "--index", idx, "--json", "--png", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["entity"]["aliases"]) >= {"成龙", "Jackie Chan"} and out["entity"]["type"] == "person"
    assert {v["video_id"] for v in out["videos"]} == {graph_index["ids"]["fight"], graph_index["ids"]["interview"]}
    assert {"Michelle Yeoh", "Police Story"} <= {n["name"] for n in out["neighbours"]}
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["graph", "entity", "nobody at all", "--index", idx]) == 1
    assert main(["graph", "related", graph_index["ids"]["interview"], "--index", idx, "--json"]) == 0
    rel = json.loads(capsys.readouterr().out)
    assert rel["related"][0]["video_id"] == graph_index["ids"]["fight"]
    assert [s["name"] for s in rel["related"][0]["shared"]] == ["成龙"]
    for fmt in ("graphml", "json"):
        f = tmp_path / f"g.{fmt}"
        assert main(["graph", "export", "--index", idx, "--format", fmt, "--out", str(f)]) == 0
        text = f.read_text(encoding="utf-8")
        if fmt == "graphml":
            ET.fromstring(text.encode())
        else:
            assert any(n.get("name") == "成龙" for n in json.loads(text)["nodes"])
    capsys.readouterr()
    assert main(["graph", "stats", "--index", idx, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["counts"]["entities.person"] == 3  # 成龙 = Jackie Chan, Michelle Yeoh, Gordon Ramsay
    assert stats["central"] and stats["communities"]


def test_cli_graph_build_backfills(graph_index, capsys):
    idx = str(graph_index["index"])
    with VideoIndex.open(idx) as index:
        before = GraphStore(index.catalog).counts()
    assert main(["graph", "build", "--index", idx, "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == 0  # nothing pending after indexing
    assert main(["graph", "build", "--index", idx, "--force", "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["videos"] == 4 and res["failed"] == 0
    assert res["graph"]["entities"] == before["entities"] and res["graph"]["edges"] == before["edges"]


# -- HTTP -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(graph_index):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from api.app import Settings, create_app
    from api.auth import KeyStore, service_db_path

    store = KeyStore(service_db_path(graph_index["index"]))
    own, _ = store.create("default", "search")
    other, _ = store.create("beta", "search")
    store.close()
    app = create_app(graph_index["index"], Settings(rate=0, warm_models=False))
    with TestClient(app) as client:
        yield {"client": client, "own": {"Authorization": f"Bearer {own}"},
               "other": {"Authorization": f"Bearer {other}"}}


def test_api_entities(api, graph_index):
    c, h = api["client"], api["own"]
    r = c.get("/v1/entities", params={"q": "成龙"}, headers=h)
    assert r.status_code == 200, r.text
    ents = r.json()["entities"]
    assert ents[0]["type"] == "person" and "Jackie Chan" in ents[0]["aliases"]
    eid = ents[0]["entity_id"]
    r = c.get(f"/v1/entities/{eid}", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {v["video_id"] for v in body["videos"]} == {graph_index["ids"]["fight"], graph_index["ids"]["interview"]}
    assert "Michelle Yeoh" in {n["name"] for n in body["neighbours"]}
    r = c.get(body["graph_png_url"], headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert c.get("/v1/entities", params={"q": "x", "type": "planet"}, headers=h).json()["error"]["code"] == \
        "unknown_name"
    assert c.get("/v1/entities", params={"q": "成龙"}).status_code == 401


def test_api_related_and_tenant_rules(api, graph_index):
    c = api["client"]
    vid = graph_index["ids"]["interview"]
    r = c.get(f"/v1/videos/{vid}/related", headers=api["own"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["related"][0]["video_id"] == graph_index["ids"]["fight"]
    assert body["related"][0]["shared_entities"][0]["type"] == "person"
    assert any("Jackie Chan" in e["aliases"] for e in body["entities"])
    assert "interview" in {e["name"] for e in body["entities"]}
    eid = c.get("/v1/entities", params={"q": "jackie"}, headers=api["own"]).json()["entities"][0]["entity_id"]
    # Another tenant sees neither the entity nor the video: 404 like a missing id.
    for path in (f"/v1/entities/{eid}", f"/v1/entities/{eid}/graph.png", f"/v1/videos/{vid}/related"):
        r = c.get(path, headers=api["other"])
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
    assert c.get("/v1/entities", params={"q": "jackie"}, headers=api["other"]).json()["entities"] == []
    assert c.get("/v1/entities/999999", headers=api["own"]).status_code == 404
