"""On-screen text (OCR) for the indexer: RapidOCR (PP-OCRv4) behind a cheap gate.

Full OCR costs about 0.5-3 s a frame on 2 busy cores, and most keyframes hold no
text, so each keyframe first goes through a gate:

1. :func:`gate_features` scores how likely the frame holds text (``likelihood``) and
   keeps a 64x36 gray thumbnail that identifies the screen (``signature``).
2. Frames under the gate's threshold are not OCRed: no text.
3. A frame whose thumbnail barely differs from the previous *OCRed* keyframe of the
   same video reuses that result: title cards, slides and terminals stay on screen
   for many keyframes. (Compared with the last OCRed frame, not the last frame, so
   that slow drift cannot chain reuses.)
4. Everything else goes to :func:`ocr_frame`, which reads the text boxes the
   detection gate already found (recognition only) instead of detecting again at
   RapidOCR's full size (short side up to 736 px: about 80% of a full read's cost).
   Measured on ../shared/media (2026-12-06): the OCR stage went from 64.9 to 29.8
   stage seconds of the library's ingest; what that costs in search is in
   docs/ingest.md.

The gates, all measured by ``benchmarks/bench_ocr_gate.py`` against OCR on every
keyframe of ``../shared/media``:

* ``"det-320"``, ``"det-480"``, ``"det-640"``: RapidOCR's own text *detection*
  network alone, on the frame scaled down to that many pixels on its long side
  (never up); the likelihood is its best candidate box's score. No recognition.
* ``"edges"``: classical stroke features (morphological gradient, Otsu threshold,
  horizontal closing, text-line-shaped components) on a 320 px gray image, about
  1 ms; no network, but it cannot tell text from other fine texture.

Frames are RGB ``(H, W, 3)`` uint8 arrays, as ``indexer.media.frames_at`` yields them.
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from engine import accel
from engine.errors import InputError, MissingDependencyError, UnknownNameError

if TYPE_CHECKING:
    from rapidocr_onnxruntime import RapidOCR

__all__ = [
    "OcrLine",
    "GateFeatures",
    "GateStats",
    "GATES",
    "DEFAULT_GATE",
    "DEFAULT_GATE_THRESHOLDS",
    "DEFAULT_DEDUPE_DISTANCE",
    "DEFAULT_MIN_SCORE",
    "ocr_frame",
    "text_likelihood",
    "gate_features",
    "should_ocr",
    "signature_distance",
    "ocr_frames",
    "set_num_threads",
]

# Recognition confidence under which a line is dropped. RapidOCR's own default is
# 0.5. On 502 keyframes of ../shared/media, every line read at 0.5-0.6 was noise
# (single letters, "AAAA", "回回" from textures); 0.6-0.8 still mixes noise with real
# but misread text ("Hootidayso" for "My Holidays"), which fuzzy search can use.
DEFAULT_MIN_SCORE = 0.6

# Chosen by benchmarks/bench_ocr_gate.py on 502 keyframes (one every 2 s) of the 71
# clips in ../shared/media, 92 of them holding text, against OCR on every keyframe:
# per gate, the highest threshold (0.05 grid) whose line and per-video recall both
# stay >= 0.95; the default gate is the cheapest there. Measured (2 busy cores):
#
#   gate     threshold  skipped  line recall  video recall  ms/keyframe (gate + OCR)
#   none         -        0.00      1.000         1.000         740
#   det-640    0.55       0.71      0.965         0.971         353  (gate 75 ms)
#   det-480    0.30       0.65      0.957         0.957         359  (gate 63 ms)
#   edges      0.01       0.31      0.965         1.000         527  (gate 2 ms)
#   det-320    0.40       0.80      0.91 (never reaches 0.95) 252  (gate 49 ms)
#
# What every gate misses is mostly faint stock-footage watermarks ("shutterstock").
DEFAULT_GATE_THRESHOLDS: dict[str, float] = {"det-320": 0.4, "det-480": 0.3, "det-640": 0.55, "edges": 0.01}
DEFAULT_GATE = "det-640"

# 99th-percentile grey-level difference of the 64x36 thumbnails (see
# signature_distance) under which a keyframe reuses the last OCR result: the largest
# value of 2/4/8/16/32 that lost no recall in the same benchmark (16 lost 1.3 points,
# 32 lost 8). On those mostly moving clips it saves little (1.2% of keyframes); on
# slides and title cards it saves most OCR calls.
DEFAULT_DEDUPE_DISTANCE = 8.0

_GATE_SIDE = 320  # long side of the gray image the edge features and signature use
_SIG_SHAPE = (36, 64)  # rows, cols of the gray thumbnail that identifies a screen


@dataclass(frozen=True)
class OcrLine:
    """One recognised line of text: ``box`` is its 4 corners (x, y) in frame pixels,
    clockwise from top-left; ``score`` the recogniser's confidence in [0, 1]."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]

    def bounds(self, width: int, height: int, *, top: float = 0.0) -> list[float]:
        """The box's ``[x0, y0, x1, y1]`` as fractions of a ``width`` x ``height`` frame,
        for a line read in a band of that frame starting ``top`` pixels down."""
        xs, ys = [x for x, _ in self.box], [y + top for _, y in self.box]
        return [min(xs) / width, min(ys) / height, max(xs) / width, max(ys) / height]


@dataclass(frozen=True)
class GateFeatures:
    """What the gate knows about a frame: text likelihood and a screen signature.

    ``signature`` is a 64x36 gray thumbnail (float32 grey levels); see
    :func:`signature_distance`. ``boxes``: the text boxes a detection gate found.
    """

    likelihood: float
    signature: np.ndarray = field(repr=False)
    # The detection gates' text boxes in frame pixels (4 corners each) with their
    # scores, for reading the frame without detecting again (``ocr_frame(boxes=...)``);
    # None for the edges gate.
    boxes: list[tuple[np.ndarray, float]] | None = field(default=None, repr=False)


@dataclass
class GateStats:
    """Counts filled in by :func:`ocr_frames`, for logs and benchmarks."""

    frames: int = 0
    skipped: int = 0  # below the gate threshold: not OCRed, no text
    reused: int = 0  # same screen as the last OCRed keyframe: its result reused
    ocr_calls: int = 0


# ---------------------------------------------------------------------------------
# RapidOCR engines (lazy, shared)


def _rapidocr_module() -> Any:
    try:
        import rapidocr_onnxruntime
    except ImportError as e:
        raise MissingDependencyError("rapidocr-onnxruntime==1.4.4", "on-screen text (OCR)") from e
    return rapidocr_onnxruntime


_load_lock = threading.Lock()  # concurrent first calls share one load

# ONNX Runtime intra-op threads of the OCR networks; -1 is ORT's default (one per
# core). An indexer worker that shares the cores with other workers sets its share
# (set_num_threads): two workers with two threads each on 2 cores spent 35% more CPU
# on the same OCR than with one each (ORT's idle threads spin), measured on 19
# keyframes of ../shared/media.
_threads = -1


def set_num_threads(threads: int | None) -> None:
    """ONNX Runtime intra-op threads for the OCR models of this process (None: ORT's
    default, one per core). Like ``torch.set_num_threads``, for the whole process;
    models already loaded with another count are loaded again on next use."""
    global _threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer or None, got {threads!r}")
    _threads = -1 if threads is None else threads


def _engine() -> RapidOCR:
    with _load_lock:
        return _load_engine(_threads, accel.current_device())


def _gate_detector() -> Any:
    with _load_lock:
        return _load_gate_detector(_threads, accel.current_device())


def _on_cuda(device: str) -> bool:
    """Whether the OCR networks go on the GPU under ``device`` (engine.accel)."""
    return accel.onnx_providers("OCR (RapidOCR)", device)[0] == accel.CUDA_EP


def _verify(parts: dict[str, Any], cuda: bool, device: str) -> None:
    """RapidOCR falls back to the CPU by itself, with a log line: hold the sessions made
    for the GPU (``cuda``) to ``device``."""
    if cuda:
        for name, session in parts.items():
            accel.verify_session(session, [accel.CUDA_EP, accel.CPU_EP], f"OCR {name} (RapidOCR)", device)


def _float32(pre: Any) -> Any:
    """``pre`` (a RapidOCR ``DetPreProcess``) normalising in float32: its mean and std
    are float64 arrays, which made every detection input a float64 image first (2.9 s
    of 135 s in a profiled ingest of ../shared/media). Same values to float32 rounding."""
    import numpy as np

    pre.mean = np.asarray(pre.mean, dtype=np.float32)
    pre.std = np.asarray(pre.std, dtype=np.float32)
    pre.scale = np.float32(pre.scale)
    return pre


@functools.lru_cache(maxsize=2)
def _load_engine(threads: int, device: str = "cpu") -> RapidOCR:
    mod = _rapidocr_module()
    cuda = _on_cuda(device)
    # text_score 0: keep every line and filter here, so that callers can choose.
    engine = mod.RapidOCR(text_score=0.0, print_verbose=False, intra_op_num_threads=threads,
                          det_use_cuda=cuda, cls_use_cuda=cuda, rec_use_cuda=cuda)
    _verify({"detection": engine.text_det.infer.session, "direction": engine.text_cls.infer.session,
             "recognition": engine.text_rec.session.session}, cuda, device)
    det = engine.text_det
    make = det.get_preprocess  # a new DetPreProcess per frame size
    det.get_preprocess = lambda max_wh: _float32(make(max_wh))
    return engine


@functools.lru_cache(maxsize=2)
def _load_gate_detector(threads: int, device: str = "cpu") -> Any:
    mod = _rapidocr_module()
    from rapidocr_onnxruntime.ch_ppocr_det import TextDetector

    # The same detection network as full OCR, loaded once more for the gate. Its
    # box_thresh is 0: the gate wants the best candidate's score, however low.
    cuda = _on_cuda(device)
    config = {
        "model_path": str(Path(mod.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"),
        "limit_side_len": 640,
        "limit_type": "max",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "thresh": 0.3,
        "box_thresh": 0.0,
        "max_candidates": 1000,
        "unclip_ratio": 1.6,
        "use_dilation": True,
        "score_mode": "fast",
        "use_cuda": cuda,
        "use_dml": False,
        "intra_op_num_threads": threads,
        "inter_op_num_threads": -1,
    }
    detector = TextDetector(config)
    _verify({"gate": detector.infer.session}, cuda, device)
    return detector


@functools.lru_cache(maxsize=8)
def _det_preprocess(side: int) -> Any:
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    # Built here, not through TextDetector.get_preprocess: that one replaces a "max"
    # limit under 960 px by 960, which would run the gate near full-OCR size.
    # "max" only scales down; full OCR scales the short side *up* to 736 px.
    return _float32(DetPreProcess(side, "max", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]))


# RapidOCR.__call__ stores the per-image preprocessor on self: one call at a time.
# The gate's detector is called with stateless pieces and needs no lock.
_lock = threading.Lock()


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise InputError(f"frame must be an RGB array of shape (H, W, 3), got {type(rgb).__name__} {shape}")
    if rgb.dtype != np.uint8:
        raise InputError(f"frame must be uint8, got {rgb.dtype}", hint="convert with frame.astype(np.uint8)")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise InputError(f"frame of shape {rgb.shape} is too small to read text from")
    return rgb


# A detected box under this score is not read (RapidOCR's own box_thresh).
DET_BOX_THRESH = 0.5


def ocr_frame(
    rgb: np.ndarray, *, min_score: float = DEFAULT_MIN_SCORE, boxes: list[tuple[np.ndarray, float]] | None = None
) -> list[OcrLine]:
    """All text lines in an RGB frame with confidence >= ``min_score``, top to bottom.

    ``boxes`` (a detection gate's ``GateFeatures.boxes``) are read instead of detecting
    the text again at RapidOCR's full size (short side scaled to 736 px, which costs
    about 80% of a full read). Returns ``[]`` when the frame holds no readable text.
    """
    rgb = _check_rgb(rgb)
    if not 0.0 <= min_score <= 1.0:
        raise InputError(f"min_score must be in [0, 1], got {min_score}")
    engine = _engine()
    # RapidOCR treats arrays as OpenCV BGR.
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if boxes is None:
        with _lock:
            result, _ = engine(bgr)
        found = [(box, text, score) for box, text, score in result or []]
    else:
        found = _read_boxes(engine, bgr, boxes)
    lines: list[OcrLine] = []
    for box, text, score in found:
        text = str(text).strip()
        if not text or float(score) < min_score:
            continue
        corners = tuple((float(x), float(y)) for x, y in box)
        lines.append(OcrLine(text=text, score=float(score), box=corners))
    return lines


def _read_boxes(engine: RapidOCR, bgr: np.ndarray, boxes: list[tuple[np.ndarray, float]]) -> list[tuple]:
    """RapidOCR's steps after detection (drop tiny boxes, order top to bottom, crop,
    turn upright, recognise) on boxes found elsewhere."""
    kept = [box for box, score in boxes if score >= DET_BOX_THRESH]
    if not kept:
        return []
    kept = engine.text_det.filter_tag_det_res(np.asarray(kept, dtype=np.float32), bgr.shape[:2])
    if len(kept) == 0:
        return []
    ordered = engine.sorted_boxes(np.asarray(kept, dtype=np.float32))
    crops = engine.get_crop_img_list(bgr, ordered)
    crops, _, _ = engine.text_cls(crops)
    read, _ = engine.text_rec(crops, False)
    return [(box, text, score) for box, (text, score, *_) in zip(ordered, read)]


# ---------------------------------------------------------------------------------
# Gates


def _gray_small(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, _GATE_SIDE / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _stroke_mask(gray: np.ndarray) -> np.ndarray:
    """Binary mask of strong local contrast (character strokes, edges), uint8 0/1."""
    import cv2

    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    otsu, _ = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Otsu on a flat frame splits sensor noise; 40 grey levels is far under the
    # contrast of any legible text.
    _, bw = cv2.threshold(grad, max(otsu, 40.0), 1, cv2.THRESH_BINARY)
    return bw


def _signature(gray: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(gray, (_SIG_SHAPE[1], _SIG_SHAPE[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def _edges_likelihood(gray: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the image covered by text-line-shaped stroke clusters."""
    import cv2

    # Characters of one line sit a few pixels apart: a wide, flat closing joins
    # them into one blob, while isolated edges (a table edge, a branch) stay thin.
    joined = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    h_img, w_img = gray.shape
    area = 0
    for i in range(1, n):
        x, y, w, h, count = stats[i]
        if not 5 <= h <= h_img * 0.25:  # too short to read, or taller than a caption
            continue
        if w < 1.5 * h or w > 0.98 * w_img:  # lines are wide; frame borders span it
            continue
        fill = count / float(w * h)
        if not 0.2 <= fill <= 0.95:  # strokes leave gaps; solid bars do not
            continue
        area += w * h
    return float(area) / float(h_img * w_img)


def _det_boxes(rgb: np.ndarray, side: int) -> list[tuple[np.ndarray, float]]:
    """Every candidate text box of the detection network run at ``side`` px, in frame
    pixels, with its score (box_thresh 0: however low)."""
    det = _gate_detector()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    inp = _det_preprocess(side)(bgr)
    if inp is None:
        return []
    pred = det.infer(inp)[0]
    boxes, scores = det.postprocess_op(pred, bgr.shape[:2])
    return [(np.asarray(b, dtype=np.float32), float(sc)) for b, sc in zip(boxes, scores)]


def _gate_edges(rgb: np.ndarray) -> GateFeatures:
    gray = _gray_small(rgb)
    return GateFeatures(_edges_likelihood(gray, _stroke_mask(gray)), _signature(gray))


def _det_gate(side: int) -> Callable[[np.ndarray], GateFeatures]:
    def gate(rgb: np.ndarray) -> GateFeatures:
        boxes = _det_boxes(rgb, side)
        return GateFeatures(max((sc for _, sc in boxes), default=0.0), _signature(_gray_small(rgb)), boxes)

    gate.__name__ = f"det_{side}"
    return gate


GATES: dict[str, Callable[[np.ndarray], GateFeatures]] = {
    "det-320": _det_gate(320),
    "det-480": _det_gate(480),
    "det-640": _det_gate(640),
    "edges": _gate_edges,
}


def gate_features(rgb: np.ndarray, *, gate: str = DEFAULT_GATE) -> GateFeatures:
    """Text likelihood and stroke signature of an RGB frame under ``gate``."""
    rgb = _check_rgb(rgb)
    try:
        fn = GATES[gate]
    except KeyError:
        raise UnknownNameError("OCR gate", gate, list(GATES)) from None
    return fn(rgb)


def text_likelihood(rgb: np.ndarray, *, gate: str = DEFAULT_GATE) -> float:
    """How likely the frame holds text; compare with ``DEFAULT_GATE_THRESHOLDS[gate]``."""
    return gate_features(rgb, gate=gate).likelihood


def should_ocr(
    features: GateFeatures | float, *, gate: str = DEFAULT_GATE, threshold: float | None = None
) -> bool:
    """Whether a frame with these gate features (or this likelihood) is worth OCR."""
    if gate not in DEFAULT_GATE_THRESHOLDS:
        raise UnknownNameError("OCR gate", gate, list(DEFAULT_GATE_THRESHOLDS))
    like = features.likelihood if isinstance(features, GateFeatures) else float(features)
    if not math.isfinite(like):
        raise InputError(f"gate likelihood must be finite, got {like}")
    limit = DEFAULT_GATE_THRESHOLDS[gate] if threshold is None else threshold
    return like >= limit


def signature_distance(a: GateFeatures, b: GateFeatures) -> float:
    """How much two frames differ: the 99th percentile of the absolute difference of
    their 64x36 gray thumbnails, in grey levels (0 = same screen).

    A high percentile, not the mean: a caption that changes while the picture stays
    (c027's subtitles, c003's running timecode) moves a few cells a lot and the mean
    hardly at all. Not the maximum either: one cell of compression noise would then
    forbid every reuse.
    """
    return float(np.percentile(np.abs(a.signature - b.signature), 99))


def ocr_frames(
    frames: Iterable[tuple[float, np.ndarray]],
    *,
    gate: str = DEFAULT_GATE,
    threshold: float | None = None,
    dedupe_distance: float | None = DEFAULT_DEDUPE_DISTANCE,
    min_score: float = DEFAULT_MIN_SCORE,
    reuse_boxes: bool = True,
    ocr: Callable[[np.ndarray], list[OcrLine]] | None = None,
    stats: GateStats | None = None,
) -> list[tuple[float, list[OcrLine]]]:
    """OCR the keyframes ``(t, rgb)`` of one video, in order, through the gate.

    ``threshold=0`` and ``dedupe_distance=None`` OCR every frame. A detection gate's
    boxes are read as they are (``reuse_boxes``) unless ``reuse_boxes=False``, which
    detects again at full size. ``ocr`` replaces :func:`ocr_frame` (tests count calls
    with it); ``stats`` receives the counts.
    """
    def read(rgb: np.ndarray, feats: GateFeatures) -> list[OcrLine]:
        if ocr is not None:
            return ocr(rgb)
        return ocr_frame(rgb, min_score=min_score, boxes=feats.boxes if reuse_boxes else None)

    counts = stats if stats is not None else GateStats()
    out: list[tuple[float, list[OcrLine]]] = []
    last: tuple[GateFeatures, list[OcrLine]] | None = None
    for t, rgb in frames:
        counts.frames += 1
        feats = gate_features(rgb, gate=gate)
        if not should_ocr(feats, gate=gate, threshold=threshold):
            counts.skipped += 1
            out.append((t, []))
            continue
        if (
            dedupe_distance is not None
            and last is not None
            and signature_distance(feats, last[0]) <= dedupe_distance
        ):
            counts.reused += 1
            out.append((t, list(last[1])))
            continue
        lines = read(rgb, feats)
        counts.ocr_calls += 1
        last = (feats, lines)
        out.append((t, lines))
    return out
