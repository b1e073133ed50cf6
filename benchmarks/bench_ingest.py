"""Ingest throughput: seconds of video indexed per second of wall time, by stage.

    python -m benchmarks.bench_ingest --media ../shared/media --workers 2 \
        --out bench-results/ingest.json

Indexes every clip into a fresh temporary index with all modalities on (unless
``--no-speech``/``--no-ocr``/``--no-visual``) and reports the overall speed and
where the time goes (stage seconds summed over workers, and their share).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine_info

__all__ = ["run", "main"]


def run(media: Path, *, workers: int, speech: bool, ocr: bool, visual: bool, limit: int | None) -> dict:
    from indexer.pipeline import IndexOptions, discover, index_paths

    sources, _ = discover([str(media)])
    if limit:
        sources = sources[:limit]
    opts = IndexOptions(workers=workers, speech=speech, ocr=ocr, visual=visual)
    with tempfile.TemporaryDirectory(prefix="vidseek-ingest-") as d:
        t0 = time.perf_counter()
        report = index_paths(sources, Path(d) / "idx", options=opts, show_progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
    s = report.summary()
    stages = s["stage_seconds"]
    total = sum(stages.values()) or 1.0
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(),
        "settings": {"workers": workers, "speech": speech, "ocr": ocr, "visual": visual, "clips": len(sources)},
        "media_seconds": s["media_seconds"],
        "wall_seconds": round(wall, 2),
        "speed_x_realtime": round(s["media_seconds"] / wall, 2) if wall else None,
        "stage_seconds": stages,
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "by_status": s["by_status"],
        "failures": s["failures"],
    }


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--media", type=Path, default=here.parent / "shared" / "media")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, help="only the first N clips")
    p.add_argument("--no-speech", action="store_true")
    p.add_argument("--no-ocr", action="store_true")
    p.add_argument("--no-visual", action="store_true")
    p.add_argument("--out", type=Path, default=Path("bench-results/ingest.json"))
    args = p.parse_args(argv)
    if not args.media.is_dir():
        print(f"media folder {args.media} does not exist (pass --media)", file=sys.stderr)
        return 2
    res = run(args.media, workers=args.workers, speech=not args.no_speech, ocr=not args.no_ocr,
              visual=not args.no_visual, limit=args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(f"{res['media_seconds']:.1f} s of media in {res['wall_seconds']:.1f} s wall = "
          f"{res['speed_x_realtime']}x real time ({res['settings']})")
    print("| stage | seconds (summed over workers) | share |\n|---|---:|---:|")
    for k, v in sorted(res["stage_seconds"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} | {res['stage_share'][k]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
