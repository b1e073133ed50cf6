"""Vidseek on a local Ray cluster that this benchmark starts itself: a head node (no
CPU slots: the driver, the router) and worker "nodes" (separate raylets with bounded
CPU slots) on this one machine.

    python -m benchmarks.bench_ray --parts ingest,serve,failure --media ../shared/media \
        --clips 16 --n 100000 --out bench-results/ray.json

- **ingest**: ``index_paths`` with 1 and 2 worker processes against ``index_paths_ray``
  on 1 and 2 worker nodes of 1 CPU slot each (the same core count), over the first
  ``--clips`` files of ``--media`` (0: all): wall seconds, x real time, Ray's overhead
  (Ray wall / single-process wall - 1) and the CPU seconds each node's processes used.
- **serve**: an index of ``--n`` synthetic segments (``bench_search_latency.build``,
  reused when ``--index-dir`` holds one), queries run one at a time (p50/p99) and by
  ``--clients`` threads at once (searches a second): the single-process ``Searcher``
  against ``ShardedSearcher`` with the ``--layouts`` (groups x replicas; default 1 x 1,
  2, 4 and 2 and 4 x 1); and the fan-out hops (the router's ``search_vectors`` and its
  two-round BM25 ``lexical_search`` through the groups against the same calls in process).
- **bm25**: a shard group's BM25 shard over ``--index-dir`` at 1, 2 and 4 groups: the
  seconds to build it from the catalog and the resident memory it adds.
- **failure**: ``kill -9`` of a worker node's processes while it analyses (after the
  first commit), then the videos lost or committed twice; ``kill -9`` of a replica's
  process during a search load, then the searches that failed and the slowest one.

Every figure depends on what else the machine runs: the 1-minute load average before
and after each part is in the result.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.core import PUBLIC_QUERIES, add_out, entry_parser, percentile, write_json

__all__ = ["main"]


# -- a local cluster ----------------------------------------------------------------------
class LocalCluster:
    """A head with no CPU slots and ``workers`` nodes of ``cpus`` slots, joined by this
    process; per-node CPU seconds sampled from each raylet's process tree."""

    def __init__(self, workers: int, cpus: float) -> None:
        from ray.cluster_utils import Cluster

        from engine.cluster import connect

        t0 = time.perf_counter()
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        self.nodes = [self.cluster.add_node(num_cpus=cpus) for _ in range(workers)]
        connect(self.cluster.address)
        self.start_seconds = time.perf_counter() - t0
        self._cpu: dict[int, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def node_tree(self, node) -> list:
        import psutil

        from ray._private import ray_constants

        procs = node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET) or []
        out = []
        for info in procs:
            try:
                p = psutil.Process(info.process.pid)
                out.append(p)
                out.extend(p.children(recursive=True))
            except psutil.Error:
                pass
        return out

    def _sample(self) -> None:
        import psutil

        for n, node in enumerate(self.nodes):
            seen = self._cpu.setdefault(n, {})
            for p in self.node_tree(node):
                try:
                    t = p.cpu_times()
                    seen[p.pid] = max(seen.get(p.pid, 0.0), t.user + t.system)
                except psutil.Error:
                    pass

    def start_cpu(self) -> None:
        self._cpu = {}
        self._sample()
        self._base = {n: dict(d) for n, d in self._cpu.items()}
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(0.5):
                self._sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_cpu(self) -> list[float]:
        """CPU seconds used by each worker node's processes since ``start_cpu``."""
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return [round(sum(v - self._base.get(n, {}).get(pid, 0.0) for pid, v in self._cpu.get(n, {}).items()), 1)
                for n in range(len(self.nodes))]

    def kill_node(self, n: int) -> None:
        """kill -9 of node ``n``'s raylet and everything under it."""
        import signal

        for p in reversed(self.node_tree(self.nodes[n])):
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _own_cpu() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


# -- ingest -------------------------------------------------------------------------------
def _clips(media: Path, n: int) -> list[str]:
    from indexer.ingest import discover

    files, _ = discover([str(media)])
    return files[:n] if n else files


def _summary(report, wall: float) -> dict:
    s = report.summary()
    writer = {k: round(v, 2) for k, v in s["stage_seconds"].items() if k in ("write", "graph", "thumbnail_files")}
    return {"wall_s": round(wall, 1), "x_realtime": s["speed_x_realtime"], "media_s": s["media_seconds"],
            "by_status": s["by_status"], "writer_stage_s": writer}


def bench_ingest(media: Path, clips: int, scratch: Path) -> dict:
    from indexer.distributed import index_paths_ray
    from indexer.options import IndexOptions
    from indexer.pipeline import index_paths

    files = _clips(media, clips)
    out: dict = {"clips": len(files), "load_before": _load(), "runs": []}
    for cores in (1, 2):
        opts = IndexOptions(workers=cores, threads_per_worker=1)
        t0, c0 = time.perf_counter(), _own_cpu()
        rep = index_paths(files, scratch / f"single-{cores}", options=opts)
        wall = time.perf_counter() - t0
        single = {"path": "single-process", "workers": cores, **_summary(rep, wall),
                  "cpu_s": round(_own_cpu() - c0, 1), "load_after": _load()}
        print(json.dumps(single), flush=True)
        lc = LocalCluster(cores, 1)
        try:
            lc.start_cpu()
            t0, c0 = time.perf_counter(), _own_cpu()
            rep = index_paths_ray(files, scratch / f"ray-{cores}", options=opts)
            wall = time.perf_counter() - t0
            per_node = lc.stop_cpu()
            dist = {"path": "ray", "worker_nodes": cores, "cpus_per_node": 1, **_summary(rep, wall),
                    "cluster_start_s": round(lc.start_seconds, 1), "driver_cpu_s": round(_own_cpu() - c0, 1),
                    "node_cpu_s": per_node, "node_cpu_pct": [round(100 * c / wall, 1) for c in per_node],
                    "overhead_vs_single": round(wall / single["wall_s"] - 1, 3), "load_after": _load()}
            print(json.dumps(dist), flush=True)
        finally:
            lc.close()
        out["runs"] += [single, dist]
    return out


# -- serving ------------------------------------------------------------------------------
def _queries(n: int) -> list[str]:
    from query.intent import load_examples

    qs = [json.loads(line)["query"] for line in PUBLIC_QUERIES.read_text().splitlines() if line.strip()] \
        if PUBLIC_QUERIES.exists() else []
    qs += [e.text for e in load_examples()]
    return qs[:n]


def _latency(search, queries: list[str], warmup: int, clients: int) -> dict:
    from query.plan import SearchOptions

    opts = SearchOptions(k=10)
    for q in queries[:warmup]:
        search(q, options=opts)
    timed = queries[warmup:]
    ms = []
    for q in timed:
        t = time.perf_counter()
        search(q, options=opts)
        ms.append((time.perf_counter() - t) * 1000)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda q: search(q, options=opts), timed))
    qps = len(timed) / (time.perf_counter() - t0)
    return {"p50_ms": round(percentile(ms, 50), 1), "p99_ms": round(percentile(ms, 99), 1),
            "mean_ms": round(statistics.fmean(ms), 1), "qps": round(qps, 2), "clients": clients,
            "queries": len(timed)}


def _hop(router, base_index, queries: list[str]) -> dict:
    """The fan-out hops: the router's vector search through the groups against the same
    call on an in-process index holding every shard; and its BM25 search (the two rounds
    over the groups' BM25 shards) against the one lexical index in process."""
    from query.plan import SearchOptions

    s = router.searcher
    ms = {"fan": [], "local": [], "bm25_fan": [], "bm25_local": []}
    for q in queries:
        plan, blocks = s.plan(q, options=SearchOptions(k=10))
        qv = router.index.joint_vector(blocks, dict(plan.weights))[None, :]
        for key, index in (("fan", router.index), ("local", base_index)):
            t = time.perf_counter()
            index.search_vectors(qv, plan.params)
            ms[key].append((time.perf_counter() - t) * 1000)
        if not plan.text:
            continue
        for key, index in (("bm25_fan", router.index), ("bm25_local", base_index)):
            t = time.perf_counter()
            index.lexical_search(plan.lexical_text, k=plan.candidates, fields=plan.lexical_fields,
                                 phrases=list(plan.parsed.phrases))
            ms[key].append((time.perf_counter() - t) * 1000)
    p50 = {k: percentile(v, 50) for k, v in ms.items()}
    return {"fanout_p50_ms": round(p50["fan"], 2), "local_p50_ms": round(p50["local"], 2),
            "hop_p50_ms": round(p50["fan"] - p50["local"], 2),
            "bm25_fanout_p50_ms": round(p50["bm25_fan"], 2), "bm25_local_p50_ms": round(p50["bm25_local"], 2),
            "bm25_fanout_p99_ms": round(percentile(ms["bm25_fan"], 99), 2)}


def _bm25_shard_row(index_dir: str, groups: int) -> dict:
    """In a fresh process: build group 0's BM25 shard of ``groups``; its seconds and the
    resident memory it adds (after the tokenizer's own, which a group loads for it too)."""
    import psutil

    from engine.index import VideoIndex
    from engine.lexical import tokenize
    from query.shards import build_lexical_shard, group_shards

    proc = psutil.Process()
    with VideoIndex.open(index_dir, vector_shards=()) as idx:
        rss0 = proc.memory_info().rss
        tokenize("测试中文分词 and english")  # loads jieba's dictionary
        rss1 = proc.memory_info().rss
        t0 = time.perf_counter()
        shard, _ = build_lexical_shard(idx, group_shards(idx.config.shards, groups, 0))
        row = {"groups": groups, "docs": shard.num_docs, "open_s": round(time.perf_counter() - t0, 2),
               "rss_mb": round((proc.memory_info().rss - rss1) / 2**20, 1),
               "tokenizer_rss_mb": round((rss1 - rss0) / 2**20, 1), "load": _load()}
        shard.close()
    return row


def bench_bm25_shard(index_dir: Path, groups: list[int]) -> list[dict]:
    """What a shard group pays for its BM25 shard, per group count, each in a fresh process."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    out = []
    for g in groups:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            row = pool.submit(_bm25_shard_row, str(index_dir), g).result()
        out.append(row)
        print(json.dumps({"bm25_shard": row}), flush=True)
    return out


def bench_serve(index_dir: Path, n: int, queries: int, warmup: int, clients: int, layouts: list[tuple[int, int]],
                node_cpus: float) -> dict:
    from benchmarks.bench_search_latency import build
    from engine.index import VideoIndex
    from query.planner import Searcher
    from query.shards import ShardedSearcher

    out: dict = {"n": n}
    if not (index_dir / "manifest.json").exists():
        out["build"] = build(index_dir, n, shards=4)
    qs = _queries(queries + warmup)
    out["load_before"] = _load()
    idx = VideoIndex.open(index_dir)
    try:
        s = Searcher(idx)
        s.warm_up()
        out["single"] = _latency(s.search, qs, warmup, clients)
        print(json.dumps({"single": out["single"]}), flush=True)
        lc = LocalCluster(2, node_cpus)
        try:
            out["layouts"] = []
            for groups, replicas in layouts:
                t0 = time.perf_counter()
                r = ShardedSearcher(index_dir, groups=groups, replicas=replicas, num_cpus=1)
                row = {"groups": groups, "replicas": replicas, "start_s": round(time.perf_counter() - t0, 1)}
                try:
                    row.update(_latency(r.search, qs, warmup, clients))
                    row.update(_hop(r, idx, qs[warmup:warmup + 30]))
                finally:
                    r.close()
                print(json.dumps(row), flush=True)
                out["layouts"].append(row)
        finally:
            lc.close()
        out["single_after"] = _latency(s.search, qs, warmup, clients)  # brackets the load's drift
        print(json.dumps({"single_after": out["single_after"]}), flush=True)
    finally:
        idx.close()
    out["load_after"] = _load()
    out["bytes_per_segment"] = _bytes_per_segment(index_dir, n)
    return out


def _bytes_per_segment(index_dir: Path, n: int) -> dict:
    """``du`` of the index's parts over its segments (what a shard group and the router hold)."""
    def size(p: Path) -> int:
        if p.is_file():
            return p.stat().st_size
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0

    parts = {"catalog": sum(size(f) for f in index_dir.glob("catalog.sqlite*")),
             "vectors": size(index_dir / "vectors"), "lexical": size(index_dir / "lexical"),
             "thumbnails": size(index_dir / "thumbs")}
    return {k: round(v / n, 1) for k, v in parts.items()} | {"total": round(sum(parts.values()) / n, 1)}


# -- failure ------------------------------------------------------------------------------
def bench_fail_ingest(media: Path, clips: int, scratch: Path) -> dict:
    from engine.index import VideoIndex
    from indexer.distributed import index_paths_ray
    from indexer.options import IndexOptions

    files = _clips(media, clips)
    lc = LocalCluster(2, 1)
    killed = threading.Event()

    def on_event(e) -> None:
        if e.kind == "file" and not killed.is_set():
            killed.set()
            lc.kill_node(1)

    try:
        t0 = time.perf_counter()
        rep = index_paths_ray(files, scratch / "kill-node", options=IndexOptions(workers=1, threads_per_worker=1),
                              progress=on_event)
        wall = time.perf_counter() - t0
    finally:
        lc.close()
    with VideoIndex.open(scratch / "kill-node") as index:
        sources = [v.source for v in index.list_videos(limit=100_000)]
    failed = [{"source": r.source, "code": r.code} for r in rep.failed]
    return {"clips": len(files), "node_killed": killed.is_set(), "wall_s": round(wall, 1),
            "committed": len(sources), "lost": len(set(files) - set(sources)),
            "committed_twice": len(sources) - len(set(sources)), "failed": failed, "load_after": _load()}


def bench_fail_serve(index_dir: Path, queries: int, seconds: float, clients: int) -> dict:
    import signal

    import ray

    from query.plan import SearchOptions
    from query.shards import ShardedSearcher

    qs = _queries(queries)
    lc = LocalCluster(2, 1)
    try:
        r = ShardedSearcher(index_dir, groups=1, replicas=2, num_cpus=1)
        try:
            victim = r.handles(0)[0]
            pid = ray.get(victim.ping.remote())["pid"]
            ok, failed, ms = 0, [], []
            lock = threading.Lock()
            stop = time.perf_counter() + seconds

            def client(c: int) -> None:
                nonlocal ok
                i = c
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    try:
                        r.search(qs[i % len(qs)], options=SearchOptions(k=10))
                        with lock:
                            ok += 1
                            ms.append((time.perf_counter() - t) * 1000)
                    except Exception as e:  # counted: the figure this part reports
                        with lock:
                            failed.append(f"{type(e).__name__}: {str(e)[:120]}")
                    i += clients

            threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
            for t in threads:
                t.start()
            time.sleep(seconds / 3)
            os.kill(pid, signal.SIGKILL)
            for t in threads:
                t.join()
            from ray.exceptions import ActorUnavailableError

            t0 = time.perf_counter()
            while True:
                try:
                    new = ray.get(victim.ping.remote())["pid"]
                    break
                except ActorUnavailableError:
                    time.sleep(0.25)
            return {"seconds": seconds, "clients": clients, "searches_ok": ok, "searches_failed": len(failed),
                    "failures": failed[:5], "retries": r.retries, "p50_ms": round(percentile(ms, 50), 1),
                    "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1) if ms else None,
                    "replaced": new != pid, "replaced_after_load_s": round(time.perf_counter() - t0, 1),
                    "load_after": _load()}
        finally:
            r.close()
    finally:
        lc.close()


def main(argv: list[str] | None = None) -> int:
    from benchmarks.core import SHARED_DIR
    from benchmarks.machine import machine_info

    p = entry_parser("bench_ray", __doc__)
    p.add_argument("--parts", default="ingest,serve,failure",
                   help="any of ingest, serve, bm25 (a group's BM25 shard: build time, memory), failure"
                        " (= fail_ingest + fail_serve)")
    p.add_argument("--media", type=Path, default=SHARED_DIR / "media")
    p.add_argument("--clips", type=int, default=0, help="the first N files of --media (0: all)")
    p.add_argument("--n", type=int, default=100_000, help="synthetic segments of the serving index")
    p.add_argument("--index-dir", type=Path, default=Path("bench-results/ray-serve-index"))
    p.add_argument("--scratch", type=Path, default=Path("bench-results/ray-scratch"))
    p.add_argument("--queries", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--layouts", default="1x1,1x2,1x4,2x1,4x1", help="serve: GROUPSxREPLICAS, comma-separated")
    p.add_argument("--node-cpus", type=float, default=2, help="CPU slots of each of the 2 serving nodes")
    p.add_argument("--kill-clips", type=int, default=8)
    p.add_argument("--kill-seconds", type=float, default=45)
    add_out(p, "bench-results/ray.json")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import shutil

    parts = set(args.parts.split(","))
    shutil.rmtree(args.scratch, ignore_errors=True)
    args.scratch.mkdir(parents=True)
    result: dict = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}}
    if "ingest" in parts:
        result["ingest"] = bench_ingest(args.media, args.clips, args.scratch)
        write_json(args.out, result)
    if "bm25" in parts:
        result["bm25_shard"] = bench_bm25_shard(args.index_dir, [1, 2, 4])
        write_json(args.out, result)
    if "serve" in parts:
        layouts = [tuple(int(x) for x in lay.split("x")) for lay in args.layouts.split(",")]
        result["serve"] = bench_serve(args.index_dir, args.n, args.queries, args.warmup, args.clients, layouts,
                                      args.node_cpus)
        write_json(args.out, result)
    if parts & {"failure", "fail_ingest"}:
        result["fail_ingest"] = bench_fail_ingest(args.media, args.kill_clips, args.scratch)
        print(json.dumps({"fail_ingest": result["fail_ingest"]}), flush=True)
        write_json(args.out, result)
    if parts & {"failure", "fail_serve"}:
        result["fail_serve"] = bench_fail_serve(args.index_dir, args.queries, args.kill_seconds, 3)
        print(json.dumps({"fail_serve": result["fail_serve"]}), flush=True)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
