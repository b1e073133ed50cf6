"""End-to-end search latency over a large synthetic index (query encoding included).

    python -m benchmarks.bench_search_latency --n 1000000 --queries 200 \
        --index-dir bench-results/latency-index --out bench-results/search-latency.json

Builds (or, with ``--reuse``, reopens; with ``--resume``, goes on building) a real vidseek index of ``n`` synthetic
segments in videos of 50: clustered per-modality vectors (``benchmarks.synthetic.
SyntheticJoint``, blocks dropped at random as missing modalities) and Zipfian segment
texts (``benchmarks.synthetic.make_corpus``) for BM25. Queries are real sentences (the intent
examples), run one at a time through ``query.planner.Searcher`` with the real
encoders and intent classifier, after a warm-up. Reports p50/p90/p99 of the whole
call and of its parts (query encoding, intent, vector search, BM25).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.core import PUBLIC_QUERIES, add_out, entry_parser, percentile, write_json

__all__ = ["build", "measure", "main"]

VIDEO_SIZE = 50


CORPUS_BLOCK = 1_000_000  # segments whose texts are drawn at once (a 10M corpus at once: several GB)
PROGRESS = "build-progress.json"  # in the index folder: how far a build got, and its times so far


def _corpus_block(b: int, n: int, seed: int):
    """The texts of segments ``b * CORPUS_BLOCK`` onwards (at most CORPUS_BLOCK of
    them); block 0 is ``make_corpus(n, seed)`` itself, so an index of up to 1M
    segments has the texts it always had."""
    from benchmarks.synthetic import make_corpus

    lo = b * CORPUS_BLOCK
    return make_corpus(min(CORPUS_BLOCK, n - lo), seed=seed if b == 0 else seed + 7919 * b, video_size=VIDEO_SIZE)


def build(index_dir: Path, n: int, *, shards: int, seed: int = 0, chunk: int = 0, factory: str | None = None,
          resume: bool = False) -> dict:
    """Commit ``n`` synthetic segments, then replay them into the vectors and BM25.

    ``chunk`` > 0 replays and settles every ``chunk`` segments, as a long-running writer
    does, so the catalog never holds more than ``chunk`` segments' pending vector rows
    (at 10M, all of them at once would be 61 GB of float32 rows). ``factory`` sets the
    vector store's ``approx_factory`` (``compressed`` keeps the refine rows on disk).
    ``resume`` goes on with a build that was stopped (killed, or out of time): it
    starts after the last video in the catalog, and the times it reports add up every
    run's, as recorded in ``build-progress.json`` at each settle.
    """
    from engine.catalog import MODALITIES, NewSegment, NewVideo
    from engine.config import IndexConfig
    from engine.index import VideoIndex
    from engine.models.registry import get_image_encoder, get_text_encoder
    from tqdm.auto import tqdm

    from benchmarks.synthetic import SyntheticJoint

    config = IndexConfig(shards=shards) if factory is None else IndexConfig(shards=shards, approx_factory=factory)
    enc = {"text": get_text_encoder(config.text_encoder).info,
           "image": get_image_encoder(config.image_encoder).info}
    gen = SyntheticJoint(dim=4 * 384, block=384, seed=seed)
    progress_file = index_dir / PROGRESS
    done = {"catalog_seconds": 0.0, "index_seconds": 0.0, "settle_seconds": 0.0, "runs": 0}
    if resume:
        if not progress_file.is_file():
            raise SystemExit(f"{index_dir}: no {PROGRESS}, nothing to resume (build without --resume)")
        done = json.loads(progress_file.read_text())
        if (done["n"], done["chunk"], done["approx_factory"]) != (n, chunk, config.approx_factory):
            raise SystemExit(f"{index_dir} was started with n={done['n']}, chunk={done['chunk']}, "
                             f"factory={done['approx_factory']}: resume with the same")
    t0 = time.perf_counter()
    idx = VideoIndex.open(index_dir, writer=True, config=config, encoders=enc)
    n_videos = (n + VIDEO_SIZE - 1) // VIDEO_SIZE
    first = idx.catalog.count_videos() if resume else 0
    t_sync = t_settle = 0.0

    settled = done.get("segments_settled", 0)

    def record(committed: int) -> None:
        elapsed = time.perf_counter() - t0
        write_json(progress_file, {
            "n": n, "chunk": chunk, "approx_factory": config.approx_factory, "segments_committed": committed,
            "segments_settled": settled,
            "runs": done["runs"] + 1,
            "catalog_seconds": done["catalog_seconds"] + elapsed - t_sync - t_settle,
            "index_seconds": done["index_seconds"] + t_sync, "settle_seconds": done["settle_seconds"] + t_settle})

    try:
        since = 0
        block, corpus = -1, None
        for v in tqdm(range(first, n_videos), desc="catalog", unit="video", disable=not sys.stderr.isatty()):
            lo, hi = v * VIDEO_SIZE, min(n, (v + 1) * VIDEO_SIZE)
            if lo // CORPUS_BLOCK != block:
                block = lo // CORPUS_BLOCK
                corpus = _corpus_block(block, n, seed)
            base = block * CORPUS_BLOCK
            joint = gen.batch(lo, hi - lo)
            segs = []
            for j, i in enumerate(range(lo, hi)):
                d = corpus.docs[i - base].fields
                vecs = {}
                for b, m in enumerate(MODALITIES):
                    blk = joint[j, b * 384 : (b + 1) * 384]
                    norm = float(np.linalg.norm(blk))
                    if norm > 0:
                        vecs[m] = (blk / norm).astype(np.float32)
                vecs.setdefault("visual", joint[j, :384] / max(float(np.linalg.norm(joint[j, :384])), 1e-9))
                segs.append(NewSegment(
                    start=2.0 * j, end=2.0 * j + 2.0, transcript=d.get("transcript", ""), ocr_text=d.get("ocr", ""),
                    labels=[[w, 0.5] for w in d.get("labels", "").split()], vectors=vecs,
                ))
            idx.catalog.add_video(NewVideo(
                source=f"synthetic/video{v:07d}.mp4", content_hash=f"synthetic-{seed}-{v}",
                title=corpus.docs[lo - base].fields["metadata"], duration=2.0 * (hi - lo), width=1280, height=720,
                fps=25.0, shots=[(0.0, 2.0 * (hi - lo))], segments=segs,
            ))
            since += hi - lo
            if chunk and since >= chunk and hi < n:
                t_sync, t_settle = _settle(idx, t_sync, t_settle)
                settled = hi
                record(hi)
                since = 0
                print(f"{time.strftime('%H:%M:%S')} {hi:,} segments committed, replayed and settled "
                      f"({time.perf_counter() - t0:.0f} s this run)", file=sys.stderr, flush=True)
            elif v % 200 == 0:  # a stopped build loses at most this much of its timing
                record(hi)
        t_catalog = time.perf_counter() - t0 - t_sync - t_settle
        # The last replay, and the settling of the pending vector rows that waited for its save
        # (as a writer does once VECTOR_RETENTION_S has passed, engine.catalog.schema_vectors);
        # then the pages are reclaimed.
        t_sync, t_settle = _settle(idx, t_sync, t_settle)
        t2 = time.perf_counter()
        idx.catalog.reclaim_space()
        t_settle += time.perf_counter() - t2
        settled = n
        record(n)
        info = idx.info()
    finally:
        idx.close()  # a stopped build leaves its writer lock, and the op log, as a killed one would
    from benchmarks.bench_bytes import index_bytes

    import resource

    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"n": n, "videos": n_videos, "approx_factory": config.approx_factory, "chunk": chunk,
            "runs": done["runs"] + 1, "peak_rss_gib": round(peak_gib, 2),
            "catalog_seconds": round(done["catalog_seconds"] + t_catalog, 1),
            "index_seconds": round(done["index_seconds"] + t_sync, 1),
            "settle_seconds": round(done["settle_seconds"] + t_settle, 1), "vectors": info["vectors"].get("count"),
            "lexical_docs": info["lexical"]["docs"], "bytes": index_bytes(index_dir)}


def _settle(idx, t_sync: float, t_settle: float) -> tuple[float, float]:
    """One replay (vectors + BM25, saved) and the prune of the rows it settled."""
    t = time.perf_counter()
    idx.sync()
    t_sync += time.perf_counter() - t
    t = time.perf_counter()
    idx.prune_vectors(retention_s=0)
    return t_sync, t_settle + time.perf_counter() - t


def measure(index_dir: Path, queries: list[str], *, warmup: int = 20, intent_clf=None, fast_intent=None) -> dict:
    """Time ``queries[warmup:]`` one at a time (after ``queries[:warmup]``), whole and by part."""
    from engine.index import VideoIndex
    from query.planner import SearchOptions, Searcher
    from query.retrieve import dense_runs

    idx = VideoIndex.open(index_dir)
    s = Searcher(idx, intent=intent_clf, fast_intent=fast_intent)
    s.warm_up()
    opts = SearchOptions(k=10)
    for q in queries[:warmup]:
        s.search(q, options=opts)
    from query.parse import parse

    total, encode, intent, dense, bm25 = [], [], [], [], []
    heads: dict[str, int] = {}
    for q in queries[warmup:]:
        t = time.perf_counter()
        s.search(q, options=opts)
        total.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        blocks = s._query_blocks(q, None)
        encode.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        if s.fast_intent is not None:  # what search() does: the cascade over the query vector
            it = s.intent.classify_cascade(parse(q), s.fast_intent, blocks["speech"])
        else:
            it = s.intent.classify(q)
        intent.append((time.perf_counter() - t) * 1000)
        heads[it.head or s.intent.encoder_name] = heads.get(it.head or s.intent.encoder_name, 0) + 1
        plan, _ = s.plan(q, options=opts)  # untimed: the weights and dense parameters search() uses
        t = time.perf_counter()
        dense_runs(idx, plan, blocks)
        dense.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        idx.lexical.search(q, k=opts.candidates)
        bm25.append((time.perf_counter() - t) * 1000)
    idx.close()

    def row(xs: list[float]) -> dict:
        return {"p50": round(percentile(xs, 50), 2), "p90": round(percentile(xs, 90), 2),
                "p99": round(percentile(xs, 99), 2),
                "mean": round(statistics.fmean(xs), 2)}

    return {"queries": len(queries) - warmup, "warmup": warmup, "intent_heads": heads, "search_ms": row(total), "encode_ms": row(encode),
            "intent_ms": row(intent), "dense_ms": row(dense), "bm25_ms": row(bm25)}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.machine import machine_info
    from query.intent import load_examples

    p = entry_parser("bench_search_latency", __doc__)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--index-dir", type=Path, default=Path("bench-results/latency-index"))
    p.add_argument("--reuse", action="store_true", help="reuse an index built by an earlier run")
    p.add_argument("--resume", action="store_true",
                   help="go on with a build that was stopped (same --n, --chunk, --factory), then as usual")
    p.add_argument("--build-only", action="store_true", help="build (and report its bytes per segment), no queries")
    p.add_argument("--chunk", type=int, default=0, help="replay and settle every N segments while building (0: once)")
    p.add_argument("--factory", default=None, help="the vector store's approx_factory (default: the config's)")
    add_out(p, "bench-results/search-latency.json")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    built = None
    if not args.reuse:
        if (args.index_dir / "manifest.json").exists() and not args.resume:
            print(f"{args.index_dir} exists: pass --reuse or remove it", file=sys.stderr)
            return 2
        built = build(args.index_dir, args.n, shards=args.shards, chunk=args.chunk, factory=args.factory,
                      resume=args.resume)
        b = built["bytes"]["per_segment"]
        print(f"built {args.n:,} segments: B/segment catalog {b['catalog']} + vectors {b['vectors']} + lexical "
              f"{b['lexical']} + thumbnails {b['thumbnails']} = {b['total']}")
        if args.build_only:
            write_json(args.out, {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "build": built})
            return 0
    # Queries the intent heads never saw: the intent examples' held-out split (every
    # 5th per intent) and the public judged queries. The heads are fitted on the
    # training split only, as `python -m query.intent --eval` does; fitted on every
    # example (the product's heads), the fast head is over-confident on its own
    # training sentences and would skip the E5 pass more often than on new queries.
    from query.intent import IntentClassifier, split_examples

    train, held = split_examples(load_examples(), 5)
    queries = [e.text for e in held]
    if PUBLIC_QUERIES.exists():
        queries += [json.loads(line)["query"] for line in PUBLIC_QUERIES.read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(1)
    queries = [queries[i] for i in rng.permutation(len(queries))][: args.queries]
    warm = [e.text for e in train[:20]]
    strong = IntentClassifier(encoder_name="e5-multilingual", examples=train).fit()
    fast = IntentClassifier(encoder_name="minilm", examples=train).fit()
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "build": built,
           "latency": measure(args.index_dir, warm + queries, warmup=len(warm), intent_clf=strong, fast_intent=fast)}
    write_json(args.out, res)
    lat = res["latency"]
    print(f"n={args.n if built else '(reused)'} queries={lat['queries']}")
    print("| part | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
    for k in ("search_ms", "encode_ms", "intent_ms", "dense_ms", "bm25_ms"):
        print(f"| {k[:-3]} | {lat[k]['p50']} | {lat[k]['p90']} | {lat[k]['p99']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
