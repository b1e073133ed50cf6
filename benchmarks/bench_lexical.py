"""Lexical (BM25) benchmark: tantivy build and query latency beside rank-bm25 and bm25s.

    python -m benchmarks.bench_lexical --n 1000000 --queries 100 --out bench-results/lexical.json

What it does, seeded and offline:

1. Builds realistic short segment texts. English words come from a frequency-ordered
   vocabulary of real words (the BERT WordPiece vocabulary shipped with the packaged
   MiniLM model, whole words only; else ``/usr/share/dict/words``), drawn with a
   Zipf-Mandelbrot law over their rank; Chinese segments (``--zh-fraction``) draw
   words from jieba's dictionary by its own counts and are written without spaces,
   so jieba has to segment them back. Each segment has a transcript (8-35 words),
   on-screen text for 30%, visual labels for 60%, and its video's title as metadata
   (videos of ``--video-size`` segments).
2. Builds the tantivy index through ``TantivyIndex.add`` (tokenising included) and
   ``save``; reports build time, merge time, segments, disk size.
3. Query latency, single-threaded, one query at a time, k=10: 2-4 content words
   taken from a random segment's transcript. tantivy over all four fields (the
   serving path), over the transcript only, and with a two-word phrase; rank-bm25
   (``BM25Okapi.get_scores`` + top-k, on the first ``--ref-n`` docs' transcripts:
   it is O(n) Python per query) and bm25s (sparse-matrix BM25, Lucene idf, on the
   first ``--bm25s-n`` transcripts; cannot add or delete incrementally). Where the
   sizes are equal it also reports the top-10 overlap with tantivy's transcript-only
   results, a check at scale that they rank alike.
4. Incremental updates on the built index: add 1,000 docs + save, delete 10 videos +
   save.

The machine running it may be shared: the JSON records the load average before and
after, the CPU and the package versions. Target (issue): tantivy p50 <= 5 ms at 1M.
"""
from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.core import add_out, entry_parser, percentile, time_each, write_json
from benchmarks.machine import loadavg, machine_info
from benchmarks.synthetic import make_corpus, make_queries
from engine.lexical import LexicalDoc, TantivyIndex, tokenize

__all__ = ["BenchConfig", "main", "run"]


@dataclass(frozen=True)
class BenchConfig:
    """Command-line settings (see ``--help``)."""

    n: int = 100_000
    queries: int = 100
    k: int = 10
    seed: int = 0
    ref_n: int = 100_000
    bm25s_n: int | None = None  # None: same as n
    zh_fraction: float = 0.1
    video_size: int = 20
    writer_threads: int = max(1, min(4, os.cpu_count() or 1))
    writer_heap_mb: int = 512
    batch: int = 10_000
    index_dir: str | None = None
    keep: bool = False
    out: str | None = None


# --------------------------------------------------------------------------- measuring


def _latency(fn: Callable[[Any], Any], items: Sequence[Any], warmup: int = 5) -> dict[str, float]:
    times, _ = time_each(fn, items, warmup=warmup)
    arr = np.array(times)
    return {
        "queries": len(times),
        "p50_ms": percentile(arr, 50),
        "p90_ms": percentile(arr, 90),
        "p99_ms": percentile(arr, 99),
        "mean_ms": float(arr.mean()),
        "max_ms": float(arr.max()),
    }


def _overlap(a: Sequence[int], b: Sequence[int]) -> float | None:
    if not a and not b:
        return None
    return len(set(a) & set(b)) / max(len(a), len(b))


# --------------------------------------------------------------------------- run


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Run the benchmark and return the JSON-able report."""
    report: dict[str, Any] = {"config": asdict(cfg), "machine": machine_info()}
    bm25s_n = cfg.n if cfg.bm25s_n is None else min(cfg.bm25s_n, cfg.n)
    ref_n = min(cfg.ref_n, cfg.n)

    t0 = time.perf_counter()
    corpus = make_corpus(cfg.n, cfg.seed, cfg.zh_fraction, cfg.video_size)
    report["corpus"] = {
        "n": cfg.n,
        "generate_s": time.perf_counter() - t0,
        "english_source": corpus.source,
        "chinese_source": "jieba dict.txt (by count)",
        "zh_docs": corpus.zh_docs,
        "field_fill": corpus.field_fill,
        "example": corpus.docs[0].fields,
    }
    queries = make_queries(corpus.docs, cfg.queries, cfg.seed)
    report["query_examples"] = [q for q, _ in queries[:5]]

    tmp_root = None
    if cfg.index_dir:
        index_path = Path(cfg.index_dir)
        if index_path.exists():
            raise SystemExit(f"--index-dir {index_path} exists; pass a new folder")
    else:
        tmp_root = Path(tempfile.mkdtemp(prefix="bench-lexical-"))
        index_path = tmp_root / "idx"
    try:
        # ---- tantivy build
        idx = TantivyIndex(
            index_path,
            create=True,
            writer_heap_bytes=cfg.writer_heap_mb * 1_000_000,
            writer_threads=cfg.writer_threads,
        )
        t0 = time.perf_counter()
        for start in range(0, cfg.n, cfg.batch):
            idx.add(corpus.docs[start : start + cfg.batch])
        add_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        idx.save(1)
        commit_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        idx.close()  # waits for tantivy's background merges
        merge_s = time.perf_counter() - t2
        reader = TantivyIndex(index_path, read_only=True)
        info = reader.info()
        report["tantivy_build"] = {
            "n": cfg.n,
            "add_s (tokenize+index)": add_s,
            "commit_s": commit_s,
            "merge_wait_s": merge_s,
            "total_s": add_s + commit_s + merge_s,
            "docs_per_s": cfg.n / (add_s + commit_s + merge_s) if cfg.n else 0.0,
            "num_segments": info["num_segments"],
            "disk_bytes": info["disk_bytes"],
            "writer_threads": cfg.writer_threads,
            "writer_heap_mb": cfg.writer_heap_mb,
        }

        # ---- tantivy queries
        lat: dict[str, dict[str, Any]] = {}
        tantivy_top: list[list[int]] = []
        lat["tantivy_all_fields"] = {"n": cfg.n, **_latency(lambda q: reader.search(q[0], k=cfg.k), queries)}
        lat["tantivy_transcript"] = {
            "n": cfg.n,
            **_latency(lambda q: reader.search(q[0], k=cfg.k, fields=["transcript"]), queries),
        }
        lat["tantivy_phrase"] = {
            "n": cfg.n,
            **_latency(lambda q: reader.search(q[0], k=cfg.k, phrases=[q[1]]), queries),
        }
        for q, _ in queries:
            tantivy_top.append([h.id for h in reader.search(q, k=cfg.k, fields=["transcript"])])
        empty = sum(1 for t in tantivy_top if not t)
        report["tantivy_queries_without_hits"] = empty
        reader.close()

        # ---- tokens for the in-memory baselines (transcripts only)
        t0 = time.perf_counter()
        tok_n = max(bm25s_n, ref_n)
        tokens = [tokenize(d.fields["transcript"]) for d in corpus.docs[:tok_n]]
        tokenize_s = time.perf_counter() - t0
        report["tokenize_transcripts"] = {"n": tok_n, "s": tokenize_s, "docs_per_s": tok_n / tokenize_s if tokenize_s else 0}
        query_terms = [list(dict.fromkeys(tokenize(q))) for q, _ in queries]

        # ---- bm25s
        try:
            import bm25s
        except ImportError:
            report["bm25s"] = "not installed (pip install bm25s)"
        else:
            t0 = time.perf_counter()
            retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
            retriever.index(tokens[:bm25s_n], show_progress=False)
            build_s = time.perf_counter() - t0
            k = min(cfg.k, bm25s_n)

            def bm25s_search(terms: list[str]) -> list[int]:
                docs, scores = retriever.retrieve([terms], k=k, show_progress=False, n_threads=1)
                return [int(d) for d, s in zip(docs[0], scores[0]) if s > 0]

            lat["bm25s"] = {"n": bm25s_n, "build_s": build_s, **_latency(bm25s_search, query_terms)}
            if bm25s_n == cfg.n:
                # Raw overlap differs where docs tie at the k-th score (each engine
                # breaks ties its own way); tie-aware agreement counts a tantivy hit
                # as right when bm25s scores it at least as high as its own k-th hit.
                overlaps, agree = [], []
                for top, terms in zip(tantivy_top, query_terms):
                    theirs = bm25s_search(terms)
                    o = _overlap(top, theirs)
                    if o is None:
                        continue
                    overlaps.append(o)
                    all_scores = retriever.get_scores(terms)
                    kth = float(np.sort(all_scores)[-k]) if len(all_scores) >= k else 0.0
                    agree.append(np.mean([all_scores[i] >= kth * (1 - 1e-5) and all_scores[i] > 0 for i in top]))
                report["top_k_vs_bm25s"] = {
                    "n": cfg.n,
                    "overlap": float(np.mean(overlaps)) if overlaps else None,
                    "tie_aware_agreement": float(np.mean(agree)) if agree else None,
                }
            del retriever
            gc.collect()

        # ---- rank-bm25
        from rank_bm25 import BM25Okapi

        t0 = time.perf_counter()
        okapi = BM25Okapi(tokens[:ref_n], k1=1.2, b=0.75)
        build_s = time.perf_counter() - t0

        def okapi_search(terms: list[str]) -> list[int]:
            scores = okapi.get_scores(terms)
            k = min(cfg.k, len(scores))
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [int(i) for i in top if scores[i] > 0]

        lat["rank_bm25"] = {"n": ref_n, "build_s": build_s, **_latency(okapi_search, query_terms, warmup=1)}
        del okapi, tokens
        gc.collect()

        report["latency"] = lat

        # ---- incremental updates on the built index
        idx = TantivyIndex(index_path, writer_heap_bytes=cfg.writer_heap_mb * 1_000_000, writer_threads=cfg.writer_threads)
        extra = make_corpus(1000, cfg.seed + 7, cfg.zh_fraction, cfg.video_size).docs
        base_video = cfg.n // cfg.video_size + 1
        extra = [LexicalDoc(id=cfg.n + d.id, video_key=base_video + d.video_key, fields=d.fields) for d in extra]
        t0 = time.perf_counter()
        idx.add(extra)
        idx.save(2)
        add_1k_s = time.perf_counter() - t0
        n_before = idx.count()
        t0 = time.perf_counter()
        for v in range(10):
            idx.delete_video(v)
        idx.save(3)
        delete_s = time.perf_counter() - t0
        report["incremental"] = {
            "add_1000_and_save_s": add_1k_s,
            "delete_10_videos_and_save_s": delete_s,
            "deleted_docs": n_before - idx.count(),
        }
        idx.close()
        report["machine"]["loadavg_end"] = loadavg()
        report["target"] = {
            "tantivy_p50_ms_at_1M_max": 5.0,
            "measured_n": cfg.n,
            "tantivy_all_fields_p50_ms": lat["tantivy_all_fields"]["p50_ms"],
            "met": cfg.n >= 1_000_000 and lat["tantivy_all_fields"]["p50_ms"] <= 5.0,
        }
    finally:
        if tmp_root is not None and not cfg.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)
    return report


def _print_table(report: dict[str, Any]) -> None:
    b = report["tantivy_build"]
    print(f"\ncorpus: n={report['corpus']['n']:,} ({report['corpus']['zh_docs']:,} Chinese), "
          f"words from {report['corpus']['english_source']}")
    print(f"tantivy build: {b['total_s']:.1f} s ({b['docs_per_s']:,.0f} docs/s; add {b['add_s (tokenize+index)']:.1f} s, "
          f"commit {b['commit_s']:.1f} s, merges {b['merge_wait_s']:.1f} s), {b['num_segments']} segments, "
          f"{b['disk_bytes'] / 1e6:.1f} MB on disk")
    print(f"\n{'backend':<22}{'n':>10}{'build s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, row in report["latency"].items():
        build = row.get("build_s")
        build_s = f"{build:.1f}" if build is not None else "-"
        print(f"{name:<22}{row['n']:>10,}{build_s:>10}{row['p50_ms']:>10.2f}{row['p90_ms']:>10.2f}"
              f"{row['p99_ms']:>10.2f}{row['mean_ms']:>10.2f}")
    if "top_k_vs_bm25s" in report:
        agree = report["top_k_vs_bm25s"]
        print(f"\ntop-{report['config']['k']} tantivy(transcript) vs bm25s: overlap {agree['overlap']:.3f}, "
              f"tie-aware agreement {agree['tie_aware_agreement']:.3f}")
    inc = report["incremental"]
    print(f"incremental: add 1,000 + save {inc['add_1000_and_save_s']:.2f} s; "
          f"delete 10 videos ({inc['deleted_docs']} docs) + save {inc['delete_10_videos_and_save_s']:.2f} s")
    t = report["target"]
    print(f"target p50 <= 5 ms at 1M: measured {t['tantivy_all_fields_p50_ms']:.2f} ms at n={t['measured_n']:,}"
          f" -> {'met' if t['met'] else 'not met' if t['measured_n'] >= 1_000_000 else 'n < 1M, not the target size'}")


def main(argv: Sequence[str] | None = None) -> int:
    p = entry_parser("bench_lexical", __doc__.split("\n\n")[0])
    d = BenchConfig()
    p.add_argument("--n", type=int, default=d.n, help="segment docs in the tantivy index")
    p.add_argument("--queries", type=int, default=d.queries)
    p.add_argument("--k", type=int, default=d.k)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--ref-n", type=int, default=d.ref_n, help="docs for rank-bm25 (O(n) Python per query)")
    p.add_argument("--bm25s-n", type=int, default=None, help="docs for bm25s (default: --n)")
    p.add_argument("--zh-fraction", type=float, default=d.zh_fraction)
    p.add_argument("--video-size", type=int, default=d.video_size)
    p.add_argument("--writer-threads", type=int, default=d.writer_threads)
    p.add_argument("--writer-heap-mb", type=int, default=d.writer_heap_mb)
    p.add_argument("--index-dir", default=None, help="build here (a new folder) instead of a temp folder")
    p.add_argument("--keep", action="store_true", help="keep the temp index folder")
    add_out(p, None, "the JSON report")
    a = p.parse_args(argv)
    if a.n < 1 or a.queries < 1 or a.k < 1 or a.ref_n < 1:
        p.error("--n, --queries, --k and --ref-n must be >= 1")
    cfg = BenchConfig(
        n=a.n, queries=a.queries, k=a.k, seed=a.seed, ref_n=a.ref_n, bm25s_n=a.bm25s_n,
        zh_fraction=a.zh_fraction, video_size=a.video_size, writer_threads=a.writer_threads,
        writer_heap_mb=a.writer_heap_mb, index_dir=a.index_dir, keep=a.keep, out=None if a.out is None else str(a.out),
    )
    report = run(cfg)
    _print_table(report)
    if a.out:
        write_json(a.out, report)
        print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
