"""Retrieval-quality benchmark: every method of the query planner on a judged query set.

    python -m benchmarks.bench_quality --media ../shared/media \\
        --queries ../shared/bench/queries-public.jsonl \\
        --index-dir bench-results/quality-index --out bench-results/quality.json \\
        [--reuse-index] [--workers 2] [--methods bm25,dense,default] [--check-default]

What it does:

1. **Ingest.** Indexes every clip of ``--media`` under its opaque file name (no
   metadata sidecar, so nothing but the content can match) into ``--index-dir``,
   once. With ``--reuse-index`` an existing index that holds every clip is used as is
   (an incomplete one is completed: the pipeline skips what it holds). The ingest
   summary (media seconds, wall seconds, speed x real time, seconds per stage) goes
   into the JSON and beside the index (``<index-dir>.ingest.json``) so a reuse still
   reports how the index was built.
2. **Search.** Runs every query through every method (``METHODS``): BM25 alone, dense
   alone, RRF and convex fusion without the reranker (convex at dense shares 0.5,
   0.7, 0.9), both fusions with the reranker, and the planner's defaults. The single
   retrievers run without the reranker too: the reranker mixes in dense cosines
   (modality agreement), which would make "BM25 alone" a hybrid. Each hit's source
   maps to a clip id by its file stem.
3. **Measure** (``benchmarks.metrics``): per method and query kind, Recall@1/5/10,
   MRR, nDCG@10 at clip level (duplicates of one clip count once, at their best
   rank), R1@IoU0.5 where the ground truth has a window, and the number of queries.
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
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from benchmarks.machine import machine_info
from benchmarks.metrics import (
    RankedMoment,
    Relevant,
    dedupe,
    first_relevant_rank,
    mean_defined,
    ndcg_at_k,
    r1_at_iou,
    recall_at_k,
    reciprocal_rank,
    top1_score,
)
from engine.errors import InputError, NotFoundError, VidseekError

__all__ = [
    "Query",
    "Method",
    "QueryResult",
    "METHODS",
    "METRICS",
    "SearchFn",
    "load_queries",
    "evaluate",
    "summarise",
    "render_markdown",
    "check_default",
    "machine_info",
    "write_report",
    "default_paths",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
NEGATIVE = "negative"
OVERALL = "overall"
# Kinds in the order the tables show them; kinds not listed follow, sorted.
KIND_ORDER = ("visual", "speech", "ocr", "mixed", "msrvtt")
K = 10
IOU_THRESHOLD = 0.5
METRICS = ("R@1", "R@5", "R@10", "MRR", "nDCG@10", "R1@IoU0.5")
DEFAULT_METHOD = "default"
SINGLE_RETRIEVERS = ("bm25", "dense")
_EPS = 1e-9  # MRR comparisons: equal within float noise is "not worse"


# -- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """One judged query (a line of the queries JSONL)."""

    qid: str
    text: str
    kind: str
    relevant: tuple[Relevant, ...]

    @property
    def is_negative(self) -> bool:
        return self.kind == NEGATIVE

    @property
    def relevant_clips(self) -> set[str]:
        return {r.clip for r in self.relevant}


def _seconds(v: Any) -> float | None:
    return None if v is None else float(v)


def load_queries(path: str | Path) -> list[Query]:
    """Read and validate the queries file (see shared/bench/README.md)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"queries file {path} does not exist",
                            hint="pass --queries PATH (default: ../shared/bench/queries-public.jsonl)")
    out: list[Query] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            d = json.loads(line)
            qid, text, kind = str(d["qid"]), str(d["query"]), str(d["kind"])
            rel = tuple(Relevant(str(r["clip"]), _seconds(r.get("start")), _seconds(r.get("end")))
                        for r in d.get("relevant", []))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{where}: not a query line ({type(e).__name__}: {e})",
                             hint='expected {"qid", "query", "kind", "relevant": [{"clip", "start"?, "end"?}]}') from e
        except InputError as e:
            raise InputError(f"{where}: {e.message}", hint=e.hint) from e
        if qid in seen:
            raise InputError(f"{where}: duplicate qid {qid!r}")
        if (kind == NEGATIVE) != (not rel):
            raise InputError(f"{where}: query {qid} of kind {kind!r} has {len(rel)} relevant clips",
                             hint="negative queries have no relevant clip; every other kind has at least one")
        seen.add(qid)
        out.append(Query(qid, text, kind, rel))
    if not out:
        raise InputError(f"{path} holds no queries")
    return out


@dataclass(frozen=True)
class Method:
    """A named search configuration: keyword arguments of ``query.planner.SearchOptions``
    (``k`` is added by the harness unless given)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


METHODS: tuple[Method, ...] = (
    Method("bm25", {"retrievers": ("bm25",), "rerank": False}),
    Method("dense", {"retrievers": ("dense",), "rerank": False}),
    Method("rrf", {"fusion": "rrf", "rerank": False}),
    Method("convex@0.5", {"fusion": "convex", "dense_share": 0.5, "rerank": False}),
    Method("convex@0.7", {"fusion": "convex", "dense_share": 0.7, "rerank": False}),
    Method("convex@0.9", {"fusion": "convex", "dense_share": 0.9, "rerank": False}),
    Method("rrf+rerank", {"fusion": "rrf", "rerank": True}),
    Method("convex+rerank", {"fusion": "convex", "rerank": True}),
    Method(DEFAULT_METHOD, {}),  # SearchOptions() as a user gets it
)


class HitLike(Protocol):
    source: str
    start: float
    end: float
    score: float


class ResponseLike(Protocol):
    hits: Sequence[HitLike]
    intent: dict
    took_ms: float


# (query text, method) -> a response shaped like query.planner.SearchResponse.
SearchFn = Callable[[str, Method], ResponseLike]


# -- evaluation --------------------------------------------------------------------------
def clip_id(source: str) -> str:
    """Clip id of a hit: the file stem of its source (the media's opaque names)."""
    return Path(source).stem


@dataclass
class QueryResult:
    """One query under one method: what came back and how it scored."""

    qid: str
    kind: str
    method: str
    query: str
    top5: list[str]  # distinct clip ids, best first
    first_relevant_rank: int | None  # 1-based among distinct clips; None: not in the top K
    metrics: dict[str, float | None]
    top1: dict[str, Any] | None  # clip, start, end, score of the top hit
    took_ms: float
    intent: str | None


def score_query(q: Query, method: str, hits: Sequence[RankedMoment], took_ms: float,
                intent: str | None) -> QueryResult:
    """Metrics of one ranked list against one query's ground truth."""
    ids = [h.clip for h in hits]
    rel = q.relevant_clips
    metrics: dict[str, float | None] = {
        "R@1": recall_at_k(ids, rel, 1),
        "R@5": recall_at_k(ids, rel, 5),
        "R@10": recall_at_k(ids, rel, 10),
        "MRR": reciprocal_rank(ids, rel, k=K),
        "nDCG@10": ndcg_at_k(ids, rel, 10),
        "R1@IoU0.5": r1_at_iou(hits, q.relevant, IOU_THRESHOLD),
        "top1_score": top1_score(hits),
    }
    distinct = dedupe(ids)
    top1 = None
    if hits:
        h = hits[0]
        top1 = {"clip": h.clip, "start": round(h.start, 3), "end": round(h.end, 3), "score": round(h.score, 6)}
    return QueryResult(
        qid=q.qid, kind=q.kind, method=method, query=q.text, top5=distinct[:5],
        first_relevant_rank=first_relevant_rank(ids, rel) if rel else None,
        metrics=metrics, top1=top1, took_ms=round(float(took_ms), 3), intent=intent,
    )


def evaluate(queries: Sequence[Query], methods: Sequence[Method], search: SearchFn,
             progress: Callable[[str], None] | None = None) -> list[QueryResult]:
    """Run every query through every method; score the top ``K`` hits."""
    out: list[QueryResult] = []
    for m in methods:
        for q in queries:
            try:
                resp = search(q.text, m)
            except Exception as e:
                # Keep the original error; say which query and method raised it.
                e.add_note(f"while running query {q.qid} ({q.text!r}) with method {m.name!r}")
                raise
            hits = [RankedMoment(clip_id(h.source), float(h.start), float(h.end), float(h.score))
                    for h in list(resp.hits)[:K]]
            intent = resp.intent.get("label") if isinstance(resp.intent, dict) else None
            out.append(score_query(q, m.name, hits, resp.took_ms, intent))
        if progress:
            progress(f"{m.name}: {len(queries)} queries done")
    return out


def ordered_kinds(queries: Iterable[Query]) -> list[str]:
    """Non-negative kinds present, in table order."""
    present = {q.kind for q in queries if not q.is_negative}
    return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))


def _aggregate(rows: Sequence[QueryResult]) -> dict[str, Any]:
    agg: dict[str, Any] = {"n": len(rows)}
    for name in METRICS:
        # Unrounded: --check-default compares these, and ties must be real ties.
        agg[name] = mean_defined(r.metrics[name] for r in rows)
    agg["n_iou"] = sum(1 for r in rows if r.metrics["R1@IoU0.5"] is not None)
    return agg


def summarise(queries: Sequence[Query], results: Sequence[QueryResult],
              methods: Sequence[Method]) -> dict[str, Any]:
    """Per method: per kind and overall means, negatives apart, latency."""
    kinds = ordered_kinds(queries)
    out: dict[str, Any] = {}
    for m in methods:
        rows = [r for r in results if r.method == m.name]
        pos = [r for r in rows if r.kind != NEGATIVE]
        neg = [r for r in rows if r.kind == NEGATIVE]
        by_kind = {k: _aggregate([r for r in pos if r.kind == k]) for k in kinds}
        by_kind[OVERALL] = _aggregate(pos)
        neg_top = mean_defined(r.metrics["top1_score"] for r in neg)
        pos_top = mean_defined(r.metrics["top1_score"] for r in pos)
        took = [r.took_ms for r in rows]
        out[m.name] = {
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in m.options.items()},
            "kinds": by_kind,
            "negative": {
                "n": len(neg),
                "mean_top1_score": round(neg_top, 6) if neg_top is not None else None,
                "n_no_hits": sum(1 for r in neg if r.top1 is None),
                "positive_mean_top1_score": round(pos_top, 6) if pos_top is not None else None,
            },
            "took_ms": {
                "p50": round(statistics.median(took), 2) if took else None,
                "mean": round(statistics.fmean(took), 2) if took else None,
            },
        }
    return out


def check_default(summary: Mapping[str, Any], kinds: Sequence[str]) -> list[str]:
    """The acceptance rule; returns one line per violation (empty: it holds)."""
    missing = [m for m in (DEFAULT_METHOD, *SINGLE_RETRIEVERS) if m not in summary]
    if missing:
        raise InputError(f"--check-default needs the methods {missing}, which were not run",
                         hint="drop --methods or include default, bm25 and dense")
    failures: list[str] = []

    def mrr(method: str, kind: str) -> float | None:
        return summary[method]["kinds"][kind]["MRR"]

    for kind in [*kinds, OVERALL]:
        d = mrr(DEFAULT_METHOD, kind)
        singles = [(mrr(s, kind), s) for s in SINGLE_RETRIEVERS if mrr(s, kind) is not None]
        if d is None or not singles:
            continue
        best, name = max(singles)
        if kind == OVERALL and not d > best + _EPS:
            failures.append(f"overall: default MRR {d:.4f} is not better than {name} {best:.4f}")
        elif kind != OVERALL and d < best - _EPS:
            failures.append(f"{kind}: default MRR {d:.4f} is worse than {name} {best:.4f}")
    return failures


# -- reporting ---------------------------------------------------------------------------
def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_markdown(summary: Mapping[str, Any], kinds: Sequence[str], queries: Sequence[Query]) -> str:
    """One table per metric (methods as rows, kinds as columns), then negatives and latency."""
    cols = [*kinds, OVERALL]
    counts = {k: sum(1 for q in queries if q.kind == k) for k in kinds}
    counts[OVERALL] = sum(1 for q in queries if not q.is_negative)
    n_neg = sum(1 for q in queries if q.is_negative)
    lines = [
        f"Queries: {', '.join(f'{k} {counts[k]}' for k in kinds)}; {n_neg} negative. "
        f"Clip level, top {K}; negatives excluded from every mean below.",
        "",
    ]
    first = next(iter(summary.values()), None)
    for metric in METRICS:
        header = cols
        if metric == "R1@IoU0.5" and first is not None:
            # Few queries carry a window: show how many each column averages over.
            header = [f"{c} (n={first['kinds'][c]['n_iou']})" for c in cols]
        lines.append(f"### {metric}")
        lines.append("")
        lines.append("| method | " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for name, s in summary.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(s["kinds"][c][metric]) for c in cols) + " |")
        lines.append("")
    lines.append(f"### Negatives ({n_neg} queries) and latency")
    lines.append("")
    lines.append("| method | mean top-1 score, negatives | mean top-1 score, positives | negatives with no hit "
                 "| p50 ms | mean ms |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        neg, took = s["negative"], s["took_ms"]
        lines.append(f"| {name} | {_fmt(neg['mean_top1_score'])} | {_fmt(neg['positive_mean_top1_score'])} "
                     f"| {neg['n_no_hits']} | {took['p50']} | {took['mean']} |")
    lines.append("")
    return "\n".join(lines)


def plot(summary: Mapping[str, Any], kinds: Sequence[str], path: Path, metric: str = "MRR") -> None:
    """Grouped bars: ``metric`` per kind (and overall), one bar per method."""
    import matplotlib

    matplotlib.use("Agg")  # no display on benchmark machines
    import matplotlib.pyplot as plt
    import numpy as np

    cols = [*kinds, OVERALL]
    names = list(summary)
    x = np.arange(len(cols))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(9.0, 1.6 * len(cols) + 2.0), 4.8))
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        vals = [summary[name]["kinds"][c][metric] or 0.0 for c in cols]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=name, color=cmap(i % 10))
    first = summary[names[0]]["kinds"] if names else {}
    ax.set_xticks(x, [f"{c}\n(n={first[c]['n']})" if c in first else c for c in cols])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per query kind and method (top {K}, clip level)")
    # Outside the axes: inside, the legend hides the tallest bars.
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out: Path, report: dict[str, Any], markdown: str, summary: Mapping[str, Any],
                 kinds: Sequence[str]) -> dict[str, str]:
    """JSON at ``out``, Markdown and PNG beside it; returns the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    md_path, png_path = out.with_suffix(".md"), out.with_suffix(".png")
    paths = {"json": str(out), "markdown": str(md_path), "plot": str(png_path)}
    report = {**report, "files": paths}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    md_path.write_text(markdown, encoding="utf-8")
    plot(summary, kinds, png_path)
    return paths


# -- the real system (imported lazily: the tests above run without models) ---------------
def default_paths() -> tuple[Path, Path]:
    """Default media folder and queries file: ``$VIDSEEK_SHARED_MEDIA`` or
    ``<repo>/../shared/media``, and ``<repo>/../shared/bench/queries-public.jsonl``."""
    shared = REPO_ROOT.parent / "shared"
    env = os.environ.get("VIDSEEK_SHARED_MEDIA")
    media = Path(env) if env else shared / "media"
    return media, shared / "bench" / "queries-public.jsonl"


def list_clips(media_dir: Path) -> dict[str, str]:
    """Clip id (file stem) -> absolute path, for the media files in ``media_dir``."""
    from indexer.pipeline import discover

    if not media_dir.is_dir():
        raise NotFoundError(f"media folder {media_dir} does not exist",
                            hint="pass --media DIR (default: ../shared/media next to the repository)")
    sources, _ = discover([str(media_dir.resolve())])
    clips: dict[str, str] = {}
    for s in sources:
        cid = clip_id(s)
        if cid in clips:
            raise InputError(f"two media files share the clip id {cid!r}: {clips[cid]} and {s}",
                             hint="clip ids are file stems; rename one")
        clips[cid] = s
    if not clips:
        raise NotFoundError(f"no media files in {media_dir}")
    return clips


def indexed_clips(index_dir: Path) -> set[str]:
    """Clip ids of the videos an existing index holds."""
    from engine.index import VideoIndex

    idx = VideoIndex.open(index_dir)
    try:
        return {clip_id(v.source) for v in idx.catalog.list_videos(limit=1_000_000)}
    finally:
        idx.close()


def ensure_index(clips: Mapping[str, str], index_dir: Path, *, reuse: bool, workers: int) -> dict[str, Any]:
    """Build (or reuse) the benchmark index; returns the ingest record for the report."""
    from indexer.pipeline import IndexOptions, index_paths

    sidecar = index_dir.with_name(index_dir.name + ".ingest.json")
    exists = (index_dir / "manifest.json").exists()
    if exists and not reuse:
        raise InputError(f"index {index_dir} already exists",
                         hint="pass --reuse-index to use it, or delete the folder to measure a fresh ingest")
    if exists:
        missing = sorted(set(clips) - indexed_clips(index_dir))
        if not missing:
            built = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else None
            return {"reused": True, "built": built}
        print(f"index {index_dir} lacks {len(missing)} clips; completing it", file=sys.stderr)
    elif index_dir.exists() and any(index_dir.iterdir()):
        raise InputError(f"{index_dir} exists and is not a vidseek index", hint="pick another --index-dir")
    options = IndexOptions(workers=workers)
    t0 = time.perf_counter()
    report = index_paths(sorted(clips.values()), index_dir, options=options, show_progress=True)
    record = {
        "reused": "partial" if exists else False,
        "workers": workers,
        "clips": len(clips),
        "options": asdict(options),
        "summary": report.summary(),
        "seconds_total": round(time.perf_counter() - t0, 2),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    sidecar.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def open_search(index_dir: Path) -> tuple[SearchFn, Callable[[], None], float]:
    """A ``SearchFn`` over the real planner, its closer, and the seconds the first
    (model-loading) search took, so per-query timings exclude the warm-up."""
    from engine.index import VideoIndex
    from query.planner import Searcher, SearchOptions

    index = VideoIndex.open(index_dir)
    searcher = Searcher(index)

    def search(text: str, method: Method) -> ResponseLike:
        return searcher.search(text, options=SearchOptions(**{"k": K, **method.options}))

    t0 = time.perf_counter()
    search("warm up the encoders", METHODS[-1])
    return search, index.close, time.perf_counter() - t0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    media, queries = default_paths()
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_quality", description=__doc__.split("\n")[0])
    p.add_argument("--media", type=Path, default=media, help=f"folder of clips (default {media})")
    p.add_argument("--queries", type=Path, default=queries, help=f"judged queries JSONL (default {queries})")
    p.add_argument("--index-dir", type=Path, default=REPO_ROOT / "bench-results" / "quality-index")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results" / "quality.json")
    p.add_argument("--reuse-index", action="store_true", help="use an existing index that holds every clip")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="ingest worker processes")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated subset of: {', '.join(m.name for m in METHODS)} (default all)")
    p.add_argument("--check-default", action="store_true",
                   help="exit 1 if the default method loses to BM25 or dense by MRR (see module docstring)")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return args


def select_methods(spec: str | None) -> list[Method]:
    """``--methods`` as Method objects, in the given order."""
    if spec is None:
        return list(METHODS)
    by_name = {m.name: m for m in METHODS}
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise InputError(f"unknown methods {unknown}. Supported: {list(by_name)}")
    return [by_name[n] for n in names]


def run(queries: Sequence[Query], methods: Sequence[Method], search: SearchFn, *,
        check: bool = False, extra: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], str, list[str]]:
    """Evaluate and summarise: (JSON report, Markdown, acceptance-rule failures).
    Injecting ``search`` lets tests drive the whole harness with a fake."""
    results = evaluate(queries, methods, search, progress=lambda s: print(s, file=sys.stderr))
    summary = summarise(queries, results, methods)
    kinds = ordered_kinds(queries)
    names = {m.name for m in methods}
    failures = check_default(summary, kinds) if check or {DEFAULT_METHOD, *SINGLE_RETRIEVERS} <= names else []
    markdown = render_markdown(summary, kinds, queries)
    report: dict[str, Any] = {
        "benchmark": "quality",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "k": K,
        "iou_threshold": IOU_THRESHOLD,
        "kinds": kinds,
        "queries": {"n": len(queries), "by_kind": {k: sum(1 for q in queries if q.kind == k)
                                                    for k in [*kinds, NEGATIVE]}},
        "methods": [{"name": m.name, "options": summary[m.name]["options"]} for m in methods],
        "conventions": (
            "clip level (a clip counts once, at its best rank); list order breaks ties; negatives (no relevant "
            "clip) excluded from every mean and reported as the mean top-1 score; overall = all non-negative "
            "queries; R1@IoU0.5 only over queries with a ground-truth window (a top hit on a windowless "
            "relevant clip scores 0 there)"
        ),
        **(extra or {}),
        "summary": summary,
        "check_default": {"ok": not failures, "failures": failures},
        "per_query": [asdict(r) for r in results],
    }
    return report, markdown, failures


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        methods = select_methods(args.methods)
        queries = load_queries(args.queries)
        clips = list_clips(args.media)
        unknown = sorted({r.clip for q in queries for r in q.relevant} - set(clips))
        if unknown:
            raise InputError(f"the queries name clips that are not in {args.media}: {unknown}",
                             hint="point --media at the folder the queries were judged on")
        ingest = ensure_index(clips, args.index_dir, reuse=args.reuse_index, workers=args.workers)
        missing = sorted(set(clips) - indexed_clips(args.index_dir))
        if missing:
            print(f"warning: {len(missing)} clips are not in the index (see ingest failures): {missing}",
                  file=sys.stderr)
        machine = machine_info()
        search, close, warmup_s = open_search(args.index_dir)
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
            report, markdown, failures = run(queries, methods, search, check=args.check_default, extra=extra)
        finally:
            close()
        report["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        paths = write_report(args.out, report, markdown, report["summary"], report["kinds"])
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
