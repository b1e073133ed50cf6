"""`vidseek bench` and `python -m benchmarks`: run suites at a preset, write the report,
compare two runs.

    python -m benchmarks [--suite quality,latency,scale,ingest] [--preset ci|small|medium|large] [--out DIR]
    python -m benchmarks compare A/result.json B/result.json [--fail-on-regression]
    vidseek bench ...            (the same options)

Writes ``DIR/result.json``, ``DIR/report.md`` and one PNG per suite (see
``benchmarks.report``); prints where they are. Exit status: 0 done, 1 a benchmark
failed (or, for ``compare --fail-on-regression``, a regression), 2 bad usage or input.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

from engine.errors import InputError, UnknownNameError, VidseekError

__all__ = ["register", "add_arguments", "run_bench", "build_parser", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run options and the ``compare`` subcommand, on ``p``."""
    from benchmarks import compare
    from benchmarks.presets import PRESETS, SUITES

    p.add_argument("--suite", default=None, metavar="NAMES",
                   help=f"comma-separated suites to run (default all: {','.join(SUITES)})")
    p.add_argument("--preset", default="small", choices=list(PRESETS),
                   help="sizes: " + "; ".join(f"{n}: {pr.description}" for n, pr in PRESETS.items()))
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where result.json, report.md and the plots go (default bench-results/run-PRESET-TIME)")
    p.add_argument("--cache-dir", type=Path, default=Path("bench-results") / "cache", metavar="DIR",
                   help="quality indexes, keyed by clip set, and scratch space (default bench-results/cache)")
    p.add_argument("--media", type=Path, default=None, metavar="DIR",
                   help="folder of judged clips (default $VIDSEEK_SHARED_MEDIA or ../shared/media)")
    p.add_argument("--queries", type=Path, default=None, metavar="FILE",
                   help="judged queries JSONL (default ../shared/bench/queries-public.jsonl)")
    p.add_argument("--quality-index", type=Path, default=None, metavar="DIR",
                   help="use this existing index for the quality suite (it must hold every chosen clip)")
    p.add_argument("--peers", default="auto",
                   help="quality peers: auto (those installed), none, or a comma-separated list "
                        "(rank-bm25,txtai-hybrid)")
    p.add_argument("--repeats", type=int, default=None, help="override the preset's repeats (latency, scale, ingest)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub = p.add_subparsers(dest="bench_command", metavar="{compare}")
    c = sub.add_parser("compare", help="compare two result files and print the differences")
    compare.add_arguments(c)


def _peers(spec: str) -> str | tuple[str, ...]:
    if spec == "auto":
        return "auto"
    if spec == "none":
        return ()
    return tuple(s.strip() for s in spec.split(",") if s.strip())


def run_bench(args: argparse.Namespace, argv_for_record: Sequence[str] | None = None) -> int:
    """Run what ``args`` asks (a run, or ``compare``); the exit status."""
    if getattr(args, "bench_command", None) == "compare":
        from benchmarks.compare import run_compare

        return run_compare(args)
    from benchmarks.presets import get_preset
    from benchmarks.report import write_report
    from benchmarks.suites import RunOptions, parse_suites, run_benchmarks

    if args.repeats is not None and args.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {args.repeats}")
    preset = get_preset(args.preset)
    suites = parse_suites(args.suite)
    out = args.out or Path("bench-results") / f"run-{preset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    scratch = args.cache_dir / f"scratch-{os.getpid()}"
    argv = list(argv_for_record if argv_for_record is not None else sys.argv[1:])
    options = RunOptions(
        work_dir=scratch, cache_dir=args.cache_dir, media=args.media, queries_file=args.queries,
        quality_index=args.quality_index, peers=_peers(args.peers), repeats=args.repeats,
        command="python -m benchmarks " + shlex.join(argv),
    )

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    try:
        result = run_benchmarks(preset, suites, options, progress=say)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # only the scratch folder this run made
    files = write_report(result, out)
    print(f"wrote {files['json']} and {files['markdown']} ({len(files) - 2} plots) in {result['seconds']:.0f} s")
    for suite, f in result["failed"].items():
        print(f"suite {suite} FAILED: {f['error']}", file=sys.stderr)
    return 1 if result["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m benchmarks`` parser."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def _cmd_bench(args: argparse.Namespace) -> int:
    return run_bench(args, argv_for_record=sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "bench" else None)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``vidseek bench`` (the same options as ``python -m benchmarks``)."""
    s = sub.add_parser("bench", help="run the benchmark suites, or compare two result files",
                       description=__doc__.split("\n\n")[0])
    add_arguments(s)
    s.set_defaults(func=_cmd_bench)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks``: exit 0 done, 1 failed (or regression), 2 bad input."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return run_bench(args, argv_for_record=argv)
    except (InputError, UnknownNameError) as e:
        print(f"benchmarks: {e}", file=sys.stderr)
        return 2
    except VidseekError as e:
        print(f"benchmarks: {e}", file=sys.stderr)
        return 1
