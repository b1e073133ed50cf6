"""Cover rendering: smart crop to a platform's aspect ratio, light beautification,
and optional title templates drawn with Pillow.

Smart crop
    The largest window of the wanted aspect ratio inside the picture (letterbox bars
    already removed) slides along its free axis; each position scores the saliency
    mass it holds plus a heavy bonus for every detected face it holds whole (face box
    widened by a margin for hair and chin), so a face that fits in the window is
    always kept whole; among equal positions the most central wins.

Beautification (``beautify=False`` turns it off)
    Auto contrast (luma percentile stretch with a capped gain, one linear map for
    all channels so hues stay), partial grey-world white balance with clamped gains,
    and a mild unsharp mask. Each step is small on purpose: a frame that is already
    good comes out nearly unchanged.

Templates
    A JSON file (:class:`Template`): title position, font, size, colours, outline,
    and a gradient band behind the text. The font is the template's file or, with
    ``"font": "auto"``, the first installed font that has a glyph for every character
    of the title (CJK titles need a CJK font: Debian ``fonts-wqy-microhei``).
"""
from __future__ import annotations

import functools
import json
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from engine.errors import InputError, MissingDependencyError
from indexer.covers.saliency import saliency_map

__all__ = [
    "ASPECTS",
    "parse_aspect",
    "crop_box",
    "smart_crop",
    "beautify",
    "TitleStyle",
    "BandStyle",
    "Template",
    "DEFAULT_TEMPLATE",
    "load_template",
    "find_font",
    "FONT_CANDIDATES",
    "draw_title",
    "render_cover",
]

ASPECTS: tuple[str, ...] = ("16:9", "4:3", "3:4", "1:1")
DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "default.json"

# Installed fonts tried in order by "font": "auto"; the first that covers the title wins.
FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian fonts-wqy-microhei (Apache-2.0 / GPL-3 + font exception)
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",  # Debian fonts-noto-cjk (OFL-1.1)
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",  # no CJK: Latin, Greek, Cyrillic
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)

# A face box is widened by these fractions of its size before it must fit in a crop.
_FACE_MARGIN_X = 0.15
_FACE_MARGIN_TOP = 0.30
_FACE_MARGIN_BOTTOM = 0.15


def parse_aspect(text: str) -> tuple[int, int]:
    """``"16:9"`` -> (16, 9). Raises InputError naming the bad value."""
    try:
        w, h = (int(x) for x in str(text).strip().split(":"))
    except ValueError:
        raise InputError(f"aspect ratio {text!r} is not W:H", hint="e.g. 16:9, 4:3, 3:4 or 1:1") from None
    if w <= 0 or h <= 0 or w > 100 or h > 100:
        raise InputError(f"aspect ratio {text!r} must have parts in 1..100")
    return w, h


def _window(region_w: int, region_h: int, aspect: tuple[int, int]) -> tuple[int, int]:
    ar = aspect[0] / aspect[1]
    if region_w / region_h > ar:
        h = region_h
        w = max(1, min(region_w, round(h * ar)))
    else:
        w = region_w
        h = max(1, min(region_h, round(w / ar)))
    return w, h


def crop_box(
    shape: tuple[int, ...],
    aspect: tuple[int, int],
    *,
    content_box: tuple[int, int, int, int] | None = None,
    faces: Sequence[Sequence[float]] = (),
    saliency: np.ndarray | None = None,
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the crop of a frame of ``shape`` (H, W, ...) to ``aspect``.

    ``faces`` are (x0, y0, x1, y1[, score]) boxes in frame pixels; ``saliency`` a map of
    any size covering the whole frame (computed by the caller, or None for none).
    """
    h, w = int(shape[0]), int(shape[1])
    cx0, cy0, cx1, cy1 = content_box if content_box and content_box[2] > content_box[0] else (0, 0, w, h)
    cx0, cy0, cx1, cy1 = max(0, cx0), max(0, cy0), min(w, cx1), min(h, cy1)
    rw, rh = cx1 - cx0, cy1 - cy0
    ww, wh = _window(rw, rh, aspect)
    horizontal = ww < rw  # the free axis
    span = (rw - ww) if horizontal else (rh - wh)
    if span <= 0:
        return cx0, cy0, cx0 + ww, cy0 + wh

    # Saliency mass per column (or row) of the content region.
    if saliency is not None and saliency.size:
        sal = cv2.resize(saliency.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)[cy0:cy1, cx0:cx1]
        profile = sal.sum(axis=0 if horizontal else 1).astype(np.float64)
        total = profile.sum()
        profile = profile / total if total > 0 else np.zeros_like(profile)
    else:
        profile = np.zeros(rw if horizontal else rh)
    cum = np.concatenate([[0.0], np.cumsum(profile)])
    size = ww if horizontal else wh

    # Faces, widened, in region coordinates along the free axis; the largest weighs most.
    spans = []
    for f in faces:
        fx0, fy0, fx1, fy1 = (float(v) for v in f[:4])
        fw, fh = fx1 - fx0, fy1 - fy0
        if fw <= 0 or fh <= 0:
            continue
        if horizontal:
            a, b = fx0 - _FACE_MARGIN_X * fw - cx0, fx1 + _FACE_MARGIN_X * fw - cx0
        else:
            a, b = fy0 - _FACE_MARGIN_TOP * fh - cy0, fy1 + _FACE_MARGIN_BOTTOM * fh - cy0
        a, b = max(0.0, a), min(float(span + size), b)
        spans.append((a, b, fw * fh))
    biggest = max((s[2] for s in spans), default=1.0)

    positions = np.arange(span + 1)
    score = cum[positions + size] - cum[positions]
    for a, b, area in spans:
        weight = 10.0 * (0.5 + 0.5 * area / biggest)
        whole = (positions <= a) & (positions + size >= b)
        if b - a <= size:
            score = score + weight * whole
        else:  # the face cannot fit: centre on it instead
            centre = 0.5 * (a + b)
            score = score + weight * (1.0 - np.abs(positions + size / 2 - centre) / (span + size))
    centrality = -np.abs(positions - span / 2) / max(1, span) * 1e-3
    best = int(positions[np.argmax(score + centrality)])
    if horizontal:
        return cx0 + best, cy0, cx0 + best + ww, cy0 + wh
    return cx0, cy0 + best, cx0 + ww, cy0 + best + wh


def smart_crop(
    rgb: np.ndarray,
    aspect: str | tuple[int, int],
    *,
    content_box: tuple[int, int, int, int] | None = None,
    faces: Sequence[Sequence[float]] = (),
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop ``rgb`` to ``aspect`` keeping faces and salient regions; returns (crop, box)."""
    ar = parse_aspect(aspect) if isinstance(aspect, str) else aspect
    box = crop_box(rgb.shape, ar, content_box=content_box, faces=faces, saliency=saliency_map(rgb))
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(rgb[y0:y1, x0:x1]), box


def beautify(rgb: np.ndarray, *, contrast: bool = True, white_balance: bool = True,
             sharpen: bool = True) -> np.ndarray:
    """Auto contrast, grey-world white balance and unsharp mask, each mild and clamped."""
    img = rgb.astype(np.float32)
    if white_balance:
        means = img.reshape(-1, 3).mean(axis=0)
        grey = float(means.mean())
        if grey > 8:  # a near-black frame has no colour cast to measure
            gains = np.clip((grey / np.maximum(means, 1e-3)) ** 0.6, 0.85, 1.2)
            img *= gains
    if contrast:
        luma = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        lo, hi = np.percentile(luma, [0.5, 99.5])
        if hi - lo > 16:
            gain = min(1.6, 255.0 / (hi - lo))
            # Stretch about the midpoint of the used range, then centre it.
            mid = 0.5 * (lo + hi)
            img = (img - mid) * gain + 127.5 + (mid - 127.5) * 0.5
    if sharpen:
        blur = cv2.GaussianBlur(img, (0, 0), sigmaX=1.0)
        img = img + 0.5 * (img - blur)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Templates


def _colour(value: str, what: str) -> tuple[int, int, int]:
    try:
        return ImageColor.getrgb(value)[:3]
    except (ValueError, TypeError):
        raise InputError(f"template {what} {value!r} is not a colour", hint="use e.g. #ffffff or white") from None


@dataclass(frozen=True)
class TitleStyle:
    """Title text: ``position`` top or bottom; ``size`` and ``margin`` and
    ``stroke_width`` as fractions of the cover's height (size) and width (margin);
    ``font`` a font file or "auto"."""

    position: str = "bottom"
    font: str = "auto"
    size: float = 0.075
    color: str = "#ffffff"
    stroke_width: float = 0.004
    stroke_color: str = "#000000"
    margin: float = 0.05
    max_lines: int = 2
    align: str = "left"

    def __post_init__(self) -> None:
        if self.position not in ("top", "bottom"):
            raise InputError(f"title position must be top or bottom, got {self.position!r}")
        if self.align not in ("left", "center", "right"):
            raise InputError(f"title align must be left, center or right, got {self.align!r}")
        if not 0.01 <= self.size <= 0.5 or not 0 <= self.margin <= 0.3 or not 0 <= self.stroke_width <= 0.05:
            raise InputError("title size must be in 0.01..0.5, margin in 0..0.3, stroke_width in 0..0.05"
                             " (fractions of the cover)")
        if not 1 <= self.max_lines <= 6:
            raise InputError(f"title max_lines must be in 1..6, got {self.max_lines}")
        _colour(self.color, "title color")
        _colour(self.stroke_color, "title stroke_color")


@dataclass(frozen=True)
class BandStyle:
    """A gradient band behind the title: ``height`` fraction of the cover, opacity
    rising from 0 at its inner edge to ``opacity`` at the cover's edge."""

    enabled: bool = True
    height: float = 0.38
    color: str = "#000000"
    opacity: float = 0.75

    def __post_init__(self) -> None:
        if not 0 <= self.height <= 1 or not 0 <= self.opacity <= 1:
            raise InputError("band height and opacity must be in 0..1")
        _colour(self.color, "band color")


@dataclass(frozen=True)
class Template:
    """A cover template (loaded from JSON with :func:`load_template`)."""

    title: TitleStyle = field(default_factory=TitleStyle)
    band: BandStyle = field(default_factory=BandStyle)

    @classmethod
    def from_dict(cls, data: dict, *, origin: str = "template") -> "Template":
        if not isinstance(data, dict):
            raise InputError(f"{origin}: a template is a JSON object with 'title' and 'band'")
        parts = {}
        for key, kind in (("title", TitleStyle), ("band", BandStyle)):
            sub = data.get(key, {})
            if not isinstance(sub, dict):
                raise InputError(f"{origin}: '{key}' must be an object")
            valid = {f.name for f in fields(kind)}
            unknown = set(sub) - valid
            if unknown:
                raise InputError(f"{origin}: unknown {key} settings {sorted(unknown)}; valid: {sorted(valid)}")
            try:
                parts[key] = kind(**sub)
            except TypeError as e:
                raise InputError(f"{origin}: bad {key} settings: {e}") from e
        unknown = set(k for k in data if not k.startswith("_")) - {"title", "band"}
        if unknown:
            raise InputError(f"{origin}: unknown template sections {sorted(unknown)}; valid: ['band', 'title']")
        return cls(**parts)


def load_template(path: str | Path | None = None) -> Template:
    """Read a template JSON file (default: ``templates/default.json`` beside this module)."""
    p = Path(path) if path is not None else DEFAULT_TEMPLATE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"template file {p} does not exist") from None
    except json.JSONDecodeError as e:
        raise InputError(f"template file {p} is not valid JSON: {e}") from e
    return Template.from_dict(data, origin=str(p))


@functools.lru_cache(maxsize=32)
def _font_chars(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTCollection, TTFont

    if path.lower().endswith((".ttc", ".otc")):
        fonts = TTCollection(path, lazy=True).fonts[:1]
    else:
        fonts = [TTFont(path, lazy=True)]
    cmap = fonts[0].getBestCmap() or {}
    return frozenset(cmap)


def find_font(text: str, font: str = "auto") -> Path:
    """The font file to draw ``text`` with: ``font`` itself when it is a path, else the
    first of :data:`FONT_CANDIDATES` that has a glyph for every character. Raises
    MissingDependencyError (naming the Debian package) when none covers the text."""
    if font != "auto":
        p = Path(font)
        if not p.is_file():
            raise InputError(f"font file {font!r} does not exist", hint='use a .ttf/.otf/.ttc path or "auto"')
        return p
    needed = {ord(c) for c in text if not c.isspace() and unicodedata.category(c)[0] != "C"}
    for cand in FONT_CANDIDATES:
        if Path(cand).is_file() and needed <= _font_chars(cand):
            return Path(cand)
    missing = sorted(chr(c) for c in needed if not any(
        Path(f).is_file() and c in _font_chars(f) for f in FONT_CANDIDATES))
    raise MissingDependencyError(
        "fonts-wqy-microhei", f"drawing the title characters {''.join(missing[:10])!r}",
        hint="apt-get install fonts-wqy-microhei (CJK), or set the template's font to a file that has them",
    )


def _tokens(text: str) -> list[str]:
    # CJK has no spaces: each ideograph or kana is its own break opportunity.
    out: list[str] = []
    word = ""
    for ch in text:
        wide = unicodedata.east_asian_width(ch) in ("W", "F")
        if ch.isspace():
            if word:
                out.append(word)
            word = ""
            out.append(" ")
        elif wide:
            if word:
                out.append(word)
            word = ""
            out.append(ch)
        else:
            word += ch
    if word:
        out.append(word)
    return out


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for tok in _tokens(text.strip()):
        trial = cur + tok
        if cur and font.getlength(trial.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = tok.lstrip()
        else:
            cur = trial
    if cur.strip():
        lines.append(cur.rstrip())
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last + "…"]
    return lines


def draw_title(img: Image.Image, title: str, template: Template) -> Image.Image:
    """Draw the band and ``title`` onto a copy of ``img`` (RGB) following ``template``."""
    w, h = img.size
    out = img.convert("RGBA")
    t, band = template.title, template.band
    at_bottom = t.position == "bottom"
    if band.enabled and band.height > 0 and band.opacity > 0:
        bh = max(1, round(band.height * h))
        ramp = np.linspace(0.0, band.opacity, bh, dtype=np.float32)
        if not at_bottom:
            ramp = ramp[::-1]
        alpha = (np.repeat(ramp[:, None], w, axis=1) * 255).astype(np.uint8)
        layer = Image.new("RGBA", (w, bh), _colour(band.color, "band color") + (0,))
        layer.putalpha(Image.fromarray(alpha))
        out.alpha_composite(layer, (0, h - bh if at_bottom else 0))
    if title.strip():
        font_path = find_font(title, t.font)
        size = max(8, round(t.size * h))
        font = ImageFont.truetype(str(font_path), size)
        margin = round(t.margin * w)
        lines = _wrap(title, font, w - 2 * margin, t.max_lines)
        stroke = max(0, round(t.stroke_width * h))
        line_h = round(size * 1.25)
        block = line_h * len(lines)
        y = h - margin - block if at_bottom else margin
        draw = ImageDraw.Draw(out)
        for line in lines:
            lw = font.getlength(line)
            x = {"left": margin, "center": (w - lw) / 2, "right": w - margin - lw}[t.align]
            draw.text((x, y), line, font=font, fill=_colour(t.color, "title color") + (255,),
                      stroke_width=stroke, stroke_fill=_colour(t.stroke_color, "title stroke_color") + (255,))
            y += line_h
    return out.convert("RGB")


def render_cover(
    rgb: np.ndarray,
    aspect: str,
    *,
    content_box: tuple[int, int, int, int] | None = None,
    faces: Sequence[Sequence[float]] = (),
    enhance: bool = True,
    template: Template | None = None,
    title: str | None = None,
    width: int | None = None,
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Crop, optionally beautify, resize to ``width`` (never up), draw the template;
    returns the cover and the crop box in frame pixels."""
    crop, box = smart_crop(rgb, aspect, content_box=content_box, faces=faces)
    if enhance:
        crop = beautify(crop)
    img = Image.fromarray(crop)
    if width is not None and width < img.width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.LANCZOS)
    if template is not None or title:
        img = draw_title(img, title or "", template or load_template())
    return img, box

