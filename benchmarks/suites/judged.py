"""The judged-query harness: every method of the query planner (and any peer with the
same search shape) on a judged query set, scored at clip level.

Used by the quality suite (``benchmarks.suites.quality``) and by
``python -m benchmarks.bench_quality``, whose docstring describes the steps:

1. **Ingest** (``ensure_index``): the clips under their opaque file names into one
   index, once; the ingest record goes beside it (``<index>.ingest.json``).
2. **Search** (``open_search``, ``evaluate``): every query through every ``METHODS``
   entry; each hit's source maps to a clip id by its file stem.
3. **Measure** (``summarise``, ``benchmarks.metrics``): per method and query kind,
   Recall@1/5/10, MRR, nDCG@10, R1@IoU0.5 and 0.7; negatives apart.
4. **Report** (``render_markdown``, ``write_report``, ``plot``) and the acceptance
   rule (``check_default``).

The pure parts (``load_queries`` to ``render_markdown``, ``run``) need no models; the
real system is imported lazily.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from benchmarks.core import write_json
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
from engine.errors import InputError, NotFoundError

__all__ = [
    "Query",
    "Method",
    "QueryResult",
    "METHODS",
    "METRICS",
    "K",
    "OVERALL",
    "NEGATIVE",
    "SearchFn",
    "clip_id",
    "load_queries",
    "evaluate",
    "ordered_kinds",
    "summarise",
    "render_markdown",
    "check_default",
    "plot",
    "write_report",
    "list_clips",
    "indexed_clips",
    "ensure_index",
    "open_search",
    "select_methods",
    "run",
]

NEGATIVE = "negative"
OVERALL = "overall"
# Kinds in the order the tables show them; kinds not listed follow, sorted.
KIND_ORDER = ("visual", "speech", "ocr", "mixed", "msrvtt")
K = 10
IOU_THRESHOLD = 0.5
IOU_STRICT = 0.7  # the moment-retrieval literature's second threshold (QVHighlights, Charades-STA)
METRICS = ("R@1", "R@5", "R@10", "MRR", "nDCG@10", "R1@IoU0.5", "R1@IoU0.7")
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
        "R1@IoU0.7": r1_at_iou(hits, q.relevant, IOU_STRICT),
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
        if metric.startswith("R1@IoU") and first is not None:
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
    md_path, png_path = out.with_suffix(".md"), out.with_suffix(".png")
    paths = {"json": str(out), "markdown": str(md_path), "plot": str(png_path)}
    write_json(out, {**report, "files": paths}, indent=1)
    md_path.write_text(markdown, encoding="utf-8")
    plot(summary, kinds, png_path)
    return paths


# -- the real system (imported lazily: the tests above run without models) ---------------
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


def ensure_index(clips: Mapping[str, str], index_dir: Path, *, reuse: bool, workers: int,
                 image_encoder: str | None = None) -> dict[str, Any]:
    """Build (or reuse) the benchmark index; returns the ingest record for the report.

    ``image_encoder`` (a registry name) builds a new index with that visual encoder
    instead of the default; a reused index must have been built with it."""
    from api.progress import TerminalProgress
    from engine.config import IndexConfig
    from engine.index import VideoIndex
    from indexer.pipeline import IndexOptions, index_paths

    sidecar = index_dir.with_name(index_dir.name + ".ingest.json")
    exists = (index_dir / "manifest.json").exists()
    if exists and not reuse:
        raise InputError(f"index {index_dir} already exists",
                         hint="pass --reuse-index to use it, or delete the folder to measure a fresh ingest")
    config = IndexConfig(image_encoder=image_encoder) if image_encoder else IndexConfig()
    if exists and image_encoder:
        built_with = VideoIndex.read_config(index_dir)
        if built_with is not None and built_with.image_encoder != image_encoder:
            raise InputError(f"index {index_dir} was built with image encoder {built_with.image_encoder!r}, "
                             f"not {image_encoder!r}", hint="pick another --index-dir")
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
    bars = TerminalProgress(show=True)
    try:
        report = index_paths(sorted(clips.values()), index_dir, config=config, options=options, progress=bars)
    finally:
        bars.close()
    record = {
        "reused": "partial" if exists else False,
        "workers": workers,
        "image_encoder": config.image_encoder,
        "clips": len(clips),
        "options": asdict(options),
        "summary": report.summary(),
        "seconds_total": round(time.perf_counter() - t0, 2),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    write_json(sidecar, record, indent=1)
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


