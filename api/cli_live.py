"""`vidseek live`: index a stream that is still being written (``indexer.live``).

```
vidseek live SOURCE --index DIR [--min-window 4] [--end-after 60] [--finalise reanalyse|keep] [--json]
vidseek highlight --live VIDEO_ID --index DIR --out reel.mp4 [--duration 30] [--every 10]   (api.cli_production)
```
SOURCE is a growing file (MPEG-TS or fragmented MP4), a local HLS playlist (.m3u8) or a
folder where chunk files arrive. One line per event (each window committed, stalls,
restarts, truncated chunks, loops); Ctrl-C stops the run, which resumes from its last
committed window when started again.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

__all__ = ["register", "cmd_live"]


def cmd_live(args: argparse.Namespace) -> int:
    from indexer.live import FINALISE_MODES, LiveOptions, run_live  # noqa: F401
    from indexer.options import IndexOptions

    live = LiveOptions(min_window=args.min_window, max_window=args.max_window, stall_after=args.stall_after,
                       end_after=args.end_after, poll=args.poll, finalise=args.finalise, covers=not args.no_covers,
                       segment_max=args.segment_max)
    options = IndexOptions(tenant=args.tenant, speech=not args.no_speech, ocr=not args.no_ocr,
                           visual=not args.no_visual, language=args.language, graph=not args.no_graph)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def say(ev) -> None:
        if args.json:
            print(json.dumps(ev.as_dict(), ensure_ascii=False), flush=True)
        elif not args.quiet:
            print(f"[{ev.kind}] {ev.message}", file=sys.stderr, flush=True)

    report = run_live(args.source, args.index, options=options, live=live, on_event=say, stop=stop)
    summary = report.summary()
    if args.json:
        print(json.dumps({"kind": "summary", **summary}, ensure_ascii=False))
    else:
        print(f"{report.video_id}: {report.status}, {report.windows} windows, {report.committed:.2f} s committed")
        for w in report.warnings:
            print(f"  warning: {w}")
    return 0 if report.status in ("finalised", "stopped") else 1


def register(sub) -> None:
    """Add ``live`` to the `vidseek` command."""
    from indexer.live import FINALISE_MODES, LiveOptions

    d = LiveOptions()
    s = sub.add_parser("live", help="index a growing file, HLS playlist or chunk folder as it is written")
    s.add_argument("source", metavar="SOURCE", help="growing .ts/.mp4 file, .m3u8 playlist, or folder of chunks")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant", default="default")
    s.add_argument("--min-window", type=float, default=d.min_window, metavar="S",
                   help=f"seconds of new media before a window is analysed (default {d.min_window:g})")
    s.add_argument("--max-window", type=float, default=d.max_window, metavar="S",
                   help=f"longest window (default {d.max_window:g})")
    s.add_argument("--segment-max", type=float, default=d.segment_max, metavar="S",
                   help=f"longest segment while live: a moment in a long shot waits at most this for its segment"
                        f" to close; shorter is fresher but loses more words at the seams (default"
                        f" {d.segment_max:g}; the finalised video uses the index's own)")
    s.add_argument("--stall-after", type=float, default=d.stall_after, metavar="S",
                   help=f"report a stall after this many quiet seconds (default {d.stall_after:g})")
    s.add_argument("--end-after", type=float, default=d.end_after, metavar="S",
                   help=f"the stream has ended after this many quiet seconds (default {d.end_after:g}; 0: never)")
    s.add_argument("--poll", type=float, default=d.poll, metavar="S", help=f"poll interval (default {d.poll:g})")
    s.add_argument("--finalise", choices=FINALISE_MODES, default=d.finalise,
                   help="at the end: reanalyse the whole recording (= a whole-file ingest) or keep the windows")
    s.add_argument("--language", help="spoken language (default: detected on the first window with speech)")
    s.add_argument("--no-speech", action="store_true")
    s.add_argument("--no-ocr", action="store_true")
    s.add_argument("--no-visual", action="store_true")
    s.add_argument("--no-graph", action="store_true", help="no knowledge graph at finalisation")
    s.add_argument("--no-covers", action="store_true", help="no covers at finalisation")
    s.add_argument("--json", action="store_true", help="one JSON object per event on stdout, then a summary")
    s.add_argument("--quiet", action="store_true", help="no event lines")
    s.set_defaults(func=cmd_live)


def cmd_live_highlight(args: argparse.Namespace) -> int:
    """`vidseek highlight --live VIDEO_ID --out reel.mp4 --index DIR`: one line per update."""
    from api.live_highlights import follow_live_reel
    from api.production import HighlightRequest  # noqa: F401  (validates like the one-shot reel)
    from engine.errors import InputError

    if args.video_id is None or args.query:
        raise InputError("--live makes the reel of one live video", hint="vidseek highlight --live VIDEO_ID ...")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def say(st) -> None:
        if args.json:
            print(json.dumps(st.as_dict(), ensure_ascii=False), flush=True)
        elif not args.quiet:
            what = f"{len(st.pieces)} pieces, {st.reel_duration:.2f} s" if not st.error else st.error
            print(f"[{st.state}] reel of {st.video_id} at {st.video_duration:.1f} s of video: {what}",
                  file=sys.stderr, flush=True)

    st = follow_live_reel(args.index, args.video_id, args.out, edl=args.edl, duration=args.duration,
                          fade=args.fade, order=args.order, tenant=args.tenant, every=args.every, stop=stop,
                          on_update=say)
    print(f"{st.reel}: {st.state}, {st.updates} updates, {len(st.pieces)} pieces ({st.reel_duration:.2f} s)")
    return 0 if st.state in ("done", "stopped") else 1
