"""Ingest throughput: seconds of video indexed per second of wall time, by stage.

    python -m benchmarks.bench_ingest --media ../shared/media --workers 2 \
        --out bench-results/ingest.json

Indexes every clip into a fresh temporary index with all modalities on (unless
``--no-speech``/``--no-ocr``/``--no-visual``) and reports the overall speed and
where the time goes (stage seconds summed over workers, and their share).

Stage seconds are wall seconds inside each worker, so on a shared machine they
grow with the load: the 1-minute load average before and after the run is
recorded beside them (``load_before``/``load_after``), and the CPU seconds of this
process and its finished workers (``cpu_seconds``), which the load inflates far
less. The ``graph`` stage runs in the parent process after each commit. See
docs/ingest.md for measured numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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
    load_before = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="vidseek-ingest-") as d:
        t0 = time.perf_counter()
        report = index_paths(sources, Path(d) / "idx", options=opts, show_progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    load_after = os.getloadavg()[0]
    s = report.summary()
    stages = s["stage_seconds"]
    total = sum(stages.values()) or 1.0
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(),
        "settings": {"workers": workers, "speech": speech, "ocr": ocr, "visual": visual, "clips": len(sources)},
        "media_seconds": s["media_seconds"],
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 1),
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
        "speed_x_realtime": round(s["media_seconds"] / wall, 2) if wall else None,
        "stage_seconds": stages,
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "by_status": s["by_status"],
        "failures": s["failures"],
    }


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have ended (the
    worker pool is shut down by the time the run returns)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


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
          f"{res['speed_x_realtime']}x real time ({res['settings']}); {res['cpu_seconds']:.0f} CPU s; "
          f"1-min load {res['load_before']} before, {res['load_after']} after")
    print("| stage | seconds (summed over workers) | share |\n|---|---:|---:|")
    for k, v in sorted(res["stage_seconds"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} | {res['stage_share'][k]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
