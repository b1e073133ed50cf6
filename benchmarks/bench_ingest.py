"""Ingest throughput: seconds of video indexed per second of wall time, by stage.

    python -m benchmarks.bench_ingest --media ../shared/media --workers 2 \
        --out bench-results/ingest.json

Indexes every clip into a fresh temporary index with all modalities on (unless
``--no-speech``/``--no-ocr``/``--no-visual``) and reports the overall speed and
where the time goes (stage seconds summed over workers, and their share).

Stage seconds are wall seconds inside each worker, so on a shared machine they
grow with the load: the 1-minute load average before and after the run is
recorded beside them (``load_before``/``load_after``), and the CPU seconds of this
process and every process under it, the workers and their fork server included
(``cpu_seconds``, ``benchmarks.core.TreeCpu``), which the load inflates far less. The ``graph`` stage runs in the parent process after each commit. See
docs/ingest.md for measured numbers.

The measurement is ``benchmarks.suites.ingest.measure_library`` (the ingest suite of
``python -m benchmarks`` times the same ``index_into_temp``); this is its command line.
"""
from __future__ import annotations

import sys

from benchmarks.core import SHARED_MEDIA, add_media, add_out, entry_parser, write_json
from benchmarks.suites.ingest import measure_library

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = entry_parser("bench_ingest", __doc__)
    add_media(p, SHARED_MEDIA)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, help="only the first N clips")
    p.add_argument("--no-speech", action="store_true")
    p.add_argument("--no-ocr", action="store_true")
    p.add_argument("--no-visual", action="store_true")
    p.add_argument("--image-encoder", help="the index's image encoder (default: the config's default)")
    add_out(p, "bench-results/ingest.json")
    args = p.parse_args(argv)
    if not args.media.is_dir():
        print(f"media folder {args.media} does not exist (pass --media)", file=sys.stderr)
        return 2
    res = measure_library(args.media, workers=args.workers, speech=not args.no_speech, ocr=not args.no_ocr,
                          visual=not args.no_visual, limit=args.limit, image_encoder=args.image_encoder)
    write_json(args.out, res)
    print(f"{res['media_seconds']:.1f} s of media in {res['wall_seconds']:.1f} s wall = "
          f"{res['speed_x_realtime']}x real time ({res['settings']}); {res['cpu_seconds']:.0f} CPU s; "
          f"1-min load {res['load_before']} before, {res['load_after']} after")
    print("| stage | seconds (summed over workers) | share |\n|---|---:|---:|")
    for k, v in sorted(res["stage_seconds"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} | {res['stage_share'][k]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
