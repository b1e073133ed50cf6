"""Hair colour of a detected face: black, brown or red.

No model: the face detector already says where the head is, and hair is where the
head is not skin. :func:`hair_colour` reads a band over the top of the face box (and
thin strips beside the temples), drops the pixels that look like the face's own skin
(colour distance in CIELAB to the median of the face's centre) and those whose hue no
hair has (the blue and green of most backdrops), and names the rest by hue, saturation
and lightness against the face. A name is given only when hair-coloured pixels cover
enough of the band and one name holds most of them; its score is that share.

Light hair (blonde, grey, white) is found but not named: on the hand labels the light
shades could not be told apart (blonde hair in shade reads as brown, grey curls as
blonde: 0 right of 2 named on 71 clips), so a light head gives no name rather than a
wrong one. Red is the colour read best (8 of 8 right; docs/labels.md).

What it cannot do: tell dyed colours (blue, pink hair read as background), read hair
under a cap or hat (the band is then the hat: usually no name, sometimes "black"), or
read colour in black-and-white footage (grey or black; the picture stage says the
footage is black and white, and the indexer gives no hair names there). Precision
against hand labels: docs/labels.md (``python -m benchmarks.bench_labels``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["HAIR_COLOURS", "hair_colour", "MIN_FACE_PX"]

HAIR_COLOURS = ("black", "brown", "red")
_CLASSES = ("black", "brown", "light", "red")  # what _names tells apart (light: blonde or grey, not named)

MIN_FACE_PX = 48  # a face box narrower than this has too few hair pixels to name a colour
_MIN_HAIR_SHARE = 0.35  # of the band's pixels, hair-coloured (not skin, not backdrop)
_MIN_NAME_SHARE = 0.5  # of the hair-coloured pixels, under the winning name
_SKIN_DELTA_E = 11.0  # CIELAB distance under which a pixel is the face's skin


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    # float32 input in 0..1: L in 0..100, a and b in about -128..127
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)


def _crop(rgb: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    xa, xb = int(max(0, round(x0))), int(min(w, round(x1)))
    ya, yb = int(max(0, round(y0))), int(min(h, round(y1)))
    if xb <= xa or yb <= ya:
        return np.zeros((0, 3), np.uint8)
    return rgb[ya:yb, xa:xb].reshape(-1, 3)


def _names(lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Per pixel of ``lab`` (CIELAB rows): 0..3 the index in ``_CLASSES``, -1 not hair
    (the face's skin, brighter than it, or a hue no hair has). Read against ``skin``,
    the face's own median colour, so that a colour cast of the footage (a yellow
    white balance lifts b* of skin and hair alike) moves both."""
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    Ls, as_, bs = (float(v) for v in skin)
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a))  # 0 red, 90 yellow, 180 green, -90 blue
    not_skin = np.linalg.norm(lab - skin, axis=1) >= _SKIN_DELTA_E
    warm = (chroma < 10) | ((hue >= -25) & (hue <= 100))  # colourless, or red through yellow
    hair = not_skin & warm & (L <= Ls + 8)  # hair is not brighter than the face
    out = np.full(len(lab), -1, np.int8)
    black = hair & (L < 15)
    red = hair & ~black & (a >= as_ - 3) & (chroma >= 18)  # as red as the skin or redder
    # light: colourless (grey, white) or about as light as the face (blonde)
    light = hair & ~black & ~red & (L >= 45) & ((chroma < 8) | (L >= Ls - 14))
    brown = hair & ~black & ~red & ~light
    for i, m in enumerate((black, brown, light, red)):
        out[m] = i
    return out


def hair_colour(rgb: np.ndarray, box: tuple[float, float, float, float]) -> tuple[str, float] | None:
    """The hair colour of the face at ``box`` (x0, y0, x1, y1 in pixels of the RGB
    uint8 frame ``rgb``) and its score (the share of hair pixels of that colour,
    0.5..1), or None when the hair cannot be read (too small a face, a band of
    backdrop or skin, no clear majority) or is light (blonde, grey)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw < MIN_FACE_PX or bh < MIN_FACE_PX:
        return None
    skin = _crop(rgb, x0 + 0.3 * bw, y0 + 0.4 * bh, x1 - 0.3 * bw, y0 + 0.7 * bh)
    band = np.concatenate([
        _crop(rgb, x0 + 0.1 * bw, y0 - 0.25 * bh, x1 - 0.1 * bw, y0 + 0.08 * bh),  # over the forehead
        _crop(rgb, x0 - 0.12 * bw, y0 + 0.05 * bh, x0 + 0.04 * bw, y0 + 0.45 * bh),  # beside the temples
        _crop(rgb, x1 - 0.04 * bw, y0 + 0.05 * bh, x1 + 0.12 * bw, y0 + 0.45 * bh),
    ])
    if len(skin) < 16 or len(band) < 64:
        return None  # the face fills the frame: no band around it to read
    names = _names(_lab(band[None]), np.median(_lab(skin[None]), axis=0))
    hair = names[names >= 0]
    if len(hair) < _MIN_HAIR_SHARE * len(band):
        return None
    counts = np.bincount(hair, minlength=len(_CLASSES))
    best = _CLASSES[int(np.argmax(counts))]
    share = float(counts.max()) / len(hair)
    if share < _MIN_NAME_SHARE or best not in HAIR_COLOURS:
        return None  # no clear majority, or light hair (not named, see above)
    return best, round(share, 4)
