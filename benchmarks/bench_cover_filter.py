"""Measure the cover quality filter on real frames with synthetic degradations, and
pick its thresholds from the precision/recall curves.

Labelled set
    Two frames (at 30% and 70% of the duration) of each clip of ``../shared/media``
    (``MANIFEST.tsv``), decoded at most 960 px wide, are the clean frames (a frame
    that is nearly flat, luma std < 8, is left out: its label would be a guess). Each
    is degraded at known strengths; every degradation type has mild levels labelled
    *acceptable* (negatives) and strong levels labelled *reject* (positives):

    ========== ================================ ==================== ================
    rule       degradation                      acceptable           reject
    ========== ================================ ==================== ================
    blur       Gaussian, sigma px at 640 wide   0.5, 1               2.5, 4, 6
    blur       motion, length px at 640 wide    3, 5                 12, 20, 30
    black      under-exposure, stops (linear)   -0.5, -1             -2.5, -3.5, -5
    black      black frame (+ noise, a logo)    -                    1
    white      over-exposure, stops (linear)    +0.5, +1             +2, +3, +4
    white      white flash frame                -                    1
    washed_out contrast toward mean grey         x0.7, x0.5           x0.2, x0.12
    blocky     JPEG quality                     50, 30               10, 5, 3
    text       share of frame under text lines  0.02, 0.05           0.15, 0.25, 0.4
    transition dissolve weight of the other clip 0.05 (+ real motion) 0.2, 0.35, 0.5
    ========== ================================ ==================== ================

    Transitions use the two source frames as neighbours (an idealised dissolve); the
    negatives are the real frames 0.5 s before and after (real camera and subject
    motion). Letterbox bars are not a rejection: their detection is scored by the IoU
    of the detected content box with the true one.

Threshold choice, per rule
    Positives: that rule's reject levels. Negatives: the clean frames plus the
    acceptable levels of every degradation type. The threshold is the F1-best point
    of the curve (rejecting a good frame costs a worse cover, passing a bad one a bad
    cover: neither error is much dearer) among the points that reject at most 2% of
    the clean frames (``--max-clean-rejected``): without that cap the F1-best black
    threshold was a mean luma of 69, which rejected ordinary dim scenes (11 of 72
    clean frames overall). ``--min-precision P`` picks instead the
    highest recall at precision >= P (tried with 0.95: several rules then keep
    recall under 0.4, because mild levels of other degradations overlap). For blur, every sharpness measure is compared by average precision
    and the best one is used. Then the whole cascade runs with the chosen thresholds
    for overall precision/recall and a confusion table (which rule fired).

Run: ``python -m benchmarks.bench_cover_filter [--clips 36] [--write-thresholds]``
writes ``bench-results/cover_filter.json`` and ``cover_filter.png``; with
``--write-thresholds`` also ``indexer/covers/thresholds.json``. About 2-4 minutes on
2 cores.
"""
from __future__ import annotations

import io
import json
import math
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.core import SHARED_MEDIA, add_media, add_out, entry_parser, write_json
from indexer.covers import quality
from indexer.covers.quality import RULES, SHARPNESS_MEASURES, THRESHOLDS_PATH, Thresholds, measure_frame

__all__ = ["Sample", "build_samples", "sweep", "choose", "main"]

_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

# (rule, degradation, strength, positive?)
LEVELS: list[tuple[str, str, float, bool]] = (
    [("blur", "gaussian", s, s >= 2) for s in (0.5, 1.0, 2.5, 4.0, 6.0)]
    + [("blur", "motion", s, s >= 10) for s in (3, 5, 12, 20, 30)]
    + [("black", "under", s, s <= -2) for s in (-0.5, -1.0, -2.5, -3.5, -5.0)]
    + [("black", "black_frame", 1, True)]
    + [("white", "over", s, s >= 2) for s in (0.5, 1.0, 2.0, 3.0, 4.0)]
    + [("white", "white_frame", 1, True)]
    + [("washed_out", "haze", s, s <= 0.25) for s in (0.7, 0.5, 0.2, 0.12)]
    + [("blocky", "jpeg", s, s <= 10) for s in (50, 30, 10, 5, 3)]
    + [("text", "text", s, s >= 0.1) for s in (0.02, 0.05, 0.15, 0.25, 0.4)]
    + [("transition", "dissolve", s, s >= 0.15) for s in (0.2, 0.35, 0.5)]
)

# The measure each rule compares, and whether a frame is rejected when it is below.
RULE_MEASURE: dict[str, tuple[str, bool]] = {
    "black": ("mean_luma", True),
    "white": ("white_frac", False),
    "washed_out": ("luma_range", True),
    "blur": ("sharpness", True),
    "blocky": ("blockiness", False),
    "text": ("text_frac", False),
    "transition": ("transition", False),
}


@dataclass
class Sample:
    """One labelled frame: the rule its degradation targets (None for clean), the
    degradation, strength, label and measures."""

    clip: str
    rule: str | None
    kind: str
    strength: float
    positive: bool
    m: dict


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) / 255.0) ** 2.2


def _from_linear(lin: np.ndarray) -> np.ndarray:
    return (np.clip(lin, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)


def degrade(rgb: np.ndarray, kind: str, s: float, rng: np.random.Generator) -> np.ndarray:
    """``rgb`` degraded by ``kind`` at strength ``s`` (see the module docstring)."""
    h, w = rgb.shape[:2]
    px = w / 640.0
    if kind == "gaussian":
        return cv2.GaussianBlur(rgb, (0, 0), s * px)
    if kind == "motion":
        n = max(3, int(round(s * px)) | 1)
        k = np.zeros((n, n), np.float32)
        k[n // 2, :] = 1.0 / n
        rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        k = cv2.warpAffine(k, rot, (n, n))
        return cv2.filter2D(rgb, -1, k / max(k.sum(), 1e-6))
    if kind in ("under", "over"):
        return _from_linear(_to_linear(rgb) * 2.0 ** s)
    if kind == "black_frame":
        out = rng.normal(6, 2, rgb.shape).clip(0, 255).astype(np.uint8)
        cv2.putText(out, "TV", (w - 80, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (90, 90, 90), 2)
        return out
    if kind == "white_frame":
        return rng.normal(250, 3, rgb.shape).clip(0, 255).astype(np.uint8)
    if kind == "haze":
        mean = rgb.reshape(-1, 3).mean(axis=0)
        return (mean + (rgb.astype(np.float32) - mean) * s).clip(0, 255).astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=int(s))
        return np.asarray(Image.open(buf).convert("RGB"))
    if kind == "text":
        img = Image.fromarray(rgb.copy())
        d = ImageDraw.Draw(img)
        size = max(12, int(h * 0.07))
        font = ImageFont.truetype(_FONT, size)
        words = ["NEWS", "LIVE", "SALE", "TODAY", "MARKET", "WEATHER", "SPORT", "CITY", "2024", "FINAL"]
        covered, y, i = 0.0, int(h * 0.05), 0
        while covered < s and y + size * 1.3 < h:
            line = " ".join(words[(i + j) % len(words)] for j in range(4))
            x0 = int(w * 0.05)
            tw = min(d.textlength(line, font=font), w * 0.9)
            d.text((x0, y), line, font=font, fill=(255, 255, 240), stroke_width=max(1, size // 18),
                   stroke_fill=(0, 0, 0))
            covered += tw * size * 1.2 / (w * h)
            y += int(size * 1.5)
            i += 1
        return np.asarray(img)
    raise ValueError(f"unknown degradation {kind}")


def _clips(media: Path, n: int) -> list[Path]:
    manifest = media / "MANIFEST.tsv"
    rows = [ln.split("\t") for ln in manifest.read_text().splitlines()[1:] if ln.strip()]
    files = [media / r[1] for r in rows if (media / r[1]).is_file()]
    return files[:n]


def build_samples(media: Path, n_clips: int, seed: int = 0) -> tuple[list[Sample], list[dict]]:
    """Every labelled sample's measures, plus letterbox detection records."""
    from indexer.media import frames_at, probe

    rng = np.random.default_rng(seed)
    bases: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for path in _clips(media, n_clips):
        try:
            dur = probe(path).duration
            for frac in (0.3, 0.7):
                t = frac * dur
                (_, cur), = list(frames_at(path, [t], size=960))
                (_, prev), (_, nxt) = list(frames_at(path, [max(0.0, t - 0.5), t + 0.5], size=960))
                if float(cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY).std()) < 8.0:
                    continue
                bases.append((path.name, cur, prev, nxt))
        except Exception as e:  # a clip that cannot be decoded is reported, not fatal
            print(f"skip {path.name}: {e}", file=sys.stderr)
    samples: list[Sample] = []
    boxes: list[dict] = []

    def measure(rgb: np.ndarray, neighbours=None) -> dict:
        m = measure_frame(rgb, all_sharpness=True)
        if neighbours is not None:
            m["transition"] = quality.transition_measure(neighbours[0], rgb, neighbours[1])
        return m

    for bi, (name, cur, prev, nxt) in enumerate(bases):
        samples.append(Sample(name, None, "clean", 0.0, False, measure(cur, (prev, nxt))))
        other = bases[(bi + len(bases) // 2) % len(bases)][1]
        other = cv2.resize(other, (cur.shape[1], cur.shape[0]), interpolation=cv2.INTER_AREA)
        for rule, kind, s, pos in LEVELS:
            if kind == "dissolve":
                mix = (cur.astype(np.float32) * (1 - s) + other.astype(np.float32) * s).astype(np.uint8)
                samples.append(Sample(name, rule, kind, s, pos, measure(mix, (cur, other))))
            else:
                samples.append(Sample(name, rule, kind, s, pos, measure(degrade(cur, kind, s, rng))))
        # A barely visible dissolve next to real motion: a negative for the transition rule.
        mix = (cur.astype(np.float32) * 0.95 + other.astype(np.float32) * 0.05).astype(np.uint8)
        samples.append(Sample(name, "transition", "dissolve", 0.05, False, measure(mix, (cur, other))))
        for bar in (0.1, 0.125, 0.2):
            h, w = cur.shape[:2]
            bh = int(h * bar)
            lb = cv2.copyMakeBorder(cur, bh, bh, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            m = measure_frame(lb)
            det = (m["box_x0"], m["box_y0"], m["box_x1"], m["box_y1"])
            boxes.append({"clip": name, "bar": bar, "iou": _iou(det, (0, bh, w, bh + h))})
    return samples, boxes


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _rule_set(samples: list[Sample], rule: str) -> tuple[list[Sample], np.ndarray]:
    """Positives: the rule's reject levels; negatives: clean frames and every mild level."""
    sel = [s for s in samples if (s.rule == rule and s.positive) or not s.positive]
    return sel, np.array([s.positive for s in sel])


def sweep(values: np.ndarray, labels: np.ndarray, below: bool, clean: np.ndarray | None = None) -> list[dict]:
    """Precision and recall at every distinct threshold (reject when value < t, or > t),
    and the share of ``clean`` (undegraded) frames rejected."""
    v = np.where(np.isfinite(values), values, 0.0)
    cand = np.unique(v)
    mids = np.concatenate([[cand[0] - 1e-6], (cand[:-1] + cand[1:]) / 2, [cand[-1] + 1e-6]])
    out = []
    npos = int(labels.sum())
    for t in mids:
        rej = v < t if below else v > t
        tp = int((rej & labels).sum())
        fp = int((rej & ~labels).sum())
        prec = tp / (tp + fp) if tp + fp else 1.0
        rec = tp / npos if npos else 0.0
        clean_rate = float((rej & clean).sum() / max(1, clean.sum())) if clean is not None else 0.0
        out.append({"threshold": float(t), "precision": prec, "recall": rec, "tp": tp, "fp": fp,
                    "clean_rejected": clean_rate})
    return out


def average_precision(curve: list[dict]) -> float:
    pts = sorted((c["recall"], c["precision"]) for c in curve)
    ap, prev_r = 0.0, 0.0
    for r, _ in pts:
        if r > prev_r:
            ap += (r - prev_r) * max(p for rr, p in pts if rr >= r)
            prev_r = r
    return ap


def choose(curve: list[dict], min_precision: float | None, max_clean: float = 1.0) -> dict:
    """The F1-best point of the curve among those that reject at most ``max_clean`` of
    the clean frames, or with ``min_precision`` the highest recall at that precision
    (F1-best when no point reaches it)."""
    f1 = lambda c: 2 * c["precision"] * c["recall"] / max(1e-9, c["precision"] + c["recall"])  # noqa: E731
    curve = [c for c in curve if c["clean_rejected"] <= max_clean] or curve
    if min_precision is not None:
        ok = [c for c in curve if c["precision"] >= min_precision and c["recall"] > 0]
        if ok:
            best = max(ok, key=lambda c: (c["recall"], c["precision"]))
            return {**best, "f1": f1(best), "how": f"max recall at precision >= {min_precision}"}
    best = max(curve, key=f1)
    return {**best, "f1": f1(best), "how": f"max F1 with <= {100 * max_clean:g}% of clean frames rejected"}


def _round_sig(x: float, sig: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(round(x, sig - 1 - int(math.floor(math.log10(abs(x))))))


def analyse(samples: list[Sample], boxes: list[dict], min_precision: float | None,
            max_clean: float = 0.02) -> dict:
    report: dict = {"n_samples": len(samples), "n_clean": sum(s.kind == "clean" for s in samples),
                    "min_precision": min_precision, "max_clean_rejected": max_clean, "rules": {}}
    chosen: dict = {}
    # Which sharpness measure separates blur best?
    sel, labels = _rule_set(samples, "blur")
    aps = {k: average_precision(sweep(np.array([s.m[f"sharpness_{k}"] for s in sel]), labels, True))
           for k in SHARPNESS_MEASURES}
    best_measure = max(aps, key=aps.get)
    report["sharpness_measures_ap"] = aps
    report["sharpness_measure"] = best_measure
    curves = {}
    for rule, (key, below) in RULE_MEASURE.items():
        sel, labels = _rule_set(samples, rule)
        if rule == "transition":  # needs neighbours: every sample here has them
            pass
        mkey = f"sharpness_{best_measure}" if rule == "blur" else key
        vals = np.array([s.m.get(mkey, 0.0) for s in sel])
        curve = sweep(vals, labels, below, np.array([s.kind == "clean" for s in sel]))
        pick = choose(curve, min_precision, max_clean)
        thr = _round_sig(pick["threshold"])
        chosen[rule] = thr
        curves[rule] = curve
        report["rules"][rule] = {"measure": mkey, "reject_when": "below" if below else "above",
                                 "positives": int(labels.sum()), "negatives": int((~labels).sum()),
                                 "threshold": thr, "precision": pick["precision"], "recall": pick["recall"],
                                 "clean_rejected": pick["clean_rejected"],
                                 "f1": pick["f1"], "how": pick["how"],
                                 "average_precision": average_precision(curve)}
    th = Thresholds(sharpness_measure=best_measure, **{k: float(v) for k, v in chosen.items()},
                    unsafe=Thresholds().unsafe, letterbox_min_content=Thresholds().letterbox_min_content)
    # The whole cascade with the chosen thresholds.
    confusion: dict[str, dict[str, int]] = {}
    tp = fp = fn = tn = 0
    for s in samples:
        m = dict(s.m)
        m["sharpness"] = m[f"sharpness_{best_measure}"]
        fired = next((r for r in RULES if r != "unsafe" and quality.rule_fires(r, m, th)), None)
        row = confusion.setdefault(f"{s.kind}{'+' if s.positive else ''}", {})
        row[fired or "pass"] = row.get(fired or "pass", 0) + 1
        if s.positive:
            tp, fn = tp + (fired is not None), fn + (fired is None)
        else:
            fp, tn = fp + (fired is not None), tn + (fired is None)
    report["overall"] = {"precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
                         "tp": tp, "fp": fp, "fn": fn, "tn": tn,
                         "clean_rejected": confusion.get("clean", {}).get("pass", 0)}
    clean = confusion.get("clean", {})
    report["overall"]["clean_rejected"] = sum(v for k, v in clean.items() if k != "pass")
    report["confusion"] = confusion
    report["per_level_recall"] = _per_level(samples, th, best_measure)
    report["letterbox_iou"] = {str(b): float(np.mean([x["iou"] for x in boxes if x["bar"] == b]))
                               for b in sorted({x["bar"] for x in boxes})}
    report["thresholds"] = {"sharpness_measure": best_measure, **chosen}
    report["_curves"] = curves
    return report


def _per_level(samples: list[Sample], th: Thresholds, measure: str) -> dict:
    out: dict[str, float] = {}
    groups: dict[str, list[bool]] = {}
    for s in samples:
        if s.kind == "clean":
            continue
        m = dict(s.m)
        m["sharpness"] = m[f"sharpness_{measure}"]
        fired = quality.rule_fires(s.rule, m, th) if s.rule else False
        groups.setdefault(f"{s.kind} {s.strength:g}", []).append(fired)
    for k, v in groups.items():
        out[k] = float(np.mean(v))
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = list(report["_curves"])
    fig, axes = plt.subplots(2, (len(rules) + 1) // 2, figsize=(4 * ((len(rules) + 1) // 2), 7.5))
    for ax, rule in zip(axes.ravel(), rules):
        c = report["_curves"][rule]
        ax.plot([x["recall"] for x in c], [x["precision"] for x in c], "-", lw=1.5)
        r = report["rules"][rule]
        ax.plot([r["recall"]], [r["precision"]], "o", color="red")
        ax.set_title(f"{rule} ({r['measure']})\nthreshold {r['threshold']:g}: P {r['precision']:.2f} "
                     f"R {r['recall']:.2f}", fontsize=9)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(rules):]:
        ax.axis("off")
    o = report["overall"]
    fig.suptitle(f"Cover filter on {report['n_clean']} real frames x degradations: overall rejection "
                 f"precision {o['precision']:.3f}, recall {o['recall']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = entry_parser("bench_cover_filter", __doc__.split("\n\n")[0])
    add_media(ap, SHARED_MEDIA)
    ap.add_argument("--clips", type=int, default=36)
    ap.add_argument("--min-precision", type=float, default=None,
                    help="pick the highest recall at this precision instead of the F1-best point")
    ap.add_argument("--max-clean-rejected", type=float, default=0.02,
                    help="each rule may reject at most this share of the clean frames (default 0.02)")
    ap.add_argument("--reuse-samples", action="store_true",
                    help="reuse the measured samples of the last run (only the analysis reruns)")
    add_out(ap, Path("bench-results") / "cover_filter.json", "the JSON result (the PNG and the samples cache beside it)")
    ap.add_argument("--write-thresholds", action="store_true", help=f"write {THRESHOLDS_PATH}")
    args = ap.parse_args(argv)
    if not (args.media / "MANIFEST.tsv").is_file():
        print(f"no MANIFEST.tsv in {args.media}: pass --media DIR with the shared clips", file=sys.stderr)
        return 2
    t0 = time.time()
    cache = args.out.with_name(args.out.stem + "_samples.pkl")
    if args.reuse_samples and cache.is_file():
        with cache.open("rb") as f:
            samples, boxes = pickle.load(f)
    else:
        samples, boxes = build_samples(args.media, args.clips)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("wb") as f:
            pickle.dump((samples, boxes), f)
    report = analyse(samples, boxes, args.min_precision, args.max_clean_rejected)
    report["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(report, args.out.with_suffix(".png"))
    curves = report.pop("_curves")
    report["curves"] = {r: [{k: round(v, 4) if isinstance(v, float) else v for k, v in c.items()} for c in cs[:: max(
        1, len(cs) // 60)]] for r, cs in curves.items()}
    write_json(args.out, report)
    for rule, r in report["rules"].items():
        print(f"{rule:11s} {r['measure']:22s} threshold {r['threshold']:<10g} precision {r['precision']:.3f} "
              f"recall {r['recall']:.3f}  AP {r['average_precision']:.3f}  ({r['positives']}+/{r['negatives']}-)")
    o = report["overall"]
    print(f"overall: precision {o['precision']:.3f} recall {o['recall']:.3f}; clean frames rejected "
          f"{o['clean_rejected']}/{report['n_clean']}; sharpness AP {report['sharpness_measures_ap']}")
    print(f"letterbox IoU {report['letterbox_iou']}; wrote {args.out} in {report['seconds']} s")
    if args.write_thresholds:
        data = {"_comment": json.loads(THRESHOLDS_PATH.read_text()).get("_comment", ""),
                **report["thresholds"], "unsafe": Thresholds().unsafe,
                "letterbox_min_content": Thresholds().letterbox_min_content}
        THRESHOLDS_PATH.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {THRESHOLDS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
