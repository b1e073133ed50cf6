"""Reused-footage detection: precision and recall of matched video pairs and of the
matched time ranges.

Library:

- **iscc-samples** (PyPI, CC-BY-4.0): one real 60 s clip in ~20 containers and
  codecs (``iscc_samples/files/video/demo.*``); every pair of them is a positive
  covering the whole clip.
- **copies of real clips** from ``../shared/media`` (``--sources`` clips, chosen
  evenly over the sorted file list), each made with FFmpeg into: a re-encode
  (MPEG-4 in AVI at half size), a centred crop to 80% and to 70% (rescaled back),
  a letterboxed rescale (16:9 into 4:3 with black bars), speed changes (1.25x
  faster, 0.8x slower), a cut-out (the middle 50%), and a splice (2 s of an
  unrelated clip, then the cut-out): the known mapping of each copy's time to its
  source time gives the true ranges of every pair of one family.
- **negatives**: every other shared/media clip, unmodified (different sources), except the
  reuse that shared/media itself holds (``KNOWN_REUSE``, checked by eye).

Every pair of videos is matched (``indexer.reuse.match_fingerprints``, perceptual
hashes only: this is the part that decides which pairs match; the catalog's keyframe
embeddings only veto, and they need a built index). A pair is predicted when it has
a match; a predicted pair of one family is a true positive. Time ranges: for each
true-positive pair, the temporal IoU of the best match's range with the true range,
in each of the two videos (mean of both); range precision/recall count a pair as
right when that IoU >= 0.5.

Run: ``python -m benchmarks.bench_reuse [--sources 12] [--out bench-results/reuse.json]``
(a few minutes on 2 cores: encoding the copies dominates; ``--work DIR`` keeps them).
"""
from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.core import SHARED_MEDIA, add_media, add_out, entry_parser, write_json
from engine.errors import VidseekError
from indexer.reuse import ReuseOptions, fingerprint_video, match_fingerprints

__all__ = ["Clip", "make_library", "evaluate", "main"]

# Reuse that shared/media itself holds, found by this benchmark's first run and checked
# by eye: c006/c062 are the same colour-bar test card (c062 with "My Holidays" text
# over it), c056/c065 the same arm-wrestling footage (c056 with detection boxes drawn
# on). Matches between their families are reported apart ("verified_reuse"), not as
# false positives.
KNOWN_REUSE = {frozenset(("c006", "c062")), frozenset(("c056", "c065"))}


@dataclass
class Clip:
    """One library video: its family (source clip) and the linear map from its own
    time to the family's source time over [own_start, own_end): src = own * rate + shift."""

    path: Path
    family: str | None
    own_range: tuple[float, float] = (0.0, 0.0)
    rate: float = 1.0
    shift: float = 0.0
    kind: str = "original"

    def src_range(self) -> tuple[float, float]:
        return (self.own_range[0] * self.rate + self.shift, self.own_range[1] * self.rate + self.shift)

    def to_own(self, t: float) -> float:
        return (t - self.shift) / self.rate


def _ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _duration(path: Path) -> float:
    """The container's duration; for a raw stream that has none (demo.m1v reports
    0.12 s) the time of its last decodable frame at 2 fps."""
    from indexer.media import probe, sample_frames

    d = float(probe(str(path)).duration or 0.0)
    if d < 1.0:
        d = max((t for t, _ in sample_frames(str(path), fps=2.0, max_side=32, gray=True)), default=0.0) + 0.5
    return d


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make_library(work: Path, media: Path, n_sources: int) -> list[Clip]:
    """The benchmark's videos (copies are made once into ``work``)."""
    lib: list[Clip] = []
    try:
        import iscc_samples
    except ImportError as e:
        raise VidseekError("bench_reuse needs iscc-samples", hint="pip install iscc-samples==0.6.0") from e
    demo_dir = Path(iscc_samples.__file__).parent / "files" / "video"
    for p in sorted(demo_dir.glob("demo.*")):
        try:
            d = _duration(p)
        except (VidseekError, IndexError):
            # IndexError: indexer.media.probe on demo.swf/demo.rm (reported upstream); skipped.
            continue
        lib.append(Clip(p, "iscc-demo", (0.0, d), kind=f"container:{p.suffix[1:]}"))
    files = sorted(p for p in media.iterdir() if p.suffix.lower() in {".mp4", ".avi", ".mpg", ".webm", ".ogg"})
    step = max(1, len(files) // max(1, n_sources))
    sources = files[::step][:n_sources]
    others = [p for p in files if p not in sources]
    # Each family's splice opens with 2 s of its own filler clip (a shared filler would
    # make every splice a true reuse of every other); fillers are not negatives.
    fillers = dict(zip(sources, others[: len(sources)]))
    for src in sources:
        filler = fillers[src]
        fam = src.stem
        d = _duration(src)
        lib.append(Clip(src, fam, (0.0, d)))
        out = work / fam
        out.mkdir(parents=True, exist_ok=True)
        v = lambda name: out / name  # noqa: E731
        made: list[Clip] = []
        if not v("reencode.avi").exists():
            _ff("-i", str(src), "-vf", "scale=trunc(iw/4)*2:-2", "-c:v", "mpeg4", "-q:v", "8", "-an",
                str(v("reencode.avi")))
            _ff("-i", str(src), "-vf", "crop=iw*0.8:ih*0.8,scale=trunc(iw/2)*2:-2", "-c:v", "libx264", "-crf", "28",
                "-an", str(v("crop80.mp4")))
            _ff("-i", str(src), "-vf", "crop=iw*0.7:ih*0.7,scale=trunc(iw/2)*2:-2", "-c:v", "libx264", "-crf", "28",
                "-an", str(v("crop70.mkv")))
            _ff("-i", str(src), "-vf", "scale=640:360,pad=640:480:0:60", "-c:v", "libx264", "-an",
                str(v("letterbox.mp4")))
            _ff("-i", str(src), "-vf", "setpts=PTS/1.25", "-c:v", "libx264", "-an", str(v("fast125.mp4")))
            _ff("-i", str(src), "-vf", "setpts=PTS/0.8", "-c:v", "libx264", "-an", str(v("slow080.mp4")))
            _ff("-ss", f"{d * 0.25:.3f}", "-t", f"{d * 0.5:.3f}", "-i", str(src), "-c:v", "libx264", "-an",
                str(v("cutout.mp4")))
        if not v("splice.mp4").exists():
            _ff("-t", "2", "-i", str(filler), "-ss", f"{d * 0.25:.3f}", "-t", f"{d * 0.5:.3f}", "-i", str(src),
                "-filter_complex", "[0:v]scale=480:270,setsar=1,fps=25[a];[1:v]scale=480:270,setsar=1,fps=25[b];"
                "[a][b]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264", "-an", str(v("splice.mp4")))
        made += [Clip(v("reencode.avi"), fam, (0.0, d), kind="reencode"),
                 Clip(v("crop80.mp4"), fam, (0.0, d), kind="crop80"),
                 Clip(v("crop70.mkv"), fam, (0.0, d), kind="crop70"),
                 Clip(v("letterbox.mp4"), fam, (0.0, d), kind="letterbox"),
                 Clip(v("fast125.mp4"), fam, (0.0, d / 1.25), rate=1.25, kind="fast125"),
                 Clip(v("slow080.mp4"), fam, (0.0, d / 0.8), rate=0.8, kind="slow080"),
                 Clip(v("cutout.mp4"), fam, (0.0, d * 0.5), shift=d * 0.25, kind="cutout"),
                 Clip(v("splice.mp4"), fam, (2.0, 2.0 + d * 0.5), shift=d * 0.25 - 2.0, kind="splice")]
        lib += made
    # A "negative" byte-identical to a family member is that family (shared/media holds
    # the iscc-samples demo clip itself: c048.mp4 has demo.mp4's md5).
    by_md5 = {_md5(c.path): c for c in lib if c.kind.startswith(("container", "original"))}
    for p in others[len(sources):]:
        twin = by_md5.get(_md5(p))
        if twin is not None:
            lib.append(Clip(p, twin.family, twin.own_range, kind=twin.kind.split(":")[0] + "-twin"))
        else:
            lib.append(Clip(p, None, (0.0, 0.0), kind="negative"))
    return lib


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _truth(x: Clip, y: Clip) -> tuple[tuple[float, float], tuple[float, float]] | None:
    if x.family is None or x.family != y.family:
        return None
    sx, sy = x.src_range(), y.src_range()
    lo, hi = max(sx[0], sy[0]), min(sx[1], sy[1])
    if hi - lo < 1.0:
        return None
    return (x.to_own(lo), x.to_own(hi)), (y.to_own(lo), y.to_own(hi))


def _stem(c: Clip) -> str:
    return c.family if c.family else c.path.stem


def evaluate(lib: list[Clip], prints: dict[int, tuple[np.ndarray, np.ndarray]], opts: ReuseOptions) -> dict:
    tp = fp = fn = verified = 0
    ious: list[float] = []
    range_ok = 0
    by_kind: dict[str, list[int]] = {}
    fps_list = []
    misses = []
    t0 = time.perf_counter()
    for i, j in itertools.combinations(range(len(lib)), 2):
        if i not in prints or j not in prints:
            continue
        x, y = lib[i], lib[j]
        truth = _truth(x, y)
        ms = match_fingerprints(*prints[i], *prints[j], opts)
        kind = "+".join(sorted({x.kind.split(":")[0], y.kind.split(":")[0]}))
        k = by_kind.setdefault(kind, [0, 0, 0])
        if ms and truth:
            tp += 1
            k[0] += 1
            m = ms[0]
            iou = 0.5 * (_iou(m.a_range, truth[0]) + _iou(m.b_range, truth[1]))
            ious.append(iou)
            range_ok += iou >= 0.5
        elif ms and frozenset((_stem(x), _stem(y))) in KNOWN_REUSE:
            verified += 1
        elif ms:
            fp += 1
            k[1] += 1
            fps_list.append({"a": str(x.path), "b": str(y.path), "match": ms[0].__dict__})
        elif truth:
            fn += 1
            k[2] += 1
            misses.append({"a": f"{x.family}/{x.kind}", "b": f"{y.family}/{y.kind}"})
    secs = time.perf_counter() - t0
    pairs = tp + fn

    def pr(t: int, f: int, n: int) -> dict:
        return {"precision": round(t / (t + f), 4) if t + f else None, "recall": round(t / (t + n), 4) if t + n else None,
                "tp": t, "fp": f, "fn": n}

    return {
        "pairs": pr(tp, fp, fn),
        "ranges": {**pr(range_ok, fp + (tp - range_ok), pairs - range_ok),
                   "mean_tiou": round(float(np.mean(ious)), 4) if ious else None,
                   "median_tiou": round(float(np.median(ious)), 4) if ious else None},
        "by_kind": {k: pr(*v) for k, v in sorted(by_kind.items()) if sum(v)},
        "verified_reuse": verified,
        "match_seconds": round(secs, 2),
        "false_positives": fps_list[:60],
        "misses": misses[:40],
    }


def main(argv: list[str] | None = None) -> int:
    ap = entry_parser("bench_reuse", __doc__)
    add_media(ap, SHARED_MEDIA)
    ap.add_argument("--sources", type=int, default=12, help="shared/media clips to make copies of")
    ap.add_argument("--work", type=Path, help="folder for the copies (default: a temporary one)")
    add_out(ap, "bench-results/reuse.json")
    args = ap.parse_args(argv)
    if not args.media.is_dir():
        print(f"bench_reuse: {args.media} is absent (pass --media DIR of real clips)", file=sys.stderr)
        return 2
    tmp = None
    work = args.work
    if work is None:
        tmp = tempfile.mkdtemp(prefix="bench_reuse_")
        work = Path(tmp)
    try:
        t0 = time.perf_counter()
        lib = make_library(work, args.media, args.sources)
        t_make = time.perf_counter() - t0
        opts = ReuseOptions()
        prints: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        skipped = []
        t0 = time.perf_counter()
        media_s = 0.0
        for i, c in enumerate(lib):
            try:
                prints[i] = fingerprint_video(str(c.path), opts)
                media_s += c.own_range[1] if c.family else 0.0
            except VidseekError as e:
                skipped.append({"path": str(c.path), "reason": str(e)})
        t_fp = time.perf_counter() - t0
        res = evaluate(lib, prints, opts)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "videos": len(prints), "families": len({c.family for c in lib if c.family}),
        "negatives": sum(1 for c in lib if c.family is None), "skipped": skipped,
        "options": opts.__dict__, "make_seconds": round(t_make, 1), "fingerprint_seconds": round(t_fp, 1),
        **res,
    }
    write_json(args.out, out)
    p, r = res["pairs"], res["ranges"]
    print(f"{out['videos']} videos ({out['families']} families, {out['negatives']} negatives, "
          f"{len(skipped)} undecodable); fingerprints {t_fp:.1f} s, matching all pairs {res['match_seconds']} s")
    print(f"pairs:  precision {p['precision']}  recall {p['recall']}  (tp {p['tp']}, fp {p['fp']}, fn {p['fn']})")
    print(f"matches of the verified reuse already in shared/media (not counted): {res['verified_reuse']}")
    print(f"ranges: precision {r['precision']}  recall {r['recall']}  mean tIoU {r['mean_tiou']}"
          f"  median {r['median_tiou']}")
    for k, v in res["by_kind"].items():
        print(f"  {k:<28} P {v['precision']}  R {v['recall']}  (tp {v['tp']}, fp {v['fp']}, fn {v['fn']})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
