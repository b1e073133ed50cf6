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


# -- two lines of one size in one place: the tracker cannot see one become the other ------
BOX_A = [0.3, 0.86, 0.7, 0.93]  # "-A different version?"
BOX_B = [0.3, 0.87, 0.69, 0.94]  # "American version...", read where A was


def _still_screens(seconds: float = 8.0) -> ScreenTap:
    """Screen thumbnails that never change (4 a second): the tracker runs every line over
    the whole shot, as it does for two subtitles of one size over a still picture."""
    import numpy as np

    screens = ScreenTap()
    for i in range(int(seconds * 4)):
        list(screens.tap([(i * 0.25, np.full((90, 160, 3), 40, np.uint8))]))
    return screens


def test_lines_and_places_are_told_apart():
    from indexer.stages.timeline import other_text, same_place

    assert other_text("-A different version?", "American version...")
    assert not other_text("-A different version?", "-A diferent version?")  # a misreading
    assert not other_text("Factoring", "Factoring Polynomials")  # part of the line, the rest hidden
    assert not other_text("(x+2)(x+3)", "(x+29(x+3)")  # too short to tell
    assert same_place(BOX_A, BOX_B)
    assert not same_place(BOX_A, [0.3, 0.80, 0.7, 0.87])  # the row above
    assert not same_place(BOX_A, [0.75, 0.86, 0.95, 0.93])  # beside it


def test_a_span_never_covers_another_lines_read_in_its_place():
    screens = _still_screens()
    lines = {1.0: [("-A different version?", BOX_A)], 4.0: [("American version...", BOX_B)]}
    spans = {text: (a, b) for a, b, text in text_spans(lines, [(0.0, 8.0)], 8.0, screens)}
    # each runs to halfway between the two reads, not over the other's
    assert spans == {"-A different version?": (0.0, 2.5), "American version...": (2.5, 8.0)}
    # a follow-up that read the place at 6 s and found nothing ends the second one
    spans = text_spans(lines, [(0.0, 8.0)], 8.0, screens, {6.0: [[0.0, 0.8, 1.0, 1.0]]})
    assert (2.5, 5.0, "American version...") in spans
    # a band elsewhere, a misreading, or a part of the same line cut nothing
    spans = text_spans({**lines, 5.0: [("American versi0n...", BOX_B)], 6.5: [("version", BOX_B)]},
                       [(0.0, 8.0)], 8.0, screens, {7.0: [[0.0, 0.1, 1.0, 0.3]]})
    assert (2.5, 8.0, "American version...") in spans


def test_where_one_line_became_another_unseen_the_change_is_found_by_halving(monkeypatch):
    """As on c027: a two-line subtitle whose lower line becomes another at 3.3 s, which the
    tracker cannot see, while the upper line's end at 5 s it sees. The follow-up after the
    upper line reads the new lower line; reads then halve the time between the two lower
    lines until the change is known to within SPLIT s, and the spans are cut there."""
    import numpy as np

    upper, change = [0.3, 0.78, 0.7, 0.85], 3.3
    screens = ScreenTap()
    for i in range(32):  # only the upper line's cells change (at 5 s)
        t = i * 0.25
        frame = np.full((90, 160, 3), 40, np.uint8)
        if t < 5.0:
            frame[70:77, 48:112] = 220
        list(screens.tap([(t, frame)]))
    work = Work(source="v.mp4", content_hash="h", config=IndexConfig(), options=OPTS)
    work.frame_taps.append(screens)
    work.shots = [type("Shot", (), {"start": 0.0, "end": 8.0})()]
    work.frames = [(1.0, None)]
    work.keyframe_lines = {1.0: [("-Do a different version!", upper), ("-A different version?", BOX_A)]}

    def frames_at(source, times, size=1280):
        for t in times:
            yield t, np.full((240, 320, 3), min(255, int(t * 10)), np.uint8)  # the time, in the pixels

    def read_band(rgb, y0, y1, gate=None):
        t = rgb[0, 0, 0] / 10
        lines = [("-Do a different version!", upper)] if t < 5.0 else []
        lines.append(("-A different version?", BOX_A) if t < change else ("American version...", BOX_B))
        return lines, [0.0, max(0.0, y0 - 0.1), 1.0, min(1.0, y1 + 0.1)]

    monkeypatch.setattr(media, "frames_at", frames_at)
    monkeypatch.setattr(tf, "_read_band", read_band)
    assert tf.split_times(work.keyframe_lines, screens, [(0.0, 8.0)], set()) == []  # nothing to split yet
    tf.TextFollowStage().run(work)
    reads = {**work.keyframe_lines, **work.followup_lines}
    lower = {t: text for t, ls in reads.items() for text, box in ls if box[1] > 0.855}
    before = max(t for t, text in lower.items() if text.startswith("-A"))
    after = min(t for t, text in lower.items() if text.startswith("American"))
    assert before < change <= after and after - before <= tf.SPLIT, sorted(lower.items())
    assert work.stats["text_follow"]["reads"] <= tf.MAX_READS
    spans = {text: (a, b) for a, b, text in text_spans(reads, [(0.0, 8.0)], 8.0, screens, work.followup_bands)}
    assert abs(spans["-A different version?"][1] - change) <= tf.SPLIT / 2, spans
    assert abs(spans["American version..."][0] - change) <= tf.SPLIT / 2, spans
    # where the tracker sees the change, nothing is split
    seen = ScreenTap()
    for i in range(32):
        t = i * 0.25
        list(seen.tap([(t, np.full((90, 160, 3), 40 if t < change else 200, np.uint8))]))
    assert tf.split_times({1.0: [("-A different version?", BOX_A)], 5.0: [("American version...", BOX_B)]},
                          seen, [(0.0, 8.0)], set()) == []


def test_a_small_videos_band_is_read_again_scaled_up(monkeypatch):
    """Where the gate misses a small video's subtitle (its detector only scales down), the
    band is read at the detector's side, and the line's box comes back in the frame's
    terms."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from indexer import ocr

    img = Image.new("RGB", (320, 240), (90, 110, 100))
    ImageDraw.Draw(img).text((100, 210), "American version", font=ImageFont.truetype(str(synth.FONT), 12),
                             fill=(255, 255, 255))
    rgb = np.asarray(img)
    real = ocr.gate_features
    sizes = []

    def gate(image, gate=ocr.DEFAULT_GATE):  # the gate misses text under its side, as on c027
        sizes.append(max(image.shape[:2]))
        f = real(image, gate=gate)
        return f if max(image.shape[:2]) >= tf.FOLLOW_SIDE else type(f)(0.0, f.signature, [])

    monkeypatch.setattr(ocr, "gate_features", gate)
    lines, band = tf._read_band(rgb, 0.86, 0.94)
    assert sizes == [320, tf.FOLLOW_SIDE]
    (text, box), = lines
    assert "american version" in text.lower()
    assert box[0] == pytest.approx(100 / 320, abs=0.03) and box[1] == pytest.approx(210 / 240, abs=0.03)
    assert band[1] < box[1] < box[3] <= band[3]
