"""Text read again between keyframes where the screen's text changed
(indexer.stages.text_follow): a subtitle that follows the keyframe's is read, and
the timeline's spans of both cover when each was shown."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import IndexConfig
from indexer import media
from indexer.options import IndexOptions
from indexer.stages import build_stages
from indexer.stages import text_follow as tf
from indexer.stages.base import Work
from indexer.stages.ocr import OcrStage
from indexer.stages.probe import ProbeStage
from indexer.stages.shots import ShotsStage
from indexer.stages.timeline import ScreenTap, TimelineStage, text_spans
from tests import synth

OPTS = IndexOptions(speech=False, visual=False, graph=False)


def _two_captions(out: Path, captions=(("FIRST CAPTION HERE", 0, 3), ("SECOND CAPTION THERE", 3, 6)),
                  name: str = "subs.mp4") -> Path:
    """6 s of moving test pattern; "FIRST CAPTION HERE" 0-3 s, then "SECOND CAPTION
    THERE" 3-6 s, at the bottom, as subtitles are (or the ``captions`` given)."""
    return synth.make_captions_clip(out, captions, seconds=6.0, fontsize=32, box=True, name=name)


def _work(path: Path, keyframes: list[float]) -> Work:
    """A Work through probe, shots (with the timeline's screen tap) and OCR, with the
    keyframes given instead of the keyframe stage's."""
    work = Work(source=str(path), content_hash="h", config=IndexConfig(), options=OPTS)
    TimelineStage().prepare(work)
    ProbeStage().run(work)
    ShotsStage().run(work)
    work.frames = list(media.frames_at(path, keyframes, size=1280))
    OcrStage().run(work)
    return work


def _iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


@pytest.fixture(scope="module")
def subs(tmp_path_factory):
    if synth.require_tools():
        pytest.skip(synth.require_tools())
    return _two_captions(tmp_path_factory.mktemp("subs"))


def test_the_stage_runs_after_ocr_and_before_the_text_embeddings():
    names = [s.name for s in build_stages(IndexOptions())]
    assert names.index("ocr") < names.index("text_follow") < names.index("text_embed") < names.index("timeline")
    assert "text_follow" not in [s.name for s in build_stages(IndexOptions(timeline=False))]
    assert "text_follow" not in [s.name for s in build_stages(IndexOptions(ocr=False))]


def test_the_next_subtitle_is_read_and_each_spans_its_time(subs):
    work = _work(subs, [1.5])
    assert "first caption" in work.keyframe_text[min(work.keyframe_text)].lower()
    stage = tf.TextFollowStage()
    assert stage.applies(work)
    stage.run(work)
    second = [t for t, lines in work.followup_lines.items() if any("SECOND" in text for text, _ in lines)]
    assert second and 2.9 <= min(second) <= 3.6, work.followup_lines
    assert 1 <= work.stats["text_follow"]["reads"] <= tf.MAX_READS
    spans = text_spans({**work.keyframe_lines, **work.followup_lines}, [(s.start, s.end) for s in work.shots],
                       float(work.info.duration), work.tap(ScreenTap))
    by_text = {}
    for a, b, text in spans:
        key = "first" if "FIRST" in text else "second" if "SECOND" in text else text
        lo, hi = by_text.get(key, (a, b))
        by_text[key] = (min(lo, a), max(hi, b))
    assert _iou(by_text["first"], (0.0, 3.0)) >= 0.7, by_text
    assert _iou(by_text["second"], (3.0, 6.0)) >= 0.7, by_text


def test_reads_stop_at_the_cap_and_nothing_is_read_without_text(subs, monkeypatch):
    monkeypatch.setattr(tf, "MAX_READS", 1)
    work = _work(subs, [1.5])
    tf.TextFollowStage().run(work)
    assert work.stats["text_follow"]["reads"] == 1
    blank = _work(subs, [1.0])
    blank.keyframe_lines = {t: [] for t in blank.keyframe_lines}
    # no text on a keyframe, and the first keyframe near the start: nothing to follow
    assert not tf.TextFollowStage().applies(blank)


def test_a_title_card_before_the_first_keyframe_is_read_as_the_segments_text(tmp_path):
    if synth.require_tools():
        pytest.skip(synth.require_tools())
    from indexer.stages.text import TextEmbedStage, _read_before

    path = _two_captions(tmp_path, (("OPENING TITLE CARD", 0, 1.2),), name="title.mp4")
    work = _work(path, [3.0])
    # the keyframe at 3 s sees only the test pattern's own clock, not the title
    assert not any("TITLE" in text.upper() for lines in work.keyframe_lines.values() for text, _ in lines)
    assert tf.opening_time([3.0]) == tf.OPENING and tf.opening_time([1.2]) is None
    stage = tf.TextFollowStage()
    assert stage.applies(work)
    stage.run(work)
    (t, lines), = work.opening_text.items()
    assert t < 1.2 and "OPENING TITLE CARD" in " ".join(lines).upper().replace("  ", " ")
    # it is the first segment's on-screen text (unless a keyframe read it already)
    from indexer.shots import Segment

    kf = work.frames[0][0]
    work.frame_time = {kf: kf}
    work.segments = [Segment(0, 0.0, 6.0, 0, (kf,))]
    TextEmbedStage().run(work)
    assert "TITLE" in work.ocr_texts[0].upper() and "ocr" in work.segment_vectors[0]
    assert _read_before("Kaving fun?", ["Having fun?"]) and _read_before("fun", ["Having fun?"])
    assert not _read_before("CENTRAL NERVOUS SYSTEM", ["Having fun?"])


def test_a_frame_that_fails_to_decode_stops_the_follow_up_not_the_video(subs, monkeypatch):
    from engine.errors import MediaError

    work = _work(subs, [1.5])

    def broken(*a, **k):
        raise MediaError("decoding failed")
        yield  # a generator, as frames_at is

    monkeypatch.setattr(media, "frames_at", broken)
    tf.TextFollowStage().run(work)
    assert work.followup_lines == {} and "decoding failed" in work.stats["text_follow_error"]
    assert work.stats["text_follow"]["reads"] == 0
