"""How a frame is made, from measured image statistics (no model here knows it): black
and white, a colour-bar test pattern, a flat-colour drawing (cartoon), a screen
capture (text on a flat background), and a dark frame. Each function takes an RGB
(H, W, 3) uint8 frame and returns a score in 0..1; ``picture_labels`` applies the
thresholds and names the dominant colours (``indexer.colours``).

The thresholds were set by looking at frames of ``../shared/media`` and are checked
against the hand labels in ``benchmarks/data/frame-labels.jsonl`` (precision and
recall: ``python -m benchmarks --suite labels``).
"""
from __future__ import annotations

import numpy as np

from indexer.colours import colour_names

__all__ = ["greyscale_score", "test_pattern_score", "cartoon_score", "screen_score", "darkness",
           "picture_labels", "greyscale_or_none", "colour_seen", "THRESHOLDS", "SHOT_COLOUR_SHARE"]

# A keyframe is not called black and white when at least this share of the lit samples
# of its shot are clearly in colour (greyscale_score 0): black-and-white footage has no
# colour anywhere, while a colour film can pass through a colourless moment (a grey
# blizzard before the figure in it shows its coat, fog, a grey wall).
SHOT_COLOUR_SHARE = 0.2
THRESHOLDS = {"black and white": 0.75, "test pattern": 0.5, "cartoon": 0.5, "screen": 0.5, "dark": 0.5}
_SMALL = (96, 54)


def _small(rgb: np.ndarray, size=_SMALL) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _hsv(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.float32)


def greyscale_score(rgb: np.ndarray) -> float:
    """1.0 for a frame with no colour (nearly every lit pixel's saturation low, the 99th
    percentile: a small coloured figure in a grey blizzard is not a black-and-white
    picture) and some contrast; 0 for a colour frame. A flat grey or black card scores
    0 (nothing to call a black-and-white picture)."""
    score = greyscale_or_none(rgb)
    return 0.0 if score is None else score


def greyscale_or_none(rgb: np.ndarray) -> float | None:
    """``greyscale_score``, but None for a frame too dark or too flat to tell colour
    from grey (what ``colour_seen`` wants)."""
    hsv = _hsv(_small(rgb))
    s, v = hsv[:, 1], hsv[:, 2]
    lit = v > 40  # saturation of near-black pixels is noise
    if lit.mean() < 0.2 or float(v.std()) < 18:
        return None
    p99 = float(np.percentile(s[v > 15], 99))  # dim coloured pixels count; black ones are noise
    return float(np.clip((45.0 - p99) / 20.0, 0.0, 1.0))


def colour_seen(scores: list[float | None]) -> bool:
    """Whether a shot is in colour, from the ``greyscale_score`` of its sampled frames
    (None: a frame too dark or flat to tell): at least ``SHOT_COLOUR_SHARE`` of the
    frames that can tell score 0."""
    known = [s for s in scores if s is not None]
    return bool(known) and sum(s == 0.0 for s in known) >= SHOT_COLOUR_SHARE * len(known)


def test_pattern_score(rgb: np.ndarray) -> float:
    """Colour bars: in the upper part of the frame most columns hold one colour from top
    to bottom (a caption box or a clock over the bars is tolerated), and the columns
    run through at least four saturated hues in bands several columns wide."""
    import cv2

    small = _small(rgb, (96, 64)).astype(np.float32)
    top = small[4:40]  # SMPTE and EBU bars fill the top two thirds
    med = np.median(top, axis=0)  # (96, 3): each column's colour
    agree = (np.abs(top - med[None]).sum(axis=2) < 45).mean(axis=0)  # share of rows matching it
    bars = agree >= 0.55
    if bars.mean() < 0.6:
        return 0.0
    hsv = cv2.cvtColor(med[None].astype(np.uint8), cv2.COLOR_RGB2HSV)[0].astype(np.float32)
    sat = (hsv[:, 1] > 90) & (hsv[:, 2] > 60) & bars
    hue_bins = np.floor(hsv[:, 0] / 15).astype(int)  # 12 bins of 30 degrees
    counts = np.bincount(hue_bins[sat], minlength=12)
    hues = int((counts >= 4).sum())  # a bar is at least 4 of 96 columns wide
    if hues < 4:
        return 0.0
    return float(min(1.0, bars.mean() / 0.8) * min(1.0, hues / 5))


def cartoon_score(rgb: np.ndarray) -> float:
    """A drawing: a few flat colours cover nearly all of a lit frame, some of them
    saturated, with drawn edges (outlines, lettering). Measured on hand-labelled
    keyframes this is narrow: it finds outlined 2D drawings on flat backgrounds and
    misses textured 3D animation, which image statistics cannot tell from film (a
    blue-screen talking head is as flat and as saturated); the flat-colour tests keep
    its precision. Colour bars are excluded (they are their own style)."""
    import cv2

    if test_pattern_score(rgb) >= THRESHOLDS["test pattern"]:
        return 0.0
    small = _small(rgb, (160, 90))
    hsv = _hsv(small)
    lit = hsv[:, 2] > 70
    if lit.mean() < 0.8:
        return 0.0
    q = (small.reshape(-1, 3)[lit] // 32).astype(np.int32)
    _, counts = np.unique(q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2], return_counts=True)
    top8 = float(np.sort(counts)[::-1][:8].sum()) / max(1, len(q))
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F)).reshape(-1)
    flat = float((lap[lit] < 4).mean())
    edges = float((lap > 30).mean())
    sat = float((hsv[lit, 1] > 80).mean())
    if sat < 0.12 or edges < 0.15:
        return 0.0
    return float(np.clip((top8 - 0.8) / 0.1, 0, 1) * np.clip((flat - 0.45) / 0.15, 0, 1))


def screen_score(rgb: np.ndarray, text_lines: int = 0) -> float:
    """A screen capture or slide: text (``text_lines`` OCR lines) on a large flat,
    mostly colourless background."""
    if text_lines < 3:
        return 0.0
    import cv2

    small = _small(rgb, (160, 90))
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    flat = float((lap < 3).mean())
    hsv = _hsv(small)
    colourless = float((hsv[:, 1] < 50).mean())
    return float(np.clip((flat - 0.5) / 0.3, 0, 1) * np.clip((colourless - 0.4) / 0.4, 0, 1)
                 * min(1.0, text_lines / 5))


def darkness(rgb: np.ndarray) -> float:
    """1.0 for a frame whose pixels are nearly all dark (night, a dim room), 0 for a lit one."""
    v = _hsv(_small(rgb))[:, 2]
    return float(np.clip((70.0 - float(np.percentile(v, 75))) / 40.0, 0.0, 1.0))


def picture_labels(rgb: np.ndarray, text_lines: int = 0, *, shot_in_colour: bool = False
                   ) -> list[tuple[str, str, float]]:
    """``[(kind, label, score)]`` for one frame: style and scene labels over their
    threshold, and its dominant colour names (score: share of the frame / 0.3, capped).
    ``shot_in_colour`` (``colour_seen`` over the frame's shot) rules black and white out."""
    out: list[tuple[str, str, float]] = []
    scores = {
        ("style", "black and white"): 0.0 if shot_in_colour else greyscale_score(rgb),
        ("style", "test pattern"): test_pattern_score(rgb),
        ("style", "cartoon"): cartoon_score(rgb),
        ("style", "screen"): screen_score(rgb, text_lines),
        ("scene", "dark"): darkness(rgb),
    }
    for (kind, label), s in scores.items():
        if s >= THRESHOLDS[label]:
            out.append((kind, label, round(s, 4)))
    if scores[("style", "black and white")] < THRESHOLDS["black and white"]:
        for name, share in colour_names(rgb):
            out.append(("colour", name, round(min(1.0, share / 0.3), 4)))
    return out
