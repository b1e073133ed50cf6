"""Retrieval-quality benchmark: every method of the query planner on a judged query set.

    python -m benchmarks.bench_quality --media ../shared/media \\
        --queries ../shared/bench/queries-public.jsonl \\
        --index-dir bench-results/quality-index --out bench-results/quality.json \\
        [--reuse-index] [--workers 2] [--methods bm25,dense,default] [--check-default] \\
        [--image-encoder imagenet-ensemble-minilm]

What it does:

1. **Ingest.** Indexes every clip of ``--media`` under its opaque file name (no
   metadata sidecar, so nothing but the content can match) into ``--index-dir``,
   once. With ``--reuse-index`` an existing index that holds every clip is used as is
   (an incomplete one is completed: the pipeline skips what it holds). The ingest
   summary (media seconds, wall seconds, speed x real time, seconds per stage) goes
   into the JSON and beside the index (``<index-dir>.ingest.json``) so a reuse still
   reports how the index was built. ``--image-encoder NAME`` builds it with another
   registered visual encoder (the index's config records it; a reuse checks it).
2. **Search.** Runs every query through every method (``judged.METHODS``): BM25 alone, dense
   alone, RRF and convex fusion without the reranker (convex at dense shares 0.5,
   0.7, 0.9), both fusions with the reranker, and the planner's defaults. The single
   retrievers run without the reranker too: the reranker mixes in dense cosines
   (modality agreement), which would make "BM25 alone" a hybrid. Each hit's source
   maps to a clip id by its file stem.
3. **Measure** (``benchmarks.metrics``): per method and query kind, Recall@1/5/10,
   MRR, nDCG@10 at clip level (duplicates of one clip count once, at their best
   rank), R1@IoU0.5 and 0.7 where the ground truth has a window, and the number of queries.
   "overall" averages over every non-negative query. Negative queries (no relevant
   clip) are left out of those means and reported apart: the mean score of the top
   hit, shown beside the same method's mean top-1 score on positive queries.
4. **Report.** Markdown tables (one per metric: methods as rows, kinds as columns)
   on stdout and in ``<out>.md``; JSON with the summary, every query's top clips and
   first relevant rank, the ingest summary, the machine and the date; a bar chart of
   MRR per kind and method in ``<out>.png``.

``--check-default`` applies the issue's acceptance rule and exits 1 when it fails:
the default method must not be worse by MRR than the best single retriever (BM25 or
dense) on any kind, and must be strictly better overall.

The query file is a held-out sample: this harness measures; nothing is tuned on it.

This module is the command line; the harness is ``benchmarks.suites.judged``, which
the quality suite of ``python -m benchmarks`` runs too.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from benchmarks.core import PUBLIC_QUERIES, REPO_ROOT, add_out, entry_parser, shared_media
from benchmarks.machine import loadavg, machine_info
from benchmarks.suites import judged
from engine.errors import InputError, VidseekError

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    media, queries = shared_media(), PUBLIC_QUERIES
    p = entry_parser("bench_quality", __doc__.split("\n")[0])
    p.add_argument("--media", type=Path, default=media, help=f"folder of clips (default {media})")
    p.add_argument("--queries", type=Path, default=queries, help=f"judged queries JSONL (default {queries})")
    p.add_argument("--index-dir", type=Path, default=REPO_ROOT / "bench-results" / "quality-index")
    add_out(p, REPO_ROOT / "bench-results" / "quality.json", "the JSON report (Markdown and PNG beside it)")
    p.add_argument("--reuse-index", action="store_true", help="use an existing index that holds every clip")
    p.add_argument("--image-encoder", default=None, metavar="NAME",
                   help="build the index with this registered image encoder (default: the config's, "
                        "imagenet-effnet-minilm); a reused index must have been built with it")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="ingest worker processes")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated subset of: {', '.join(m.name for m in judged.METHODS)} (default all)")
    p.add_argument("--check-default", action="store_true",
                   help="exit 1 if the default method loses to BM25 or dense by MRR (see module docstring)")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        methods = judged.select_methods(args.methods)
        queries = judged.load_queries(args.queries)
        clips = judged.list_clips(args.media)
        unknown = sorted({r.clip for q in queries for r in q.relevant} - set(clips))
        if unknown:
            raise InputError(f"the queries name clips that are not in {args.media}: {unknown}",
                             hint="point --media at the folder the queries were judged on")
        ingest = judged.ensure_index(clips, args.index_dir, reuse=args.reuse_index, workers=args.workers,
                                     image_encoder=args.image_encoder)
        missing = sorted(set(clips) - judged.indexed_clips(args.index_dir))
        if missing:
            print(f"warning: {len(missing)} clips are not in the index (see ingest failures): {missing}",
                  file=sys.stderr)
        machine = machine_info()
        search, close, warmup_s = judged.open_search(args.index_dir)
        try:
            extra = {
                "command": "python -m benchmarks.bench_quality "
                + shlex.join(list(argv) if argv is not None else sys.argv[1:]),
                "machine": machine,
                "media_dir": str(args.media.resolve()),
                "queries_file": str(args.queries.resolve()),
                "index_dir": str(args.index_dir.resolve()),
                "clips": len(clips),
                "clips_missing_from_index": missing,
                "ingest": ingest,
                "search_warmup_seconds": round(warmup_s, 2),
            }
            report, markdown, failures = judged.run(queries, methods, search, check=args.check_default, extra=extra)
        finally:
            close()
        report["machine"]["loadavg_end"] = loadavg()
        paths = judged.write_report(args.out, report, markdown, report["summary"], report["kinds"])
    except VidseekError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown)
    built = ingest if "summary" in ingest else (ingest.get("built") or {})
    if "summary" in built:
        print(("Ingest (reused index, as built): " if ingest["reused"] is True else "Ingest: ")
              + json.dumps(built["summary"]))
    print(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']}")
    if args.check_default:
        if failures:
            print("check-default FAILED:\n  " + "\n  ".join(failures))
            return 1
        print("check-default passed: default beats the best single retriever overall and loses on no kind")
    return 0


if __name__ == "__main__":
    sys.exit(main())
