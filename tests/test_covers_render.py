"""Cover rendering: smart crop keeps a detected face, beautification, templates with
Chinese titles (glyphs really drawn), and the files render_variants writes."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFont

from engine.errors import InputError, MissingDependencyError
from indexer.covers import render
from indexer.covers.candidates import Candidate, render_variants
from indexer.covers.quality import assess_frame
from indexer.covers.render import (
    Template,
    beautify,
    crop_box,
    draw_title,
    find_font,
    load_template,
    parse_aspect,
    render_cover,
    smart_crop,
)


@pytest.fixture(scope="module")
def hopper(visual_image: Path) -> np.ndarray:
    return np.asarray(Image.open(visual_image).convert("RGB"))


@pytest.fixture(scope="module")
def wide_scene(hopper) -> np.ndarray:
    """A 1280x600 frame: a busy high-contrast pattern on the left (a saliency
    distractor), the real face photo on the right."""
    h, w = hopper.shape[:2]
    rng = np.random.default_rng(3)
    left = (rng.random((h // 8, (1280 - w) // 8, 3)) > 0.5).astype(np.uint8) * 255
    left = cv2.resize(left, (1280 - w, h), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(np.hstack([left, hopper]))


@pytest.fixture(scope="module")
def face_box(wide_scene) -> tuple[float, float, float, float]:
    from indexer.covers.faces import detect_faces, mtcnn_model_dir

    try:
        mtcnn_model_dir()
    except MissingDependencyError as e:
        pytest.skip(str(e))
    faces = detect_faces(wide_scene)
    assert faces, "the packaged detector finds Grace Hopper's face"
    f = faces[0]
    assert f.x0 > 1280 - 512  # on the photo, right of the distractor
    return f.x0, f.y0, f.x1, f.y1


@pytest.mark.parametrize("aspect", ["16:9", "4:3", "3:4", "1:1", "9:16"])
def test_smart_crop_keeps_the_detected_face(wide_scene, face_box, aspect):
    crop, (x0, y0, x1, y1) = smart_crop(wide_scene, aspect, faces=[face_box])
    w, h = parse_aspect(aspect)
    assert abs((x1 - x0) / (y1 - y0) - w / h) < 0.02
    fx0, fy0, fx1, fy1 = face_box
    assert x0 <= fx0 and fx1 <= x1 and y0 <= fy0 and fy1 <= y1, (aspect, (x0, y0, x1, y1), face_box)
    assert crop.shape[:2] == (y1 - y0, x1 - x0)


def test_without_faces_the_crop_follows_saliency(wide_scene):
    # The random pattern on the left is the most "salient" thing without a face.
    _, (x0, _, x1, _) = smart_crop(wide_scene, "1:1")
    assert x0 < 1280 - 512


def test_crop_stays_inside_the_content_box():
    box = crop_box((720, 1280, 3), (1, 1), content_box=(0, 90, 1280, 630))
    x0, y0, x1, y1 = box
    assert y0 >= 90 and y1 <= 630 and (x1 - x0) == (y1 - y0) == 540


def test_beautify_is_mild_and_switchable(hopper):
    flat = (100 + (hopper.astype(np.float32) - 100) * 0.4).astype(np.uint8)
    out = beautify(flat)
    assert out.std() > flat.std() * 1.3  # auto contrast restores some range
    assert np.abs(beautify(hopper).astype(int) - hopper).mean() < 25  # a good frame barely moves
    img, _ = render_cover(flat, "16:9", enhance=False)
    crop, _ = smart_crop(flat, "16:9")
    assert np.array_equal(np.asarray(img), crop)


def _glyph(font: ImageFont.FreeTypeFont, ch: str) -> np.ndarray:
    im = Image.new("L", (96, 96), 0)
    from PIL import ImageDraw

    ImageDraw.Draw(im).text((8, 8), ch, font=font, fill=255)
    return np.asarray(im) > 127


def test_template_renders_chinese_glyphs(hopper):
    title = "春节联欢晚会"
    try:
        path = find_font(title)
    except MissingDependencyError as e:
        pytest.skip(f"no CJK font installed ({e}); apt-get install fonts-wqy-microhei")
    from indexer.covers.render import _font_chars

    font = ImageFont.truetype(str(path), 64)
    cmap = _font_chars(str(path))
    # A code point the font lacks renders as its missing-glyph (.notdef) box: "tofu".
    missing = next(chr(c) for c in (0x0E01, 0x10D0, 0xA000, 0x1F600, 0x16A0) if c not in cmap)
    tofu = _glyph(font, missing)
    glyphs = [_glyph(font, ch) for ch in title]
    for ch, g in zip(title, glyphs):
        assert g.sum() > 50, f"{ch} drew nothing"
        assert not np.array_equal(g, tofu), f"{ch} drew the missing-glyph box"
    assert len({g.tobytes() for g in glyphs}) == len(set(title))  # distinct characters, distinct glyphs

    base = Image.fromarray(hopper)
    plain = np.asarray(draw_title(base, "", load_template())).astype(int)
    titled = np.asarray(draw_title(base, title, load_template())).astype(int)
    diff = np.abs(titled - plain).sum(axis=2) > 60
    ys = np.flatnonzero(diff.any(axis=1))
    assert ys.size and ys.min() > hopper.shape[0] * 0.6  # the title sits in the bottom band
    assert diff.mean() > 0.005


def test_missing_font_is_a_named_error(monkeypatch):
    monkeypatch.setattr(render, "FONT_CANDIDATES", ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",))
    with pytest.raises(MissingDependencyError, match="fonts-wqy-microhei"):
        find_font("中文")
    assert find_font("Hello").name == "DejaVuSans.ttf"


def test_template_validation(tmp_path):
    t = load_template()
    assert isinstance(t, Template) and t.title.position == "bottom"
    with pytest.raises(InputError, match="colour"):
        Template.from_dict({"title": {"color": "not-a-colour"}})
    with pytest.raises(InputError, match="unknown title settings"):
        Template.from_dict({"title": {"colour": "#fff"}})
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"title": {"position": "top", "size": 0.1}, "band": {"enabled": False}}))
    top = load_template(p)
    assert top.title.position == "top" and not top.band.enabled
    with pytest.raises(InputError):
        parse_aspect("wide")


def test_render_variants_writes_each_aspect(tmp_path, hopper):
    a = assess_frame(hopper)
    cand = Candidate(t=1.0, shot=0, assessment=a, rgb=hopper)
    files = render_variants([cand], tmp_path, aspects=["16:9", "3:4"], title="Title", template=load_template(),
                            width=400)
    for aspect, path in files[0].items():
        w, h = parse_aspect(aspect)
        im = Image.open(path)
        assert im.format == "JPEG" and abs(im.width / im.height - w / h) < 0.02 and im.width <= 400
