"""The knowledge graph's storage and algorithms: schema v2 with provenance, alias
resolution across videos and scripts, deletes that cascade with no orphans, the
NetworkX views (neighbourhood, paths, communities, centrality, export, PNG), and
the indexing hook that fills the graph (a real tiny index)."""
from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET

import networkx as nx
import pytest

from engine.catalog import Catalog, NewSegment, NewVideo
from engine.catalog.schema import SCHEMA_VERSION
from engine.errors import InputError, NotFoundError, UnknownNameError
from engine.graph import (
    Alias,
    EntityRef,
    GraphStore,
    NewEdge,
    NewEntity,
    VideoGraph,
    VideoRef,
    normalise_alias,
    script_of,
)
from engine.graph import algorithms as alg
from engine.graph.matcher import AliasMatcher


def _video(cat: Catalog, name: str, *, tenant: str = "default", segs: int = 2, **kw) -> int:
    v = NewVideo(source=f"/media/{name}.mp4", content_hash=name, tenant=tenant, title=name, duration=segs * 5.0,
                 segments=[NewSegment(start=i * 5.0, end=(i + 1) * 5.0, transcript=f"{name} part {i}")
                           for i in range(segs)], **kw)
    key, _, _ = cat.add_video(v)
    return key


def _person(name: str, *forms: str) -> NewEntity:
    return NewEntity("person", name, tuple(Alias(f) for f in forms))


def _appears(name: str, key: int, **kw) -> NewEdge:
    return NewEdge("appears_in", EntityRef("person", name), VideoRef(key), **kw)


@pytest.fixture
def cat(tmp_path) -> Catalog:
    c = Catalog(tmp_path / "catalog.sqlite")
    yield c
    c.close()


def test_schema_v2_tables_and_foreign_keys(cat):
    c = cat._conn()
    assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    assert {"entities", "entity_aliases", "edges", "fingerprints", "graph_videos", "entity_video",
            "edges_src_entity", "edges_video", "entity_aliases_alias"} <= names
    key = _video(cat, "a")
    # An edge must have exactly one kind of end, and its provenance video must exist.
    with pytest.raises(sqlite3.IntegrityError):
        with cat.transaction() as t:
            t.execute("INSERT INTO edges (relation, src_video, dst_video, video, modality, extractor, created_at)"
                      " VALUES ('reuses_footage', ?, ?, 99999, 'visual', 'x', 0)", (key, key))
    with pytest.raises(sqlite3.IntegrityError):
        with cat.transaction() as t:
            t.execute("INSERT INTO edges (relation, src_video, src_entity, dst_video, video, modality, extractor,"
                      " created_at) VALUES ('about', ?, 1, ?, ?, 'x', 'x', 0)", (key, key, key))


def test_normalise_and_script():
    assert normalise_alias("  Chan  Kong-sang ") == "chan kong sang"
    assert normalise_alias("成 龙") == normalise_alias("成龙") == "成龙"
    assert normalise_alias("ＪＡＣＫＩＥ　Chan") == "jackie chan"  # full-width forms fold (NFKC)
    assert normalise_alias("莱昂纳多·迪卡普里奥") == "莱昂纳多迪卡普里奥"
    assert (script_of("成龙"), script_of("Jackie"), script_of("成龙 Jackie"), script_of("123")) == (
        "han", "latin", "mixed", "other")
    with pytest.raises(InputError):
        NewEntity("person", " -- ")
    with pytest.raises(UnknownNameError):
        NewEntity("planet", "Mars")


def test_aliases_in_chinese_and_latin_resolve_to_one_entity(cat):
    store = GraphStore(cat)
    a, b, c = _video(cat, "a"), _video(cat, "b"), _video(cat, "c")
    store.write_video(a, VideoGraph([_person("成龙", "Jackie Chan")], [_appears("成龙", a)]), extractor="t")
    # Another video names only the Latin form, a third a new romanisation next to the Latin one.
    store.write_video(b, VideoGraph([_person("Jackie Chan")], [_appears("Jackie Chan", b)]), extractor="t")
    store.write_video(c, VideoGraph([_person("JACKIE CHAN", "Chan Kong-sang")], [_appears("jackie chan", c)]),
                      extractor="t")
    ents = store.entities(types=["person"])
    assert len(ents) == 1
    e = ents[0]
    assert {a.alias for a in e.aliases} == {"成龙", "jackie chan", "chan kong sang"}
    assert {a.script for a in e.aliases} == {"han", "latin"}
    assert e.num_videos == 3
    for q in ("成龙", "Jackie", "chan kong-sang", "kong"):
        assert store.search_entities(q)[0].id == e.id
    assert [v.video_key for v in store.entity_videos(e.id)] == [a, b, c]


def test_delete_cascades_edges_and_collects_orphan_entities(cat):
    store = GraphStore(cat)
    a, b = _video(cat, "a"), _video(cat, "b")
    seg_a = cat.segments_of(a)[0].id
    store.write_video(a, VideoGraph(
        [_person("Ada Lovelace"), _person("Alan Turing"), NewEntity("topic", "computing")],
        [_appears("Ada Lovelace", a, segment=seg_a, modality="speech", extractor="gazetteer", confidence=0.9),
         _appears("Alan Turing", a),
         NewEdge("about", VideoRef(a), EntityRef("topic", "computing")),
         NewEdge("co_occurs", EntityRef("person", "Ada Lovelace"), EntityRef("person", "Alan Turing"))],
    ), extractor="t")
    store.write_video(b, VideoGraph([_person("Alan Turing")], [
        _appears("Alan Turing", b),
        NewEdge("reuses_footage", VideoRef(b), VideoRef(a), modality="visual", extractor="phash",
                src_range=(0.0, 4.0), dst_range=(1.0, 5.0), confidence=0.8),
    ]), extractor="t")
    ada = store.search_entities("ada lovelace")[0]
    edge = next(e for e in store.edges() if e.segment == seg_a)
    assert (edge.src, edge.dst, edge.video, edge.modality, edge.extractor, edge.confidence) == (
        ("entity", ada.id), ("video", a), a, "speech", "gazetteer", 0.9)
    assert store.related_videos(b)[0].reuse[0]["this"] == [0.0, 4.0]

    cat.delete_video(cat.get_video_by_key(a).video_id)
    assert store.orphans() == {"entities_without_edges": 0, "edges_without_video": 0, "edges_without_entity": 0,
                               "aliases_without_entity": 0}
    remaining = {(e.type, e.name) for e in store.entities()}
    assert remaining == {("person", "Alan Turing")}  # still on video b
    assert all(a not in (e.video, e.src[1] if e.src[0] == "video" else None, e.dst[1] if e.dst[0] == "video"
                         else None) for e in store.edges())
    assert not any(e.relation == "reuses_footage" for e in store.edges())
    cat.delete_video(cat.get_video_by_key(b).video_id)
    assert store.counts()["entities"] == 0 and store.counts()["edges"] == 0
    assert store.is_empty()


def test_rewriting_a_video_replaces_its_contribution_only(cat):
    store = GraphStore(cat)
    a, b = _video(cat, "a"), _video(cat, "b")
    store.write_video(a, VideoGraph([_person("Ada Lovelace")], [_appears("Ada Lovelace", a)]), extractor="t")
    store.write_video(b, VideoGraph([_person("Ada Lovelace")], [_appears("Ada Lovelace", b)]), extractor="t")
    v0 = store.version()
    store.write_video(a, VideoGraph([_person("Grace Hopper")], [_appears("Grace Hopper", a)]), extractor="t")
    assert store.version() > v0
    assert {e.name for e in store.entities()} == {"Ada Lovelace", "Grace Hopper"}
    assert [v.video_key for v in store.entity_videos(store.search_entities("ada")[0].id)] == [b]
    assert store.pending_videos(extractor="t") == [] and store.pending_videos(extractor="t2") == [a, b]


def test_tenants_do_not_share_entities(cat):
    store = GraphStore(cat)
    a, b = _video(cat, "a", tenant="alpha"), _video(cat, "b", tenant="beta")
    store.write_video(a, VideoGraph([_person("Ada Lovelace")], [_appears("Ada Lovelace", a)]), extractor="t")
    store.write_video(b, VideoGraph([_person("Ada Lovelace")], [_appears("Ada Lovelace", b)]), extractor="t")
    ea = store.search_entities("ada", tenant="alpha")
    eb = store.search_entities("ada", tenant="beta")
    assert len(ea) == len(eb) == 1 and ea[0].id != eb[0].id
    with pytest.raises(NotFoundError):
        store.get_entity(ea[0].id, tenant="beta")
    assert [x[1] for x in store.alias_table(tenant="alpha")] == [ea[0].id]


def test_alias_matcher_longest_match_and_cjk():
    m = AliasMatcher([("Jackie Chan", 1), ("Jackie", 2), ("成龙", 1), ("Li", 3), ("Kung Fu Panda", 4), ("龙", 5)])
    got = [(x.alias, x.payloads) for x in m.find("Jackie Chan and Jackie in Kung-Fu Panda")]
    assert got == [("jackie chan", (1,)), ("jackie", (2,)), ("kung fu panda", (4,))]
    assert [x.alias for x in m.find("我喜欢成龙的电影")] == ["成龙"]  # no spaces in Chinese
    assert m.find("a lion") == []  # "Li" is too short, and never matches inside a word
    assert m.find("一条龙") == []  # one CJK character is too short to be a name


def _library(cat: Catalog) -> dict[str, int]:
    store = GraphStore(cat)
    keys = {n: _video(cat, n) for n in ("v1", "v2", "v3", "v4")}
    cast = {"v1": ["Ada Lovelace", "Alan Turing"], "v2": ["Alan Turing", "Grace Hopper"],
            "v3": ["Grace Hopper"], "v4": ["Bruce Lee"]}
    for n, people in cast.items():
        k = keys[n]
        edges = [_appears(p, k) for p in people]
        edges += [NewEdge("co_occurs", EntityRef("person", x), EntityRef("person", y))
                  for i, x in enumerate(people) for y in people[i + 1:]]
        store.write_video(k, VideoGraph([_person(p) for p in people], edges), extractor="t")
    return keys


def test_networkx_views(cat):
    keys = _library(cat)
    store = GraphStore(cat)
    g = alg.to_networkx(cat)
    ada = alg.entity_node(store.search_entities("ada")[0].id)
    bruce = alg.entity_node(store.search_entities("bruce")[0].id)
    grace = alg.entity_node(store.search_entities("grace")[0].id)
    assert g.nodes[ada]["type"] == "person" and g.nodes[alg.video_node(keys["v1"])]["kind"] == "video"
    path = alg.shortest_path(g, ada, grace)
    alan = alg.entity_node(store.search_entities("alan")[0].id)
    assert path == [ada, alan, grace]  # co_occurs on v1, then on v2
    with pytest.raises(NotFoundError):
        alg.shortest_path(g, ada, bruce)
    comms = alg.communities(g)
    assert any(bruce in c and alg.video_node(keys["v4"]) in c for c in comms)
    assert not any(bruce in c and ada in c for c in comms)
    top = alg.centrality(g, "pagerank", top=1)
    assert top[0][0] in {alg.entity_node(store.search_entities(n)[0].id) for n in ("alan", "grace")}
    with pytest.raises(UnknownNameError):
        alg.centrality(g, "fame")
    hood = alg.neighbourhood(cat, store.search_entities("ada")[0].id)
    assert set(hood.nodes) >= {ada, alg.video_node(keys["v1"])} and bruce not in hood
    png = alg.draw_png(hood, title="Ada")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_export_graphml_and_json_round_trip(cat, tmp_path):
    _library(cat)
    g = alg.to_networkx(cat)
    gm = alg.export_graph(g, "graphml")
    ET.fromstring(gm.encode())
    (tmp_path / "g.graphml").write_text(gm)
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert back.number_of_nodes() == g.number_of_nodes() and back.number_of_edges() == g.number_of_edges()
    data = json.loads(alg.export_graph(g, "json"))
    assert len(data["nodes"]) == g.number_of_nodes() and len(data["edges"]) == g.number_of_edges()
    assert {n["type"] for n in data["nodes"]} == {"person", "video"}
    with pytest.raises(UnknownNameError):
        alg.export_graph(g, "dot")


# -- the indexing hook, on a real tiny index -------------------------------------------------------
def test_indexing_fills_the_graph_and_deleting_leaves_no_orphans(tmp_path, tools):
    from engine.index import VideoIndex
    from indexer.pipeline import IndexOptions, index_paths
    from tests import synth

    d = tmp_path / "clips"
    d.mkdir()
    a = synth.make_no_audio_clip(d, seconds=3.0, name="a.mp4")
    b = synth.make_text_clip(d, "HELLO", name="b.mp4")
    side = tmp_path / "meta.jsonl"
    side.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"source": str(a), "title": "Drunken Master clip", "cast": ["成龙 (Jackie Chan)"], "series": "Drunken Master",
         "tags": ["kung fu", "comedy"]},
        {"source": str(b), "title": "Interview", "people": ["Jackie Chan"], "tags": ["interview"]},
    ]) + "\n")
    index_paths([str(a), str(b)], tmp_path / "idx", metadata=side, options=IndexOptions(speech=False, ocr=False))
    with VideoIndex.open(tmp_path / "idx", writer=True) as idx:
        store = GraphStore(idx.catalog)
        jc = store.search_entities("成龙")
        assert len(jc) == 1 and {x.surface for x in jc[0].aliases} >= {"成龙", "Jackie Chan"}
        assert jc[0].num_videos == 2
        ra, rb = idx.catalog.find_by_source(str(a)), idx.catalog.find_by_source(str(b))
        assert store.video_status(ra.key)["status"] == "done"
        rels = {(e.name, r) for e, rs, _ in store.video_entities(ra.key) for r in rs}
        assert {("Drunken Master", "part_of"), ("kung fu", "about"), ("成龙", "appears_in")} <= rels
        assert store.related_videos(rb.key)[0].video_key == ra.key
        idx.delete_video(ra.video_id)
        assert store.orphans() == {"entities_without_edges": 0, "edges_without_video": 0,
                                   "edges_without_entity": 0, "aliases_without_entity": 0}
        assert not store.search_entities("drunken master")
        assert [v.video_key for v in store.entity_videos(jc[0].id)] == [rb.key]
