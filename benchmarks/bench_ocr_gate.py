"""Measure the OCR gate on real keyframes and pick its default threshold.

For each clip in ``../shared/media`` (or ``--clips``), keyframes are taken every
``--every`` seconds (PyAV). Each keyframe is scored by every gate in
``indexer.ocr.GATES`` and OCRed in full; full OCR on every frame is the reference.
Then, for each gate and a sweep of thresholds, the gated pipeline is replayed on the
recorded results (OCR is deterministic, so a replay equals a rerun) and reports:

* ``skip``: fraction of keyframes the gate skips (no OCR, no text);
* ``reuse``: fraction whose result is reused from the previous OCRed keyframe;
* ``recall``: fraction of the reference text lines found at the same keyframe;
* ``vid_recall``: fraction of each video's distinct reference lines found anywhere
  in that video (what text search needs);
* ``ms/frame``: gate time plus OCR time of the frames still OCRed, per keyframe.

A reference "text line" has >= 3 letters or digits and recognition score >= 0.8:
lower-scoring or shorter reads on frames without text are texture noise (leaves,
brick, fabric) that no gate should be charged for missing. Lines match when their
normalised texts have a ``difflib`` ratio >= 0.8 (a reused result may differ from
the frame's own read by a character).

Choice: per gate, the highest threshold on a coarse grid whose line and video
recall both stay >= ``--target-recall`` (0.95), dedupe off; the gate with the lowest
ms/frame there wins; then the largest dedupe distance that loses no recall. Finally
the real ``indexer.ocr.ocr_frames`` runs with the chosen settings (OCR replaced by
the recorded results) to check that the replay makes the same decisions.

Run: ``python -m benchmarks.bench_ocr_gate --out bench-results/ocr_gate.json``
(about 10-20 min on 2 busy cores for ~500 keyframes; ``--records FILE`` reuses the
per-frame measurements of an earlier run and only redoes the analysis).
"""
from __future__ import annotations

import difflib
import json
import re
import statistics
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmarks.core import SHARED_MEDIA, add_media, add_out, entry_parser, write_json
from engine.errors import MediaError, NotFoundError
from indexer import ocr

__all__ = ["keyframes", "measure", "replay", "main"]

MIN_LINE_SCORE = 0.8
MIN_LINE_CHARS = 3
MATCH_RATIO = 0.8
DEDUPE_SWEEP = (None, 2.0, 4.0, 8.0, 16.0, 32.0)
# Candidate thresholds: a coarse fixed grid, so that the choice does not sit exactly
# on one frame's score. Detector likelihoods are box scores in [0, 1]; the edge
# likelihood is an area fraction, mostly under 0.2.
GRIDS = {"det": [round(x, 2) for x in np.arange(0.0, 0.951, 0.05)],
         "edges": [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1]}


def keyframes(path: Path, every: float) -> Iterator[tuple[float, np.ndarray]]:
    """RGB keyframes at ``0, every, 2*every, ...`` seconds; skips packets that fail."""
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot open {path}: {e}") from e
    with container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        due = 0.0
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                # Some clips (Theora in c016.ogg) have a few undecodable packets;
                # the frames around them are fine and still worth measuring.
                continue
            for frame in decoded:
                if frame.time is None or frame.time + 1e-6 < due:
                    continue
                yield float(frame.time), frame.to_ndarray(format="rgb24")
                due += every
                while due <= frame.time:
                    due += every


def measure(clips: list[Path], every: float, log: bool = True) -> list[dict]:
    """Per-keyframe gate likelihoods, signatures, OCR lines, and their times."""
    records: list[dict] = []
    # Warm up the models so that load time is not charged to the first frame.
    warm = np.full((64, 64, 3), 255, np.uint8)
    for gate in ocr.GATES:
        ocr.gate_features(warm, gate=gate)
    ocr.ocr_frame(warm)
    for path in clips:
        n0 = len(records)
        for t, rgb in keyframes(path, every):
            rec: dict = {"clip": path.stem, "t": round(t, 3), "shape": list(rgb.shape[:2]), "gates": {}}
            for gate in ocr.GATES:
                t0 = time.perf_counter()
                feats = ocr.gate_features(rgb, gate=gate)
                rec["gates"][gate] = {"likelihood": feats.likelihood, "ms": 1e3 * (time.perf_counter() - t0)}
                rec["signature"] = feats.signature.round(2).tolist()
            t0 = time.perf_counter()
            lines = ocr.ocr_frame(rgb, min_score=0.5)
            rec["ocr_ms"] = 1e3 * (time.perf_counter() - t0)
            rec["lines"] = [{"text": ln.text, "score": ln.score} for ln in lines]
            records.append(rec)
        if log:
            found = sum(1 for r in records[n0:] for ln in r["lines"] if _is_text_line(ln))
            print(f"{path.name}: {len(records) - n0} keyframes, {found} text lines", file=sys.stderr)
    return records


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.findall(r"\w+", text))


def _is_text_line(line: dict) -> bool:
    return line["score"] >= MIN_LINE_SCORE and sum(ch.isalnum() for ch in line["text"]) >= MIN_LINE_CHARS


def _matches(ref: str, found: list[str]) -> bool:
    return any(ref == f or difflib.SequenceMatcher(None, ref, f).ratio() >= MATCH_RATIO for f in found)


@dataclass
class ReplayResult:
    """Outcome of one gate configuration over all recorded keyframes."""

    gate: str
    threshold: float
    dedupe: float | None
    skip: float
    reuse: float
    recall: float
    vid_recall: float
    ms_per_frame: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def replay(records: list[dict], gate: str, threshold: float, dedupe: float | None,
           *, gate_cost: bool = True) -> ReplayResult:
    """The gated pipeline's decisions on recorded frames (mirrors ``ocr.ocr_frames``).

    ``gate_cost=False`` leaves the gate's time out (for the OCR-every-frame baseline).
    """
    outputs: list[list[str]] = []
    skipped = reused = 0
    cost_ms = 0.0
    last: ocr.GateFeatures | None = None
    last_lines: list[str] = []
    last_clip = None
    for rec in records:
        if rec["clip"] != last_clip:  # dedupe state is per video
            last, last_lines, last_clip = None, [], rec["clip"]
        g = rec["gates"][gate]
        cost_ms += g["ms"] if gate_cost else 0.0
        feats = ocr.GateFeatures(g["likelihood"], np.asarray(rec["signature"], dtype=np.float32))
        if not ocr.should_ocr(feats, gate=gate, threshold=threshold):
            skipped += 1
            outputs.append([])
            continue
        if dedupe is not None and last is not None and ocr.signature_distance(feats, last) <= dedupe:
            reused += 1
            outputs.append(last_lines)
            continue
        cost_ms += rec["ocr_ms"]
        last = feats
        last_lines = [_norm(ln["text"]) for ln in rec["lines"] if ln["score"] >= ocr.DEFAULT_MIN_SCORE]
        outputs.append(last_lines)
    hit = total = 0
    per_video_ref: dict[str, set[str]] = {}
    per_video_found: dict[str, list[str]] = {}
    for rec, out in zip(records, outputs):
        per_video_found.setdefault(rec["clip"], []).extend(out)
        for ln in rec["lines"]:
            if _is_text_line(ln):
                ref = _norm(ln["text"])
                per_video_ref.setdefault(rec["clip"], set()).add(ref)
                total += 1
                hit += _matches(ref, out)
    vid_total = sum(len(v) for v in per_video_ref.values())
    vid_hit = sum(_matches(r, per_video_found.get(c, [])) for c, refs in per_video_ref.items() for r in refs)
    n = max(1, len(records))
    return ReplayResult(
        gate=gate,
        threshold=threshold,
        dedupe=dedupe,
        skip=skipped / n,
        reuse=reused / n,
        recall=hit / total if total else 1.0,
        vid_recall=vid_hit / vid_total if vid_total else 1.0,
        ms_per_frame=cost_ms / n,
    )


def _grid(gate: str) -> list[float]:
    return GRIDS["det" if gate.startswith("det") else gate]


def choose_threshold(records: list[dict], gate: str, target: float) -> ReplayResult | None:
    """The highest grid threshold whose line and video recall both stay >= ``target``
    (dedupe off, so that the gate is judged alone)."""
    best = None
    for th in _grid(gate):
        if th <= 0.0:
            continue  # threshold 0 is no gate at all
        res = replay(records, gate, th, None)
        if res.recall >= target and res.vid_recall >= target:
            best = res
    return best


def choose_dedupe(records: list[dict], gate: str, threshold: float) -> ReplayResult:
    """The largest dedupe distance that loses no line recall against no dedupe."""
    base = replay(records, gate, threshold, None)
    best = base
    for dd in DEDUPE_SWEEP[1:]:
        res = replay(records, gate, threshold, dd)
        if res.recall >= base.recall and res.vid_recall >= base.vid_recall:
            best = res
    return best


def verify(records: list[dict], gate: str, threshold: float, dedupe: float | None,
           clips: list[Path], every: float) -> dict:
    """Run the real ``ocr.ocr_frames`` on the clips with recorded OCR results and
    check that it skips and reuses exactly the frames the replay does."""
    by_key = {(r["clip"], r["t"]): r for r in records}
    agree = total = 0
    for path in clips:
        sub = [r for r in records if r["clip"] == path.stem]
        if not sub:
            continue
        current: dict = {}

        def fake_ocr(rgb: np.ndarray) -> list[ocr.OcrLine]:
            rec = by_key[(path.stem, current["t"])]
            return [ocr.OcrLine(ln["text"], ln["score"], ()) for ln in rec["lines"]
                    if ln["score"] >= ocr.DEFAULT_MIN_SCORE]

        def tagged() -> Iterator[tuple[float, np.ndarray]]:
            for t, rgb in keyframes(path, every):
                current["t"] = round(t, 3)
                yield t, rgb

        stats = ocr.GateStats()
        ocr.ocr_frames(tagged(), gate=gate, threshold=threshold, dedupe_distance=dedupe, ocr=fake_ocr, stats=stats)
        sim = replay(sub, gate, threshold, dedupe)
        total += 1
        agree += (round(sim.skip * len(sub)), round(sim.reuse * len(sub))) == (stats.skipped, stats.reused)
    return {"videos": total, "replay_agrees": agree}


def _table(rows: list[tuple[str, ReplayResult]]) -> str:
    head = (f"{'setting':22} {'gate':8} {'threshold':>9} {'dedupe':>6} {'skip':>6} {'reuse':>6} "
            f"{'recall':>6} {'vid_rec':>7} {'ms/frame':>8}")
    out = [head, "-" * len(head)]
    for label, r in rows:
        dd = "off" if r.dedupe is None else f"{r.dedupe:g}"
        out.append(f"{label:22} {r.gate:8} {r.threshold:9.3g} {dd:>6} {r.skip:6.3f} {r.reuse:6.3f} "
                   f"{r.recall:6.3f} {r.vid_recall:7.3f} {r.ms_per_frame:8.1f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = entry_parser("bench_ocr_gate", __doc__.split("\n")[0])
    add_media(ap, SHARED_MEDIA)
    ap.add_argument("--clips", nargs="*", help="clip stems, e.g. c001 c016 (default: all)")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between keyframes")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--records", type=Path, help="reuse per-frame measurements (JSON) of an earlier run")
    ap.add_argument("--save-records", type=Path, help="write per-frame measurements here")
    add_out(ap, "bench-results/ocr_gate.json")
    ap.add_argument("--no-verify", action="store_true", help="skip the final run of ocr.ocr_frames")
    args = ap.parse_args(argv)

    if not args.media.is_dir():
        raise NotFoundError(f"media folder {args.media} does not exist", hint="pass --media DIR")
    clips = sorted(p for p in args.media.iterdir() if p.stem.startswith("c") and p.suffix != ".tsv")
    if args.clips:
        wanted = set(args.clips)
        clips = [p for p in clips if p.stem in wanted]
    if args.records:
        stems = {p.stem for p in clips}
        records = [r for r in json.loads(args.records.read_text()) if r["clip"] in stems]
    else:
        records = measure(clips, args.every)
        if args.save_records:
            write_json(args.save_records, records, indent=None)
    if not records:
        raise NotFoundError("no keyframes decoded", hint="check --media and --clips")

    is_text = [any(_is_text_line(ln) for ln in r["lines"]) for r in records]
    clips_with_text = sorted({r["clip"] for r, t in zip(records, is_text) if t})
    timing = {"ocr": statistics.median(r["ocr_ms"] for r in records),
              **{g: statistics.median(r["gates"][g]["ms"] for r in records) for g in ocr.GATES}}
    print(f"{len(records)} keyframes (every {args.every:g} s) from {len({r['clip'] for r in records})} clips; "
          f"{sum(is_text)} hold text lines, in {len(clips_with_text)} clips: {' '.join(clips_with_text)}")
    print("median ms a keyframe: " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))

    every_frame = replay(records, next(iter(ocr.GATES)), 0.0, None, gate_cost=False)
    rows: list[tuple[str, ReplayResult]] = [("OCR every frame", every_frame)]
    chosen: dict[str, ReplayResult] = {}
    for gate in ocr.GATES:
        res = choose_threshold(records, gate, args.target_recall)
        if res is None:
            print(f"{gate}: no threshold reaches the target recall")
        else:
            chosen[gate] = res
            rows.append(("gate alone, chosen", res))
    if not chosen:
        print(f"no gate reaches recall {args.target_recall}")
        return 1
    pick = min(chosen.values(), key=lambda r: r.ms_per_frame)
    pick_dd = choose_dedupe(records, pick.gate, pick.threshold)
    for dd in DEDUPE_SWEEP[1:]:
        rows.append((f"{pick.gate} + dedupe", replay(records, pick.gate, pick.threshold, dd)))
    rows.append(("CHOSEN", pick_dd))
    default = replay(records, ocr.DEFAULT_GATE, ocr.DEFAULT_GATE_THRESHOLDS[ocr.DEFAULT_GATE],
                     ocr.DEFAULT_DEDUPE_DISTANCE)
    rows.append(("module defaults now", default))
    print()
    print(f"target: line and video recall >= {args.target_recall}; text line = score >= {MIN_LINE_SCORE}, "
          f">= {MIN_LINE_CHARS} letters/digits")
    print(_table(rows))
    print()
    print("threshold sweeps (gate alone): threshold skip/recall/ms")
    sweep = {}
    for gate in ocr.GATES:
        sweep[gate] = [replay(records, gate, th, None).as_dict() for th in _grid(gate)]
        print(f"  {gate:8} " + "  ".join(f"{d['threshold']:g}:{d['skip']:.2f}/{d['recall']:.2f}/{d['ms_per_frame']:.0f}"
                                         for d in sweep[gate]))
    check = None
    if not args.no_verify and not args.records:
        check = verify(records, pick_dd.gate, pick_dd.threshold, pick_dd.dedupe, clips, args.every)
        print(f"ocr_frames check: replay agrees on {check['replay_agrees']}/{check['videos']} videos")
    report = {
        "settings": {"every_s": args.every, "target_recall": args.target_recall, "min_line_score": MIN_LINE_SCORE,
                     "min_line_chars": MIN_LINE_CHARS, "match_ratio": MATCH_RATIO,
                     "ocr_min_score": ocr.DEFAULT_MIN_SCORE, "grids": GRIDS, "dedupe_sweep": DEDUPE_SWEEP},
        "keyframes": len(records),
        "clips": sorted({r["clip"] for r in records}),
        "clips_with_text": clips_with_text,
        "text_frames": sum(is_text),
        "median_ms": timing,
        "rows": [{"setting": label, **r.as_dict()} for label, r in rows],
        "chosen": pick_dd.as_dict(),
        "module_defaults": default.as_dict(),
        "sweep": sweep,
        "ocr_frames_check": check,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
