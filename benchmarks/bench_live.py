"""Live ingest: freshness, sustained speed-up, windows vs whole file, live reel overlap.

    python -m benchmarks.bench_live --media ../shared/media --out bench-results/live.json \
        [--speeds 1,2] [--modes hls,ts] [--no-fast] [--work DIR]

Replays a stream joined from speech clips of the media folder with a writer process
(growing MPEG-TS and HLS, at 1x and the other speeds), indexes it with `vidseek live`
(speech and OCR on), and reports freshness p50/p95 per run, the throughput of a run
whose stream was written before it started (the largest sustainable speed-up), the
windows' index against a whole-file ingest of the same recording (segment boundaries,
transcript words, OCR tokens) and the live highlight reel against the whole file's.
See ``benchmarks.suites.live`` for the definitions and docs/live.md for numbers.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks.core import SHARED_MEDIA, add_media, add_out, entry_parser, write_json
from benchmarks.machine import loadavg

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from benchmarks.suites.live import STREAM_CLIPS, run

    p = entry_parser("bench_live", __doc__)
    add_media(p, SHARED_MEDIA)
    p.add_argument("--speeds", default="1,2", help="writer speeds (x real time), comma-separated (default 1,2)")
    p.add_argument("--modes", default="hls,ts", help="1x runs: hls, ts or both (default hls,ts)")
    p.add_argument("--no-fast", action="store_true", help="skip the prewritten (throughput) run")
    p.add_argument("--reel", type=float, default=30.0, help="highlight reel seconds (default 30)")
    p.add_argument("--min-window", type=float, default=4.0, help="vidseek live --min-window (default 4)")
    p.add_argument("--work", help="keep the streams and indexes in this folder (default: a temporary one)")
    add_out(p, "bench-results/live.json")
    args = p.parse_args(argv)
    missing = [c for c in STREAM_CLIPS if not (args.media / c).is_file()]
    if missing:
        print(f"{args.media} lacks {', '.join(missing)} (pass --media ../shared/media)", file=sys.stderr)
        return 2
    speeds = [float(s) for s in args.speeds.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in ("hls", "ts") for m in modes) or any(s <= 0 for s in speeds):
        print("--modes takes hls and/or ts; --speeds positive numbers", file=sys.stderr)
        return 2
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="vidseek-bench-live-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        res = run(args.media, work, speeds=speeds, modes=modes, fast=not args.no_fast, reel=args.reel,
                  min_window=args.min_window)
    out = res.as_dict()
    out["load_before"], out["load_after"] = load_before, loadavg()
    write_json(args.out, out)
    print("| run | windows | freshness p50 / p95 / max (s) | throughput (x real time) |\n|---|---:|---:|---:|")
    for r in res.details["runs"]:
        name = f"{r['mode']} " + ("prewritten" if r["prewritten"] else f"{r['speed']:g}x")
        print(f"| {name} | {r['windows']} | {r['freshness_p50_s']} / {r['freshness_p95_s']} / {r['freshness_max_s']}"
              f" | {r['throughput_x']} |")
    print("windows vs whole file:", res.details["windows_vs_whole"])
    print("reel:", {k: v for k, v in res.details["reel"].items() if "overlap" in k or k == "updates"})
    print(f"1-min load {out['load_before']} before, {out['load_after']} after; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
