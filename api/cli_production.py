"""`vidseek clip` and `vidseek highlight`: the command line (flags, progress bars, printed
results) over the library calls of ``api.production``, which the HTTP routes share."""
from __future__ import annotations

import argparse
import json
import sys

from api.production import (
    HighlightRequest,
    build_highlight,
    clip_video,
)

__all__ = ["register", "cmd_clip", "cmd_highlight"]


def _plural(n: int, word: str) -> str:
    """``1 piece``, ``2 pieces``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


# -- command line ------------------------------------------------------------------------
def _bar(show: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=100, disable=not show, leave=False, file=sys.stderr,
               bar_format="{desc:<24.24} {percentage:3.0f}%|{bar}| {elapsed}")

    def say(stage: str, frac: float) -> None:
        bar.set_description_str(stage)
        bar.n = int(round(100 * frac))
        bar.refresh()

    return bar, say


def _limits(args: argparse.Namespace):
    from indexer.export import ExportLimits

    d = ExportLimits()
    return ExportLimits(max_duration_s=args.max_duration or d.max_duration_s, max_bytes=args.max_bytes or d.max_bytes)


def _show_progress(args: argparse.Namespace) -> bool:
    return (not args.quiet and sys.stderr.isatty()) or args.progress


def cmd_clip(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex

    with VideoIndex.open(args.index) as index:
        bar, say = _bar(_show_progress(args))
        try:
            res = clip_video(index, args.video_id, args.start, args.end, args.out, tenant=args.tenant,
                             copy=args.copy, limits=_limits(args), progress=say)
        finally:
            bar.close()
    if args.json:
        print(json.dumps(res.as_dict(), indent=2))
    else:
        p = res.plan
        print(f"wrote {res.path}: {p.start:.3f}-{p.end:.3f} s of {args.video_id} ({res.duration:.3f} s,"
              f" {res.size_bytes / 1e6:.2f} MB); {p.reason}")
    return 0


def cmd_highlight(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex

    if getattr(args, "live", False):
        from api.cli_live import cmd_live_highlight

        return cmd_live_highlight(args)

    req = HighlightRequest(video_id=args.video_id, query=args.query, duration=args.duration, order=args.order,
                           fade=args.fade, tenant=args.tenant, max_videos=args.max_videos)
    with VideoIndex.open(args.index) as index:
        bar, say = _bar(_show_progress(args))
        try:
            res = build_highlight(index, req, args.out, edl_path=args.edl, limits=_limits(args), progress=say)
        finally:
            bar.close()
    if args.json:
        print(json.dumps(res.edl.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(f"wrote {res.path}: {_plural(len(res.edl.entries), 'piece')}, {res.reel.probed_duration:.2f} s"
              f" (target {req.duration:g} s, {res.edl.fade:.2f} s cross-fades)")
        for e in res.edl.entries:
            print(f"  {e.output_in:7.2f}-{e.output_out:7.2f}  {e.video_id} {e.source_in:.2f}-{e.source_out:.2f}"
                  f"  {e.reason}")
        if args.edl:
            print(f"edit decision list: {args.edl}")
    return 0


def _common(s: argparse.ArgumentParser) -> None:
    s.add_argument("--out", required=True, metavar="FILE", help="the MP4 to write")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant", help="only this tenant's videos")
    s.add_argument("--max-duration", type=float, metavar="S", help="refuse outputs longer than this (default 600)")
    s.add_argument("--max-bytes", type=int, metavar="N", help="refuse outputs larger than this (default 2 GiB)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")


def register(sub) -> None:
    """Add ``clip`` and ``highlight`` to the `vidseek` command."""
    from indexer.export import COPY_MODES
    from query.highlights import ORDERS

    s = sub.add_parser("clip", help="export a time range of an indexed video as MP4")
    s.add_argument("video_id", metavar="VIDEO_ID")
    s.add_argument("--start", type=float, required=True, metavar="S", help="seconds from the start")
    s.add_argument("--end", type=float, required=True, metavar="E", help="seconds from the start (exclusive)")
    s.add_argument("--copy", choices=COPY_MODES, default="auto",
                   help="stream copy: auto (when keyframe-aligned, H.264/AAC), never, always (or fail)")
    _common(s)
    s.set_defaults(func=cmd_clip)

    s = sub.add_parser("highlight", help="make a highlight reel of a video or of a query's best moments")
    s.add_argument("video_id", nargs="?", metavar="VIDEO_ID")
    s.add_argument("--query", help="make the reel from the moments that match this query")
    s.add_argument("--duration", type=float, default=30.0, metavar="S", help="target length (never exceeded)")
    s.add_argument("--order", choices=ORDERS, default="story", help="story (time order) or score (best first)")
    s.add_argument("--fade", type=float, default=0.5, metavar="S", help="cross-fade between pieces (default 0.5)")
    s.add_argument("--max-videos", type=int, default=5, help="a query draws from at most this many videos")
    s.add_argument("--edl", metavar="FILE.json", help="write the edit decision list here")
    s.add_argument("--live", action="store_true",
                   help="keep the reel up to date while VIDEO_ID is indexed live (see `vidseek live`)")
    s.add_argument("--every", type=float, default=10.0, metavar="S", help="--live: rebuild at most this often")
    _common(s)
    s.set_defaults(func=cmd_highlight)
