"""Quality assessment of one video frame as a cover candidate.

:func:`assess_frame` is the contract: it takes an RGB frame and returns a
:class:`FrameAssessment` with a score in [0, 1], the rule that rejects the frame (or
None), each sub-score and a human-readable reason for each. It costs a few
milliseconds on a 2-core machine with the defaults, because a highlight-reel builder
calls it on many frames; the face detector and the NSFW detector are model calls
(about 50-150 ms each) and run only when asked (``faces=True``, ``nsfw=True``).

Rejection rules, in the order they are checked (the first that fires wins):

``black``       mean luma below a threshold (black frames, severe under-exposure)
``white``       share of clipped pixels (2+ channels at 240+) above a threshold (white frames, over-exposure)
``letterbox``   the picture inside black bars is under ``letterbox_min_content`` of the frame
``washed_out``  luma range (p95 - p5) below a threshold (flat, hazy, faded frames)
``transition``  the frame is a blend of its neighbours (dissolve, fade); needs ``neighbours``
``blur``        sharpness below a threshold (Gaussian, motion or defocus blur)
``blocky``      8x8 block-edge energy well above the in-block energy (compression blocking)
``text``        share of the frame covered by text-like regions above a threshold
``unsafe``      NSFW detector's exposed-body-part confidence above a threshold (``nsfw=True``)

Letterbox and pillarbox bars are not a rejection in themselves: they are detected,
reported as ``content_box`` and cropped away before every other measure (and by the
renderer). Exposure (black, white) is measured on the whole frame when the content
box is under half of it (a logo on black is a black frame, not a tiny picture).

The thresholds come from ``thresholds.json`` beside this file, which
``benchmarks/bench_cover_filter.py`` writes from the precision/recall curve of a
labelled set of degraded real frames (docs/covers.md has the numbers).
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from engine.errors import InputError, UnknownNameError
from indexer.covers.saliency import saliency_centroid, saliency_map

__all__ = [
    "FrameAssessment",
    "Thresholds",
    "THRESHOLDS_PATH",
    "RULES",
    "SHARPNESS_MEASURES",
    "assess_frame",
    "load_thresholds",
    "measure_frame",
    "content_box",
    "transition_measure",
    "blockiness",
    "text_fraction",
    "WEIGHTS",
    "combine_parts",
    "rule_fires",
]

THRESHOLDS_PATH = Path(__file__).with_name("thresholds.json")

RULES: tuple[str, ...] = (
    "black", "white", "letterbox", "washed_out", "transition", "blur", "blocky", "text", "unsafe",
)

# Side (pixels, long side) of the copy that exposure, sharpness, text and composition
# are measured on: fixed so that a threshold means the same at every input resolution.
WORK_SIDE = 512
# Luma below this is "dark" for letterbox bars; above WHITE_LEVEL is clipped white.
_BAR_LEVEL = 28.0
_WHITE_LEVEL = 240

# Weights of the sub-scores in the total score; a part that was not computed
# (faces without faces=True, representativeness outside candidates) is left out and
# the rest renormalised.
WEIGHTS: dict[str, float] = {
    "sharpness": 0.25,
    "exposure": 0.15,
    "contrast": 0.15,
    "colourfulness": 0.10,
    "composition": 0.15,
    "text": 0.05,
    "faces": 0.15,
    "representativeness": 0.20,
}


@dataclass(frozen=True)
class Thresholds:
    """Rejection thresholds (see the module docstring for each rule's measure).

    ``sharpness_measure`` names the entry of :data:`SHARPNESS_MEASURES` whose value
    ``blur`` applies to. Load with :func:`load_thresholds`.
    """

    sharpness_measure: str = "lapvar"
    blur: float = 60.0
    black: float = 40.0
    white: float = 0.3
    washed_out: float = 40.0
    blocky: float = 1.6
    text: float = 0.12
    transition: float = 0.2
    unsafe: float = 0.5
    letterbox_min_content: float = 0.4

    def __post_init__(self) -> None:
        if self.sharpness_measure not in SHARPNESS_MEASURES:
            raise UnknownNameError("sharpness measure", self.sharpness_measure, list(SHARPNESS_MEASURES))
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not (math.isfinite(v) and v >= 0):
                raise InputError(f"threshold {f.name}={v!r} must be a finite number >= 0")

    @classmethod
    def from_dict(cls, data: dict, *, origin: str = "thresholds") -> "Thresholds":
        valid = {f.name for f in fields(cls)}
        clean = {k: v for k, v in data.items() if not k.startswith("_")}
        unknown = set(clean) - valid
        if unknown:
            raise InputError(f"{origin}: unknown thresholds {sorted(unknown)}; valid: {sorted(valid)}")
        typed = {k: (v if k == "sharpness_measure" else float(v)) for k, v in clean.items()}
        return cls(**typed)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Thresholds:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"thresholds file {path} is not valid JSON: {e}", hint="fix or regenerate it") from e
    return Thresholds.from_dict(data, origin=path)


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read thresholds from ``path`` (default: ``thresholds.json`` beside this module).

    Cached per file and modification time, so an edited file is picked up.
    """
    p = Path(path) if path is not None else THRESHOLDS_PATH
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        raise InputError(
            f"thresholds file {p} does not exist",
            hint="pass an existing file or rerun benchmarks/bench_cover_filter.py --write-thresholds",
        ) from None
    return _load_cached(str(p), mtime)


@dataclass(frozen=True)
class FrameAssessment:
    """How good one frame is as a cover.

    ``score`` in [0, 1], higher is better; a rejected frame's score is multiplied by
    0.1 so that sorting on ``score`` alone also puts it last in practice, but check
    ``reject``. ``parts`` holds each sub-score in [0, 1] (``sharpness``,
    ``exposure``, ``contrast``, ``colourfulness``, ``composition``, ``text``, and
    ``faces`` with ``faces=True``); ``measures`` the raw values the rules compare
    with their thresholds; ``reasons`` one sentence per part and per fired rule.
    ``content_box`` is ``(x0, y0, x1, y1)`` of the picture without letterbox bars,
    in the input's pixels. ``faces`` lists detected face boxes ``(x0, y0, x1, y1,
    confidence)`` in the input's pixels (empty unless ``faces=True``).
    """

    score: float
    reject: str | None
    parts: dict[str, float]
    reasons: list[str]
    measures: dict[str, float] = field(default_factory=dict)
    content_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    faces: tuple[tuple[float, float, float, float, float], ...] = ()

    def as_dict(self) -> dict:
        return {
            "score": self.score,
            "reject": self.reject,
            "parts": dict(self.parts),
            "reasons": list(self.reasons),
            "measures": dict(self.measures),
            "content_box": list(self.content_box),
            "faces": [list(f) for f in self.faces],
        }


# ---------------------------------------------------------------------------
# Measures


def _check_rgb(rgb: np.ndarray, name: str = "rgb") -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        got = f"{type(rgb).__name__} {getattr(rgb, 'shape', '')} {getattr(rgb, 'dtype', '')}"
        raise InputError(
            f"{name} must be an (H, W, 3) uint8 RGB array, got {got}",
            hint="decode with indexer.media.frames_at or convert with np.asarray(img.convert('RGB'))",
        )
    if min(rgb.shape[:2]) < 8:
        raise InputError(f"{name} is {rgb.shape[1]}x{rgb.shape[0]} pixels; a cover frame needs at least 8x8")


def _resize_long(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= side:
        return img
    s = side / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def content_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of ``gray`` without uniform dark bars on its borders.

    A row (column) is a bar when it is dark and flat; bars thinner than 2% of the side
    are ignored (a dark edge of the picture itself). A frame that is all bar (a black
    frame) keeps its full box: the ``black`` rule deals with it.
    """
    h, w = gray.shape
    g = gray.astype(np.float32)

    def bars(lines_mean: np.ndarray, lines_std: np.ndarray) -> tuple[int, int]:
        is_bar = (lines_mean < _BAR_LEVEL) & (lines_std < 10.0)
        n = len(is_bar)
        lo = 0
        while lo < n and is_bar[lo]:
            lo += 1
        hi = n
        while hi > lo and is_bar[hi - 1]:
            hi -= 1
        if lo >= hi:
            return 0, n
        if lo < 0.02 * n:
            lo = 0
        if n - hi < 0.02 * n:
            hi = n
        return lo, hi

    y0, y1 = bars(g.mean(axis=1), g.std(axis=1))
    x0, x1 = bars(g[y0:y1].mean(axis=0), g[y0:y1].std(axis=0))
    return x0, y0, x1, y1


def _lapvar(gray: np.ndarray) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_32F, ksize=3).var())


def _lapvar_norm(gray: np.ndarray) -> float:
    # Laplacian energy relative to the frame's own contrast: a sharp but low-contrast
    # frame (fog, night) is not mistaken for a blurred one.
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3).var()
    return float(1000.0 * lap / (float(gray.astype(np.float32).var()) + 25.0))


def _tenengrad(gray: np.ndarray) -> float:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(gx * gx + gy * gy))


def _hf_ratio(gray: np.ndarray) -> float:
    # Share of the spectrum's energy beyond a quarter of the Nyquist frequency.
    g = cv2.resize(gray, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
    g -= g.mean()
    spec = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2
    yy, xx = np.mgrid[-128:128, -128:128]
    r = np.sqrt(xx * xx + yy * yy)
    total = spec.sum() + 1e-6
    return float(1000.0 * spec[r > 32].sum() / total)


SHARPNESS_MEASURES: dict[str, Callable[[np.ndarray], float]] = {
    "lapvar": _lapvar,
    "lapvar_norm": _lapvar_norm,
    "tenengrad": _tenengrad,
    "hf_ratio": _hf_ratio,
}
"""Sharpness measures on a uint8 grey frame of :data:`WORK_SIDE` px; the benchmark
compares them and ``thresholds.json`` names the one in use."""


def blockiness(gray_native: np.ndarray) -> float:
    """Compression blocking: mean horizontal and vertical luma step on the strongest
    8-pixel grid phase divided by the median over the 8 phases (about 1.0 for a clean
    frame, 2 and more for heavy JPEG/MPEG blocking).

    Measured on the frame's own pixels (a resize would smear the grid), on a central
    crop of at most 512x512 to keep it cheap; the phase search finds a grid that a
    crop has shifted.
    """
    h, w = gray_native.shape
    ch, cw = min(h, 512), min(w, 512)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    g = gray_native[y0 : y0 + ch, x0 : x0 + cw].astype(np.float32)
    if ch < 24 or cw < 24:
        return 1.0

    def ratio(d: np.ndarray) -> float:
        n = (d.shape[1] // 8) * 8
        per_phase = d[:, :n].reshape(d.shape[0], -1, 8).mean(axis=(0, 1))
        # +0.5 keeps a flat frame (all steps ~0) at a ratio of about 1.
        return float((per_phase.max() + 0.5) / (np.median(per_phase) + 0.5))

    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0)).T
    return 0.5 * (ratio(dx) + ratio(dy))


def text_fraction(gray: np.ndarray) -> float:
    """Share of the frame covered by text-like regions (0..1), a cheap detector.

    Text is dense, high-contrast strokes in horizontal runs: a morphological
    gradient, Otsu threshold, then a horizontal closing joins the letters of a word
    into a box; boxes that are wide, not too tall and well filled count. About 2 ms
    at 512 px. It misses small text by design (a cover tolerates a small logo) and
    can fire on regular fine texture (blinds, fences); the OCR gate of the indexer is
    the precise tool, this is the fast one.
    """
    h, w = gray.shape
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    _, bw = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if float(bw.mean()) > 0.5 * 255:  # a textured frame: Otsu split noise, not strokes
        return 0.0
    joined = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, w // 60), 1)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    area = 0
    for i in range(1, n):
        x, y, bw_, bh, filled = stats[i]
        if bh < 0.012 * h or bh > 0.2 * h or bw_ < 2.0 * bh:
            continue
        box = int(bw_) * int(bh)
        fill = filled / max(1, box)
        # Strokes inside a word box: neither a solid bar (fill near 1) nor sparse noise.
        raw = float(bw[y : y + bh, x : x + bw_].mean()) / 255.0
        if fill < 0.45 or not 0.2 <= raw <= 0.75:
            continue
        area += box
    return float(min(1.0, area / (h * w)))


def _colourfulness(rgb: np.ndarray) -> float:
    # Hasler and Suesstrunk (2003): about 15 is "slightly", 60 "quite", 110 "extremely".
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def transition_measure(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray) -> float:
    """How much ``cur`` looks like a blend of ``prev`` and ``nxt`` (0 = not at all,
    up to 0.5 = a 50/50 dissolve): the smaller blend weight when a linear blend
    explains the frame much better than either neighbour alone.

    A fade to or from black (one neighbour flat) is ``cur = a * other``; the measure
    is then ``min(a, 1 - a)``. Camera motion is told from a dissolve because a blend
    of two moved frames leaves edges a single frame does not have (at 160 px and
    neighbours half a second away, motion decorrelates them).
    """
    def small(x: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) if x.ndim == 3 else x
        return cv2.resize(g, (160, 90), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()

    p, c, n = small(prev), small(cur), small(nxt)
    sst = float(((c - c.mean()) ** 2).sum())
    if sst < 1e-6 * c.size or np.mean(np.abs(p - n)) < 6.0:
        return 0.0  # a flat frame, or neighbours that hardly differ: no transition visible

    def r2(cols: list[np.ndarray]) -> tuple[float, np.ndarray]:
        x = np.stack([*cols, np.ones_like(c)], axis=1)
        coef, *_ = np.linalg.lstsq(x, c, rcond=None)
        res = float(((x @ coef - c) ** 2).sum())
        return 1.0 - res / sst, coef

    flat_p, flat_n = p.std() < 4.0, n.std() < 4.0
    if flat_p != flat_n:  # a fade: scale of the non-flat neighbour
        other = n if flat_p else p
        fit, coef = r2([other])
        a = float(coef[0])
        if fit < 0.9 or not 0.05 <= a <= 0.95:
            return 0.0
        return float(min(a, 1.0 - a))
    if flat_p and flat_n:
        return 0.0
    single = max(r2([p])[0], r2([n])[0])
    blend, coef = r2([p, n])
    a, b = float(coef[0]), float(coef[1])
    gain = (blend - single) / max(1e-6, 1.0 - single)
    if blend < 0.9 or gain < 0.6 or a <= 0 or b <= 0:
        return 0.0
    return float(min(a, b) / max(1e-6, a + b))


def measure_frame(rgb: np.ndarray, *, sharpness_measure: str = "lapvar",
                  all_sharpness: bool = False) -> dict[str, float]:
    """The raw measures of the rules and sub-scores, without thresholds (the
    benchmark sweeps thresholds over these). Crops letterbox bars first; the box is
    returned as ``box_x0`` ... ``box_y1``. ``all_sharpness`` adds every measure of
    :data:`SHARPNESS_MEASURES` as ``sharpness_<name>`` (for comparing them)."""
    _check_rgb(rgb)
    if sharpness_measure not in SHARPNESS_MEASURES:
        raise UnknownNameError("sharpness measure", sharpness_measure, list(SHARPNESS_MEASURES))
    h, w = rgb.shape[:2]
    gray_full = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = _resize_long(gray_full, 256)
    bx0, by0, bx1, by1 = content_box(small)
    sx, sy = w / small.shape[1], h / small.shape[0]
    x0, y0 = int(round(bx0 * sx)), int(round(by0 * sy))
    x1, y1 = int(round(bx1 * sx)), int(round(by1 * sy))
    if x1 - x0 < 8 or y1 - y0 < 8:
        x0, y0, x1, y1 = 0, 0, w, h
    crop = rgb[y0:y1, x0:x1]
    gray_native = gray_full[y0:y1, x0:x1]
    work = _resize_long(crop, WORK_SIDE)
    gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    content_frac = float((x1 - x0) * (y1 - y0) / (w * h))
    # Exposure is judged on the picture without its bars, unless the "picture" is a
    # small part of the frame (a logo on black, a boxed inset): then the frame as a
    # viewer sees it is what is black or white.
    expo = work if content_frac >= 0.5 else _resize_long(rgb, WORK_SIDE)
    expo_gray = gray if content_frac >= 0.5 else cv2.cvtColor(expo, cv2.COLOR_RGB2GRAY)
    luma = expo_gray.astype(np.float32)
    p5, p95 = np.percentile(luma, [5, 95])
    sal = saliency_map(work)
    cx, cy, conc = saliency_centroid(sal)
    m = {
        "mean_luma": float(luma.mean()),
        "luma_std": float(luma.std()),
        "luma_range": float(p95 - p5),
        # Clipped highlights: two or more channels at the top (a saturated blue sky
        # clips one channel and keeps its detail; blown-out white clips all three).
        "white_frac": float(((expo >= _WHITE_LEVEL).sum(axis=2) >= 2).mean()),
        "dark_frac": float((luma <= 16).mean()),
        "sharpness": SHARPNESS_MEASURES[sharpness_measure](gray),
        "blockiness": blockiness(gray_native),
        "text_frac": text_fraction(gray),
        "colourfulness": _colourfulness(work),
        "saliency_cx": cx,
        "saliency_cy": cy,
        "saliency_concentration": conc,
        "content_frac": content_frac,
        "box_x0": float(x0), "box_y0": float(y0), "box_x1": float(x1), "box_y1": float(y1),
    }
    if all_sharpness:
        for name, fn in SHARPNESS_MEASURES.items():
            m[f"sharpness_{name}"] = fn(gray)
    return m


def _composition(cx: float, cy: float, conc: float) -> float:
    # Subject near a rule-of-thirds point or the centre scores high; a concentrated
    # saliency map (one clear subject) scores higher than a diffuse one.
    anchors = [(1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3), (0.5, 0.5)]
    d2 = min((cx - ax) ** 2 + (cy - ay) ** 2 for ax, ay in anchors)
    placement = math.exp(-d2 / (2 * 0.12**2))
    focus = min(1.0, max(0.0, (conc - 0.1) / 0.4))
    return 0.5 * placement + 0.5 * focus


def combine_parts(parts: dict[str, float], reject: str | None = None) -> float:
    """The total score: the :data:`WEIGHTS`-weighted mean of the parts present
    (unknown parts are ignored), times 0.1 for a rejected frame."""
    known = {k: v for k, v in parts.items() if k in WEIGHTS}
    total_w = sum(WEIGHTS[k] for k in known)
    score = sum(WEIGHTS[k] * v for k, v in known.items()) / total_w if total_w else 0.0
    return float(score * (0.1 if reject is not None else 1.0))


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _picture_parts(m: dict[str, float], th: Thresholds) -> tuple[dict[str, float], list[str]]:
    """The score parts a frame's measures give (sharpness, exposure, contrast, colour,
    composition, text), each in [0, 1], with the reasons a person reads."""
    parts: dict[str, float] = {}
    reasons: list[str] = []
    sharp = m["sharpness"]
    parts["sharpness"] = _clip01(math.log2(max(sharp, 1e-6) / max(th.blur, 1e-6)) / 4.0)
    reasons.append(f"sharpness {sharp:.1f} ({th.sharpness_measure}; blur below {th.blur:g})")
    mean = m["mean_luma"]
    exposure = 1.0 - abs(mean - 118.0) / 118.0 - 0.5 * m["white_frac"] - 0.5 * m["dark_frac"]
    parts["exposure"] = _clip01(exposure)
    reasons.append(f"mean luma {mean:.0f}/255, {100 * m['white_frac']:.0f}% clipped white, "
                   f"{100 * m['dark_frac']:.0f}% crushed black")
    parts["contrast"] = _clip01(m["luma_std"] / 64.0)
    reasons.append(f"contrast: luma std {m['luma_std']:.0f}, range p5-p95 {m['luma_range']:.0f}")
    parts["colourfulness"] = _clip01(m["colourfulness"] / 90.0)
    reasons.append(f"colourfulness {m['colourfulness']:.0f} (Hasler-Suesstrunk; 60 is 'quite colourful')")
    parts["composition"] = _composition(m["saliency_cx"], m["saliency_cy"], m["saliency_concentration"])
    reasons.append(f"salient centre at ({m['saliency_cx']:.2f}, {m['saliency_cy']:.2f}), "
                   f"{100 * m['saliency_concentration']:.0f}% of saliency in the top tenth")
    parts["text"] = _clip01(1.0 - m["text_frac"] / max(th.text, 1e-6))
    reasons.append(f"{100 * m['text_frac']:.0f}% of the frame looks like text")
    if m["content_frac"] < 0.999:
        reasons.append(f"letterbox/pillarbox bars cropped: content is {100 * m['content_frac']:.0f}% of the frame")
    return parts, reasons


def _face_part(rgb: np.ndarray, m: dict[str, float], parts: dict[str, float], reasons: list[str]
               ) -> tuple[tuple[float, float, float, float, float], ...]:
    """Run the face detector: adds the ``faces`` part, measures and reason; returns the boxes."""
    from indexer.covers.faces import detect_faces

    found = detect_faces(rgb)
    h, w = rgb.shape[:2]
    biggest = max(((f.x1 - f.x0) * (f.y1 - f.y0) / (w * h) for f in found), default=0.0)
    # A face of 2% of the frame or more reads well in a thumbnail.
    parts["faces"] = _clip01(biggest / 0.02) if found else 0.0
    m["faces"] = float(len(found))
    m["face_area"] = float(biggest)
    reasons.append(f"{len(found)} face(s), largest {100 * biggest:.1f}% of the frame" if found else "no face")
    return tuple((f.x0, f.y0, f.x1, f.y1, f.score) for f in found)


def assess_frame(
    rgb: np.ndarray,
    *,
    faces: bool = False,
    nsfw: bool = False,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    thresholds: Thresholds | None = None,
) -> FrameAssessment:
    """Score one RGB frame (H, W, 3) uint8 as a cover and apply the rejection rules.

    ``faces=True`` runs the packaged face detector (adds the ``faces`` part and the
    face boxes); ``nsfw=True`` runs the packaged NSFW detector (the ``unsafe`` rule).
    ``neighbours=(prev, next)``, frames about half a second before and after, enables
    the ``transition`` rule. Raises InputError for a malformed array.
    """
    th = thresholds or load_thresholds()
    m = measure_frame(rgb, sharpness_measure=th.sharpness_measure)
    box = (int(m["box_x0"]), int(m["box_y0"]), int(m["box_x1"]), int(m["box_y1"]))
    parts, reasons = _picture_parts(m, th)
    face_boxes: tuple[tuple[float, float, float, float, float], ...] = ()
    if faces:
        face_boxes = _face_part(rgb, m, parts, reasons)

    if neighbours is not None:
        prev, nxt = neighbours
        _check_rgb(prev, "neighbours[0]")
        _check_rgb(nxt, "neighbours[1]")
        m["transition"] = transition_measure(prev, rgb, nxt)
    if nsfw:
        from indexer.covers.nsfw import unsafe_score

        m["unsafe"], labels = unsafe_score(rgb)
        if labels:
            reasons.append("NSFW detector: " + ", ".join(labels))

    reject = _first_rule(m, th)
    if reject is not None:
        reasons.insert(0, f"rejected: {reject} ({_RULE_TEXT[reject](m, th)})")

    score = combine_parts(parts, reject)
    return FrameAssessment(
        score=float(score), reject=reject, parts=parts, reasons=reasons, measures=m,
        content_box=box, faces=face_boxes,
    )


_RULE_TEXT: dict[str, Callable[[dict, Thresholds], str]] = {
    "letterbox": lambda m, t: f"content {100 * m['content_frac']:.0f}% < {100 * t.letterbox_min_content:.0f}%",
    "black": lambda m, t: f"mean luma {m['mean_luma']:.1f} < {t.black:g}",
    "white": lambda m, t: f"{100 * m['white_frac']:.0f}% clipped white > {100 * t.white:.0f}%",
    "washed_out": lambda m, t: f"luma range {m['luma_range']:.1f} < {t.washed_out:g}",
    "transition": lambda m, t: f"blend weight {m.get('transition', 0):.2f} > {t.transition:g}",
    "blur": lambda m, t: f"sharpness {m['sharpness']:.1f} < {t.blur:g}",
    "blocky": lambda m, t: f"blockiness {m['blockiness']:.2f} > {t.blocky:g}",
    "text": lambda m, t: f"text covers {100 * m['text_frac']:.0f}% > {100 * t.text:.0f}%",
    "unsafe": lambda m, t: f"NSFW confidence {m.get('unsafe', 0):.2f} > {t.unsafe:g}",
}


def rule_fires(rule: str, m: dict[str, float], th: Thresholds) -> bool:
    """Whether one rule rejects a frame with measures ``m`` (used by the benchmark)."""
    if rule == "letterbox":
        return m["content_frac"] < th.letterbox_min_content
    if rule == "black":
        return m["mean_luma"] < th.black
    if rule == "white":
        return m["white_frac"] > th.white
    if rule == "washed_out":
        return m["luma_range"] < th.washed_out
    if rule == "transition":
        return m.get("transition", 0.0) > th.transition
    if rule == "blur":
        return m["sharpness"] < th.blur
    if rule == "blocky":
        return m["blockiness"] > th.blocky
    if rule == "text":
        return m["text_frac"] > th.text
    if rule == "unsafe":
        return m.get("unsafe", 0.0) > th.unsafe
    raise UnknownNameError("rejection rule", rule, list(RULES))


def _first_rule(m: dict[str, float], th: Thresholds) -> str | None:
    for rule in RULES:
        if rule_fires(rule, m, th):
            return rule
    return None

