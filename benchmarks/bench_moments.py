"""``python -m benchmarks.bench_moments --index DIR [--queries FILE ...]``: how well the
moment cut works when the clip is right.

R1@IoU (``bench_quality``) mixes two things: whether the top hit is the right clip, and
whether its range is the right moment. This measures the second alone: each judged query
with a time window is searched within its clip (a ``source:`` filter on the clip's path),
and the top hit's range is compared with the window (the best of the clip's windows).
Reported per kind: queries, mean IoU, and the share at IoU 0.5 and 0.7.

The index must hold the clips of ``--media`` (the quality suite's index of
../shared/media, or one built by ``bench_quality --index-dir DIR``)."""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from benchmarks.core import emit
from benchmarks.metrics import temporal_iou
from benchmarks.suites.judged import IOU_STRICT, IOU_THRESHOLD, KIND_ORDER, list_clips, load_queries

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QUERIES = (ROOT.parent / "shared" / "bench" / "queries-public.jsonl",
                   ROOT / "benchmarks" / "data" / "moments-queries.jsonl")
DEFAULT_MEDIA = ROOT.parent / "shared" / "media"


def measure(index_dir: Path, query_files: Sequence[Path], media: Path) -> dict[str, Any]:
    """Per query file and kind, the moment IoU of the top hit found within the right clip."""
    from engine.index import VideoIndex
    from query.planner import Searcher, SearchOptions

    clips = list_clips(media)
    searcher = Searcher(VideoIndex.open(index_dir))
    rows: list[dict[str, Any]] = []
    for path in query_files:
        for q in load_queries(path):
            windows = [r for r in q.relevant if r.start is not None]
            if not windows:
                continue
            clip = windows[0].clip
            if clip not in clips:
                raise SystemExit(f"{path}: query {q.qid} names clip {clip!r}, not in {media}")
            res = searcher.search(f"{q.text} source:\"{clips[clip]}\"", options=SearchOptions(min_confidence="low"))
            top = res.hits[0] if res.hits else None
            iou = 0.0 if top is None else max(temporal_iou(top.start, top.end, w.start, w.end)
                                               for w in windows if w.clip == clip)
            rows.append({"file": path.name, "qid": q.qid, "kind": q.kind, "iou": round(iou, 4),
                         "range": None if top is None else [round(top.start, 3), round(top.end, 3)],
                         "range_from": None if top is None else top.range_from,
                         "truth": [[w.start, w.end] for w in windows if w.clip == clip]})
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        groups[(r["file"], r["kind"])].append(r["iou"])
        groups[(r["file"], "overall")].append(r["iou"])
    files = [p.name for p in query_files]
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    summary = [{"file": f, "kind": k, "n": len(v), "mean_iou": round(sum(v) / len(v), 3),
                "iou_0.5": round(sum(x >= IOU_THRESHOLD for x in v) / len(v), 3),
                "iou_0.7": round(sum(x >= IOU_STRICT for x in v) / len(v), 3)}
               for (f, k), v in sorted(groups.items(), key=lambda g: (files.index(g[0][0]), g[0][1] == "overall",
                                                                     order.get(g[0][1], len(order)), g[0][1]))]
    return {"index": str(index_dir), "summary": summary, "queries": rows}


def render(res: dict[str, Any]) -> str:
    out = ["| queries | kind | n | mean IoU | IoU >= 0.5 | IoU >= 0.7 |", "|---|---|---:|---:|---:|---:|"]
    for s in res["summary"]:
        out.append(f"| {s['file']} | {s['kind']} | {s['n']} | {s['mean_iou']:.3f} | {s['iou_0.5']:.2f} |"
                   f" {s['iou_0.7']:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True, type=Path, help="an index of the --media clips")
    ap.add_argument("--queries", type=Path, action="append", help="judged queries JSONL (repeatable; default:"
                    " the public set and benchmarks/data/moments-queries.jsonl)")
    ap.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    if not args.index.is_dir():
        print(f"no index at {args.index}: build one with python -m benchmarks.bench_quality --index-dir DIR",
              file=sys.stderr)
        return 2
    res = measure(args.index, args.queries or list(DEFAULT_QUERIES), args.media)
    return emit(res, render(res), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
