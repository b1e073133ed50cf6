"""End to end with real models: synthetic clips in, ranked moments out.

A spoken sentence, a burned-in text and a visual object each find their own clip
at rank 1; filters exclude what they should; a clip without speech still ranks
first on what it has.
"""
from __future__ import annotations

import json
import shutil

import pytest

from api.cli import main
from engine.index import VideoIndex
from query.planner import SearchOptions, Searcher
from tests.conftest import E2E_SPEECH, E2E_TEXT


@pytest.fixture(scope="module")
def searcher(e2e_index):
    idx = VideoIndex.open(e2e_index)
    yield Searcher(idx)
    idx.close()


def _top(resp) -> str:
    assert resp.hits, "no hits"
    return resp.hits[0].source


def test_index_holds_every_modality(e2e_index, e2e_clips):
    with VideoIndex.open(e2e_index) as idx:
        talk = idx.catalog.find_by_source(str(e2e_clips["speech"]))
        segs = idx.catalog.segments_of(talk.key)
        said = " ".join(s.transcript for s in segs).lower()
        for word in ("cooking", "chocolate", "cake", "strawberries"):
            assert word in said
        assert talk.language == "en"
        sign = idx.catalog.find_by_source(str(e2e_clips["text"]))
        shown = " ".join(s.ocr_text for s in idx.catalog.segments_of(sign.key)).upper()
        assert "GRAND OPENING SALE" in " ".join(shown.split())
        uni = idx.catalog.find_by_source(str(e2e_clips["visual"]))
        labels = [lab[0] for s in idx.catalog.segments_of(uni.key) for lab in s.labels]
        assert "military uniform" in labels
        cuts = idx.catalog.find_by_source(str(e2e_clips["cuts"]))
        assert len(idx.catalog.shots_of(cuts.key)) == 3


def test_spoken_sentence_finds_its_clip(searcher, e2e_clips):
    resp = searcher.search("baking a chocolate cake with strawberries on a cooking show")
    assert _top(resp) == str(e2e_clips["speech"])
    assert "speech" in resp.hits[0].matched
    assert "chocolate" in resp.hits[0].snippet.lower()


def test_on_screen_text_finds_its_clip(searcher, e2e_clips):
    resp = searcher.search(E2E_TEXT.lower())
    assert _top(resp) == str(e2e_clips["text"])
    assert "ocr" in resp.hits[0].matched


def test_visual_object_finds_its_silent_clip(searcher, e2e_clips):
    # The clip has no audio and no text: it must still win on what it has.
    resp = searcher.search("a person in a military uniform")
    assert _top(resp) == str(e2e_clips["visual"])
    assert resp.intent["label"] in ("visual", "entity")


def test_image_query(searcher, e2e_clips, visual_image):
    from indexer.media import load_image

    resp = searcher.search("", image=load_image(visual_image))
    assert _top(resp) == str(e2e_clips["visual"])


def test_quoted_phrase_must_match(searcher, e2e_clips):
    resp = searcher.search('"chocolate cake"')
    assert _top(resp) == str(e2e_clips["speech"])
    assert resp.hits[0].matched.get("phrase") == 1.0


def test_filters_exclude(searcher, e2e_clips):
    resp = searcher.search("chocolate cake has:text")
    assert str(e2e_clips["speech"]) not in [h.source for h in resp.hits]
    resp = searcher.search("chocolate cake duration>100s")
    assert resp.hits == []
    resp = searcher.search("chocolate cake -chocolate")
    assert str(e2e_clips["speech"]) not in [h.source for h in resp.hits]
    resp = searcher.search("duration<4s")  # filter only: lists the matching videos
    durations = {h.source: h.end for h in resp.hits}
    assert durations and all(d < 4 for d in durations.values())


def test_moments_are_inside_the_video_and_one_per_video(searcher):
    resp = searcher.search("a video", options=SearchOptions(k=10, per_video=1))
    sources = [h.source for h in resp.hits]
    assert len(sources) == len(set(sources))
    for h in resp.hits:
        assert 0 <= h.start < h.end


def test_cli_search_json_contract(e2e_index, e2e_clips, capsys):
    assert main(["search", E2E_SPEECH, "--index", str(e2e_index), "--json", "--k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"query", "intent", "took_ms", "hits"}
    hit = out["hits"][0]
    assert set(hit) >= {"video_id", "source", "start", "end", "score", "matched", "snippet"}
    assert hit["source"] == str(e2e_clips["speech"])


def test_cli_malformed_query_is_a_clear_error(e2e_index, capsys):
    assert main(["search", 'cake "unclosed', "--index", str(e2e_index)]) == 2
    assert "position" in capsys.readouterr().err


def test_cli_info_and_delete(e2e_index, tmp_path, capsys):
    copy = tmp_path / "idx"
    shutil.copytree(e2e_index, copy)
    assert main(["info", "--index", str(copy), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    vid = info["videos"][0]["video_id"]
    assert (copy / "thumbs" / vid).is_dir()  # moment thumbnails made at ingest
    assert main(["delete", vid, "--index", str(copy)]) == 0
    assert not (copy / "thumbs" / vid).exists()  # ... go with the video
    assert main(["delete", vid, "--index", str(copy)]) == 1
    assert "no video with id" in capsys.readouterr().err
    with VideoIndex.open(copy) as idx:
        assert idx.catalog.counts()["videos"] == len(info["videos"]) - 1
