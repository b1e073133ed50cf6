"""Entity extraction: name forms, the metadata sidecar (cast, series, Chinese and
Latin forms), mentions in speech and on-screen text with provenance, visual labels,
and the labelled sample the benchmark measures."""
from __future__ import annotations

import json

import pytest

from engine.catalog import Catalog, NewSegment, NewVideo
from engine.graph import GraphStore, VideoRef, normalise_alias
from indexer.entities import (
    GraphOptions,
    TextExtractor,
    build_graph,
    capitalised_spans,
    chinese_names,
    extract_video_graph,
    key_phrases,
    metadata_entities,
    name_forms,
    update_video_graph,
)
from indexer.metadata import load_sidecar

NO_REUSE = GraphOptions(reuse=False)


def test_name_forms():
    assert [(a.surface, a.lang) for a in name_forms("成龙 (Jackie Chan)")] == [("成龙", "zh"), ("Jackie Chan", None)]
    assert [a.surface for a in name_forms("Jackie Chan / 成龙 | Chan Kong-sang")] == [
        "Jackie Chan", "成龙", "Chan Kong-sang"]
    assert [a.surface for a in name_forms("Jackie Chan（成龙）")] == ["Jackie Chan", "成龙"]  # full-width parens
    assert [a.surface for a in name_forms("Jackie Chan (actor)")] == ["Jackie Chan"]  # a qualifier, not a form
    assert name_forms("  ") == []


def _sidecar_video(tmp_path, row: dict) -> tuple[Catalog, int]:
    side = tmp_path / "meta.jsonl"
    side.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    meta = load_sidecar(side).lookup(row["source"])
    cat = Catalog(tmp_path / "catalog.sqlite")
    key, _, _ = cat.add_video(NewVideo(
        source=row["source"], content_hash="h1", title=meta.title, description=meta.description, tags=meta.tags,
        people=meta.people, extra=meta.extra, duration=10.0,
        segments=[NewSegment(0.0, 5.0, transcript="Welcome back. Today Jackie Chan shows us the ladder fight.",
                             labels=[["ladder", 0.62], ["bow tie", 0.05]]),
                  NewSegment(5.0, 10.0, transcript="Michelle Yeoh joins him in Hong Kong.", ocr_text="成龙 JACKIE CHAN",
                             labels=[["ladder", 0.41]])],
    ))
    return cat, key


SIDECAR = {
    "source": "/media/police_story_3.mp4",
    "title": "Police Story 3: the train scene",
    "description": "Behind the scenes with Stanley Tong.",
    "people": ["Michelle Yeoh"],
    "cast": ["Jackie Chan", {"name": "Maggie Cheung", "aliases": ["張曼玉"]}],
    "cast_zh": ["成龙", "张曼玉"],
    "series": "Police Story / 警察故事",
    "tags": ["action", "stunts"],
    "studio": "Golden Harvest",
    "aliases": {"Michelle Yeoh": ["杨紫琼", "Yeoh Choo-kheng"]},
}


def test_metadata_sidecar_with_cast_series_and_both_scripts(tmp_path):
    cat, key = _sidecar_video(tmp_path, SIDECAR)
    ents = {(e.type, e.name): ({normalise_alias(a.surface) for a in e.all_forms()}, role)
            for e, role in metadata_entities(cat.get_video_by_key(key))}
    assert ents[("person", "Jackie Chan")] == ({"jackie chan", "成龙"}, "cast")
    assert ents[("person", "Maggie Cheung")][0] == {"maggie cheung", "張曼玉", "张曼玉"}
    assert ents[("person", "Michelle Yeoh")][0] == {"michelle yeoh", "杨紫琼", "yeoh choo kheng"}
    assert ents[("title", "Police Story")] == ({"police story", "警察故事"}, "series")
    assert ents[("organisation", "Golden Harvest")][1] == "studio"
    assert {k for k in ents if k[0] == "topic"} == {("topic", "action"), ("topic", "stunts")}
    cat.close()


def test_video_graph_edges_carry_provenance(tmp_path):
    cat, key = _sidecar_video(tmp_path, SIDECAR)
    video, segs = cat.get_video_by_key(key), cat.segments_of(key)
    g = extract_video_graph(video, segs, options=NO_REUSE)
    by = {}
    for e in g.edges:
        name = e.src.name if not isinstance(e.src, VideoRef) else getattr(e.dst, "name", None)
        by.setdefault((e.relation, name), []).append(e)
    meta = by[("appears_in", "Jackie Chan")]
    assert any(e.extractor == "metadata" and e.segment is None and e.confidence == 1.0 for e in meta)
    said = [e for e in meta if e.modality == "speech"]
    assert [(e.segment, e.extractor) for e in said] == [(segs[0].id, "gazetteer")]
    shown = [e for e in meta if e.modality == "ocr"]  # "成龙" on screen resolves to the same entity
    assert [(e.segment, e.extractor) for e in shown] == [(segs[1].id, "gazetteer")]
    assert ("part_of", None) not in by and by[("part_of", "Police Story")][0].dst.name == "Police Story"
    # Unknown names from the description and speech, guessed with lower confidence.
    assert by[("appears_in", "Stanley Tong")][0].extractor == "capitalised"
    assert by[("about", "Hong Kong")][0].confidence < 0.9
    ladder = by[("about", "ladder")][0]
    assert (ladder.modality, ladder.extractor, ladder.segment, ladder.confidence, ladder.weight) == (
        "visual", "imagenet-labels", segs[0].id, 0.62, 2.0)
    assert ("about", "bow tie") not in by  # below the label probability floor
    pairs = {frozenset((e.src.name, e.dst.name)) for e in g.edges if e.relation == "co_occurs"}
    assert frozenset(("Jackie Chan", "Michelle Yeoh")) in pairs
    assert {frozenset((e.src.name, e.dst.name)) for e in g.edges if e.relation == "related"} == {
        frozenset(("action", "stunts"))}
    cat.close()


def test_update_and_backfill_write_the_graph(tmp_path):
    cat, key = _sidecar_video(tmp_path, SIDECAR)
    store = GraphStore(cat)
    assert store.pending_videos() == [key]
    res = build_graph(cat, options=NO_REUSE)
    assert [r.status for r in res] == ["done"] and res[0].edges > 10
    jc = store.search_entities("成龙")[0]
    assert jc.name == "Jackie Chan" and jc.num_videos == 1
    assert store.pending_videos() == []
    # The source file does not exist: fingerprinting fails, and that is recorded, not raised.
    res = update_video_graph(cat, key, options=GraphOptions(reuse=True))
    assert res.status == "failed" and "no such file" in res.reason
    assert store.video_status(key)["status"] == "failed" and store.pending_videos() == [key]
    cat.close()


def test_text_extractors():
    spans = {(m.type, m.name) for m in capitalised_spans(
        "Welcome back. I'm here with Barack Obama and Michelle Obama at the White House, then the Bank of England.")}
    assert spans == {("person", "Barack Obama"), ("person", "Michelle Obama"), ("place", "White House"),
                     ("organisation", "Bank of England")}
    assert capitalised_spans("GRAND OPENING SALE") == []  # all capitals carry no signal
    assert capitalised_spans("Thank you. Good morning everyone.") == []
    zh = {(m.type, m.name) for m in chinese_names("今天我们采访了周星驰，他在北京拍摄新电影。")}
    assert {("person", "周星驰"), ("place", "北京")} <= zh
    phrases = [p for p, _ in key_phrases("We bake a chocolate cake. The chocolate cake needs fresh strawberries. "
                                         "Fresh strawberries are best.")]
    assert phrases[:2] == ["chocolate cake", "fresh strawberries"]
    tx = TextExtractor([("Jackie Chan", ("person", "Jackie Chan")), ("成龙", ("person", "Jackie Chan"))])
    got = [(m.type, m.name, m.extractor) for m in tx.extract("我喜欢成龙的电影, and Jackie Chan met Bruce Lee.")]
    assert got.count(("person", "Jackie Chan", "gazetteer")) == 2 and ("person", "Bruce Lee", "capitalised") in got


def test_labelled_sample_is_well_formed_and_the_extractor_beats_each_part():
    from benchmarks.bench_entities import CONFIGS, evaluate, load_sample

    rows = load_sample()
    assert len(rows) >= 40 and all({"text", "gold", "known", "modality"} <= set(r) for r in rows)
    res = {name: evaluate(rows, **cfg) for name, cfg in CONFIGS.items()}
    # The combination finds more than either half alone without losing much precision.
    assert res["full"]["typed"]["f1"] > max(res["gazetteer"]["typed"]["f1"], res["heuristics"]["typed"]["f1"])
    assert res["gazetteer"]["typed"]["fp"] == 0  # known names only: nothing invented


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_has_no_mentions(text):
    assert TextExtractor([("Ada", ("person", "Ada"))]).extract(text) == []
