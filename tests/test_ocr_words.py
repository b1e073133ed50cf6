"""Words that OCR ran together are split back before they are indexed (indexer.ocr_words)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import IndexConfig
from engine.lexical import tokenize
from indexer import ocr
from indexer.ocr_words import respace
from indexer.options import IndexOptions
from indexer.stages.base import Work
from indexer.stages.ocr import OcrStage


@pytest.mark.parametrize("read, want", [
    ("-Doa differentversion", "-Doa different version"),
    ("-Adifferentversion?", "-A different version?"),
    ("SPIRALSESSIONS", "SPIRAL SESSIONS"),  # the case of the letters is kept
    ("RIGHTCLICKTO", "RIGHT CLICK TO"),
    ("Keep away fromchildren", "Keep away from children"),
])
def test_run_on_words_are_split(read, want):
    assert respace(read) == want


@pytest.mark.parametrize("read", [
    "snuittersteck",  # OCR garbage: its cut has one-letter parts
    "Kartoffelsalat",  # another language: "Kart of fels al at" is not kept
    "Schwarzenegger", "Factoring Polynomials", "Bundesliga",  # words the list knows
    "cybervillagesolution.com", "www.happybirthday.org", "me@happybirthday",  # addresses
    "Hoday",  # shorter than MIN_LETTERS
    "(x+2)(x+3) 00:00:01;07", "中华人民共和国", "",
])
def test_words_garbage_and_addresses_stay_as_read(read):
    assert respace(read) == read


def test_a_split_title_matches_its_words_in_bm25_tokens():
    assert {"spiral", "sessions"} <= set(tokenize(respace("SPIRALSESSIONS")))
    assert "sessions" not in tokenize("SPIRALSESSIONS")


def test_the_ocr_stage_indexes_the_split_words(monkeypatch):
    frame = np.zeros((120, 160, 3), np.uint8)
    box = ((10.0, 20.0), (150.0, 20.0), (150.0, 40.0), (10.0, 40.0))

    def read(frames, **_):
        for t, _ in frames:
            yield t, [ocr.OcrLine(text="SPIRALSESSIONS", score=0.9, box=box),
                      ocr.OcrLine(text="snuittersteck", score=0.9, box=box)]

    monkeypatch.setattr(ocr, "ocr_frames", read)
    work = Work(source="x", content_hash="h", config=IndexConfig(), options=IndexOptions())
    work.frames = [(1.5, frame)]
    OcrStage().run(work)
    assert work.keyframe_text == {1.5: "SPIRAL SESSIONS snuittersteck"}
    (text, xyxy), (text2, _) = work.keyframe_lines[1.5]
    assert (text, text2) == ("SPIRAL SESSIONS", "snuittersteck")
    assert xyxy == pytest.approx([10 / 160, 20 / 120, 150 / 160, 40 / 120])
