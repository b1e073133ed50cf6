"""Cross-lingual search with the multilingual text encoder (e5-multilingual).

A Chinese query finds an English-speech segment, and an English query finds a
Chinese-speech segment, on an index built with ``text_encoder="e5-multilingual"``.
"""
from __future__ import annotations

import pytest

from engine.config import IndexConfig
from engine.index import VideoIndex
from indexer.pipeline import IndexOptions, index_paths
from query.planner import Searcher
from tests import synth
from tests.conftest import E2E_SPEECH

ZH_SPEECH = "今天天气很好，我们一起去公园散步吧。"


@pytest.fixture(scope="module")
def ml_index(tmp_path_factory, e2e_clips):
    d = tmp_path_factory.mktemp("ml_clips")
    zh = synth.make_speech_clip(d, ZH_SPEECH, voice="cmn", name="zh_talk.mp4")
    idx = tmp_path_factory.mktemp("ml_index")
    paths = [str(e2e_clips["speech"]), str(e2e_clips["text"]), str(e2e_clips["visual"]), str(zh)]
    report = index_paths(paths, idx, config=IndexConfig(text_encoder="e5-multilingual"),
                         options=IndexOptions(ocr=False), show_progress=False)
    assert not report.failed, report.summary()
    return idx, e2e_clips["speech"], zh


def test_chinese_query_finds_english_speech(ml_index):
    idx_dir, en_clip, _ = ml_index
    with VideoIndex.open(idx_dir) as idx:
        assert idx.encoders["text"].name == "e5-multilingual"
        resp = Searcher(idx).search("烹饪节目：用新鲜草莓做巧克力蛋糕")
    assert resp.hits[0].source == str(en_clip), [h.source for h in resp.hits]


def test_english_query_finds_chinese_speech(ml_index):
    idx_dir, _, zh_clip = ml_index
    with VideoIndex.open(idx_dir) as idx:
        rec = idx.catalog.find_by_source(str(zh_clip))
        assert rec.language == "zh"
        resp = Searcher(idx).search("the weather is nice today, let's go for a walk in the park")
    assert resp.hits[0].source == str(zh_clip), [h.source for h in resp.hits]
