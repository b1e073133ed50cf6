"""OCR stage: real RapidOCR on rendered text, the text gate, and reuse of results
for keyframes that show the same screen."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from engine.errors import InputError, UnknownNameError
from indexer import ocr

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT.is_file():
        pytest.skip(f"{FONT} is missing (apt-get install fonts-dejavu-core)")
    return ImageFont.truetype(str(FONT), size)


def _text_frame(text: str = "Hello World 2024", xy: tuple[int, int] = (40, 140)) -> np.ndarray:
    im = Image.new("RGB", (640, 360), "white")
    ImageDraw.Draw(im).text(xy, text, fill="black", font=_font(56))
    return np.asarray(im).copy()


def _blank() -> np.ndarray:
    return np.full((360, 640, 3), 255, np.uint8)


def _natural() -> np.ndarray:
    """A sky-to-ground gradient with soft shapes and sensor noise, and no text."""
    rng = np.random.default_rng(3)
    h, w = 360, 640
    y = np.linspace(0.0, 1.0, h)[:, None, None]
    sky = np.array([120, 170, 230], np.float32)
    ground = np.array([70, 110, 50], np.float32)
    img = (1 - y) * sky + y * ground + np.zeros((1, w, 1), np.float32)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.ellipse((480, 30, 560, 110), fill=(250, 230, 150))  # a sun
    d.polygon([(0, 260), (150, 140), (330, 260)], fill=(90, 90, 100))  # hills
    d.polygon([(250, 260), (420, 120), (640, 260)], fill=(80, 85, 95))
    for _ in range(12):  # trees
        x0, y0 = int(rng.integers(0, 600)), int(rng.integers(250, 320))
        d.ellipse((x0, y0, x0 + 30, y0 + 40), fill=(30, int(rng.integers(80, 120)), 30))
    arr = np.asarray(im).astype(np.float32) + rng.normal(0, 4, (h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def test_reads_rendered_text() -> None:
    lines = ocr.ocr_frame(_text_frame())
    assert "hello world 2024" in " ".join(_norm(ln.text) for ln in lines)
    for ln in lines:
        assert ocr.DEFAULT_MIN_SCORE <= ln.score <= 1.0
        assert len(ln.box) == 4
        xs = [x for x, _ in ln.box]
        ys = [y for _, y in ln.box]
        # The text was drawn from (40, 140), 56 px high: the box must sit around it.
        assert min(xs) < 100 and max(xs) > 400 and 100 < min(ys) < max(ys) < 230


def test_blank_frame_has_no_text() -> None:
    assert ocr.ocr_frame(_blank()) == []


def test_natural_image_gives_few_lines() -> None:
    lines = [ln for ln in ocr.ocr_frame(_natural()) if sum(c.isalnum() for c in ln.text) >= 3]
    assert len(lines) <= 1, lines


@pytest.mark.parametrize("gate", sorted(ocr.GATES))
def test_gate_passes_text_and_skips_blank(gate: str) -> None:
    text = ocr.gate_features(_text_frame(), gate=gate)
    blank = ocr.gate_features(_blank(), gate=gate)
    assert ocr.should_ocr(text, gate=gate)
    assert not ocr.should_ocr(blank, gate=gate)
    assert text.likelihood > blank.likelihood
    assert ocr.text_likelihood(_text_frame(), gate=gate) == pytest.approx(text.likelihood)


def test_gate_ranks_text_above_natural_image() -> None:
    for gate in ocr.GATES:
        assert ocr.text_likelihood(_text_frame(), gate=gate) > ocr.text_likelihood(_natural(), gate=gate)


def test_the_gates_boxes_are_read_without_detecting_again(monkeypatch) -> None:
    """A detection gate already found the text boxes: the read recognises them and runs
    no second, full-size detection; ``reuse_boxes=False`` detects again. Both read the
    same words, with boxes at the same place."""
    engine = ocr._engine()
    real = engine.text_det.infer
    calls = []
    monkeypatch.setattr(engine.text_det, "infer", lambda x: calls.append(x.shape) or real(x))
    frames = [(0.0, _text_frame()), (2.0, _text_frame("Goodbye Moon 1999", xy=(60, 40)))]
    reused = ocr.ocr_frames(frames)
    assert calls == []
    again = ocr.ocr_frames(frames, reuse_boxes=False)
    assert len(calls) == 2
    for (_, a), (_, b) in zip(reused, again):
        assert [_norm(ln.text) for ln in a] == [_norm(ln.text) for ln in b] != []
        for la, lb in zip(a, b):
            assert np.abs(np.asarray(la.box) - np.asarray(lb.box)).max() < 12  # pixels of a 640x360 frame
    assert "goodbye moon 1999" in " ".join(_norm(ln.text) for ln in reused[1][1])
    assert ocr.ocr_frame(_text_frame(), boxes=[]) == []  # nothing found, nothing read
    low = ocr.gate_features(_text_frame()).boxes
    assert low and ocr.ocr_frame(_text_frame(), boxes=[(b, 0.1) for b, _ in low]) == []  # under DET_BOX_THRESH
    assert ocr.gate_features(_text_frame(), gate="edges").boxes is None


def test_the_ocr_stage_detects_again_only_for_small_text(monkeypatch) -> None:
    from engine.config import IndexConfig
    from indexer.options import IndexOptions
    from indexer.stages.base import Work
    from indexer.stages.ocr import OcrStage

    engine = ocr._engine()
    real = engine.text_det.infer
    calls = []
    monkeypatch.setattr(engine.text_det, "infer", lambda x: calls.append(x.shape) or real(x))
    for small_text, detections in ((False, 0), (True, 1)):
        work = Work(source="x", content_hash="h", config=IndexConfig(), options=IndexOptions(ocr_small_text=small_text))
        work.frames = [(0.0, _text_frame())]
        calls.clear()
        OcrStage().run(work)
        assert len(calls) == detections
        assert "hello world 2024" in _norm(work.keyframe_text[0.0])


class _CountingOcr:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rgb: np.ndarray) -> list[ocr.OcrLine]:
        self.calls += 1
        return ocr.ocr_frame(rgb)


def test_identical_frames_reuse_the_result() -> None:
    counter = _CountingOcr()
    stats = ocr.GateStats()
    frame = _text_frame()
    out = ocr.ocr_frames([(0.0, frame), (2.0, frame.copy())], ocr=counter, stats=stats)
    assert counter.calls == 1
    assert (stats.frames, stats.ocr_calls, stats.reused, stats.skipped) == (2, 1, 1, 0)
    assert [t for t, _ in out] == [0.0, 2.0]
    assert out[1][1] == out[0][1]
    assert "hello world 2024" in " ".join(_norm(ln.text) for ln in out[1][1])


def test_new_text_is_read_again_and_blank_is_skipped() -> None:
    counter = _CountingOcr()
    stats = ocr.GateStats()
    frames = [
        (0.0, _text_frame()),
        (2.0, _blank()),
        (4.0, _text_frame("Goodbye Moon 1999", xy=(60, 40))),
    ]
    out = ocr.ocr_frames(frames, ocr=counter, stats=stats)
    assert counter.calls == 2 and stats.skipped == 1 and stats.reused == 0
    assert out[1][1] == []
    assert "goodbye moon 1999" in " ".join(_norm(ln.text) for ln in out[2][1])


def test_gate_off_and_dedupe_off_ocr_every_frame() -> None:
    counter = _CountingOcr()
    frames = [(0.0, _blank()), (1.0, _blank())]
    ocr.ocr_frames(frames, threshold=0.0, dedupe_distance=None, ocr=counter)
    assert counter.calls == 2


def test_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="RGB"):
        ocr.ocr_frame(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        ocr.ocr_frame(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(UnknownNameError, match="edges"):
        ocr.text_likelihood(_blank(), gate="mser")


def test_set_num_threads_reloads_with_the_same_reading() -> None:
    """A worker's thread share changes how fast OCR runs, not what it reads."""
    frame = _text_frame()
    # An earlier index_paths(workers=1) in this process may have set a share already.
    previous = None if ocr._threads == -1 else ocr._threads
    try:
        ocr.set_num_threads(None)
        default_engine = ocr._engine()
        before = ocr.ocr_frame(frame)
        ocr.set_num_threads(1)
        assert ocr._engine() is not default_engine  # loaded again with one intra-op thread
        after = ocr.ocr_frame(frame)
        assert [ln.text for ln in after] == [ln.text for ln in before]
        ocr.set_num_threads(None)
        assert ocr._engine() is default_engine  # each setting's engine stays cached
    finally:
        ocr.set_num_threads(previous)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(InputError):
            ocr.set_num_threads(bad)  # type: ignore[arg-type]
