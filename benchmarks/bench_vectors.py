"""Vector-store benchmark: build time, memory, disk, single-query latency and recall@10.

Builds a ``VectorStore`` over synthetic joint vectors shaped like vidseek's (blocks
of 384 dims, one per modality, each a cluster centre plus anisotropic noise,
normalised per block, some blocks missing, then normalised as a whole), computes
exact ground truth by brute force over the same stream, and sweeps search
parameters. Nothing is held for all N at once: vectors are generated in seeded
batches, added, and folded into the ground-truth heaps batch by batch.

Usage::

    python -m benchmarks.bench_vectors --n 1000000 --dim 1536 --queries 1000 \\
        --out bench-results/vectors.json
    python -m benchmarks.bench_vectors --n 10000000 --dim 1536 --compressed \\
        --out bench-results/vectors-10m.json
    python -m benchmarks.bench_vectors --n 50000 --dim 1536 --flat-max 2000 \\
        --queries 200 --out bench-results/vectors-smoke.json      # a quick smoke run

Targets (issue): 1M x 1536 recall@10 >= 0.95 at p50 <= 5 ms and p99 <= 20 ms;
10M x 1536 compressed within 8 GB of RAM at recall@10 >= 0.9.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import psutil

from benchmarks.suites.vectors_common import time_queries
from engine.vectors import SearchParams, VectorSettings, VectorStore, auto_factory, compressed_factory

__all__ = ["SyntheticJoint", "ParamSetting", "parse_params", "machine_info", "run", "main"]


class SyntheticJoint:
    """Seeded synthetic joint vectors: per-block cluster centres + anisotropic noise.

    Each vector picks one of ``clusters`` topics; block b is the topic's block-b
    centre plus gaussian noise whose per-direction standard deviation decays as
    j**-decay in a random rotation (real embeddings have such spectra; isotropic
    noise in 384 dims would make every in-cluster neighbour equidistant). Each block
    is normalised, dropped with probability ``p_missing`` (one block always stays),
    and the whole vector is normalised, as the joint vectors of ``engine`` are.
    ``batch(start, n, stream)`` is a pure function of its arguments.
    """

    def __init__(
        self,
        dim: int = 1536,
        block: int = 384,
        clusters: int = 1000,
        noise: float = 1.0,
        decay: float = 0.5,
        p_missing: float = 0.2,
        seed: int = 0,
    ) -> None:
        if dim % block:
            block = dim  # one block when dim is not a multiple of the block size
        self.dim, self.block, self.blocks = dim, block, dim // block
        self.clusters, self.p_missing, self.seed = clusters, p_missing, seed
        rng = np.random.default_rng([seed, 999])
        centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        for b in range(self.blocks):
            sl = slice(b * block, (b + 1) * block)
            centres[:, sl] /= np.linalg.norm(centres[:, sl], axis=1, keepdims=True)
        self.centres = centres
        spectrum = np.arange(1, block + 1, dtype=np.float64) ** -decay
        spectrum *= noise / np.sqrt((spectrum**2).sum())
        self.mix = []
        for _ in range(self.blocks):
            q, _r = np.linalg.qr(rng.standard_normal((block, block)))
            self.mix.append((spectrum[:, None] * q.T).astype(np.float32))

    def batch(self, start: int, n: int, stream: int = 0) -> np.ndarray:
        """Vectors ``start .. start+n`` of ``stream`` (0: base, 1: queries), float32 (n, dim)."""
        rng = np.random.default_rng([self.seed, stream, start])
        topic = rng.integers(0, self.clusters, n)
        out = self.centres[topic]
        keep = rng.random((n, self.blocks)) >= self.p_missing
        keep[np.arange(n), rng.integers(0, self.blocks, n)] = True
        for b in range(self.blocks):
            sl = slice(b * self.block, (b + 1) * self.block)
            noise = rng.standard_normal((n, self.block), dtype=np.float32)
            out[:, sl] += noise @ self.mix[b]
            out[:, sl] *= keep[:, b : b + 1] / np.linalg.norm(out[:, sl], axis=1, keepdims=True)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


@dataclass(frozen=True)
class ParamSetting:
    """One row of the sweep."""

    nprobe: int | None = None
    ef_search: int | None = None
    k_factor: int | None = None

    def label(self) -> str:
        """``"nprobe=64,k_factor=8"``, or ``"default"`` when every field is ``None``."""
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v is not None]
        return ",".join(parts) or "default"


DEFAULT_SWEEP = (
    "default;nprobe=32;nprobe=64;nprobe=128;nprobe=256;nprobe=384;nprobe=512;nprobe=768;"
    "nprobe=256,k_factor=4;nprobe=256,k_factor=16;ef_search=64;ef_search=128;ef_search=256"
)


def parse_params(text: str) -> list[ParamSetting]:
    """``"default;nprobe=32,k_factor=8;ef_search=64"`` -> settings (unknown keys raise)."""
    out = []
    names = {"nprobe", "ef_search", "k_factor"}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        if item == "default":
            out.append(ParamSetting())
            continue
        kv = {}
        for pair in item.split(","):
            key, _, value = pair.partition("=")
            if key.strip() not in names or not value.strip().isdigit():
                raise SystemExit(f"bad --params item {pair!r}: use {sorted(names)} with integer values")
            kv[key.strip()] = int(value)
        out.append(ParamSetting(**kv))
    return out


def machine_info() -> dict:
    """CPU, cores, RAM, library versions: what a reader needs to compare runs."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    get_gpus = getattr(faiss, "get_num_gpus", None)
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_bytes": psutil.virtual_memory().total,
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "faiss_compile_options": faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else None,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "gpus": int(get_gpus()) if get_gpus else 0,
    }


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _serving_rss(index_dir: Path) -> dict:
    """Open the saved store read-only in a fresh process: the memory a server would need."""
    code = (
        "import json,time,psutil,os;from engine.vectors import VectorStore;"
        "b=psutil.Process().memory_info().rss;t=time.perf_counter();"
        f"s=VectorStore.open({str(index_dir)!r},read_only=True);"
        "print(json.dumps({'open_s':time.perf_counter()-t,'rss_bytes':psutil.Process().memory_info().rss,"
        "'rss_before_open_bytes':b,'count':s.count()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _drop_page_cache() -> None:
    """Empty the kernel's page cache (root only) so the next reads come from disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1\n")
    except OSError as e:
        raise SystemExit(f"--cold needs to write /proc/sys/vm/drop_caches (root): {e}") from e


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = [len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth)]
    return float(np.sum(hits) / (k * len(truth)))


def run(args: argparse.Namespace) -> dict:
    """Build, measure and return the report dict."""
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    gen = SyntheticJoint(
        dim=args.dim, clusters=args.clusters, noise=args.noise, decay=args.decay, p_missing=args.p_missing, seed=args.seed
    )
    factory = args.factory or (compressed_factory(args.dim) if args.compressed else "auto")
    settings = VectorSettings(
        dim=args.dim,
        num_shards=args.shards,
        flat_max=args.flat_max,
        approx_factory=factory,
        train_sample=args.train_sample,
        use_gpu=args.use_gpu,
    )
    queries = gen.batch(0, args.queries, stream=1)
    k = 10
    heap = faiss.ResultHeap(args.queries, k, keep_max=True)
    own_dir = args.index_dir is None
    index_dir = Path(args.index_dir or tempfile.mkdtemp(prefix="bench-vectors-", dir=args.tmp))
    if index_dir.exists() and any(index_dir.iterdir()):
        raise SystemExit(f"--index-dir {index_dir} is not empty")
    rss0 = psutil.Process().memory_info().rss
    times = {"generate_s": 0.0, "add_s": 0.0, "ground_truth_s": 0.0}
    store = VectorStore.create(index_dir, settings)
    try:
        for start in range(0, args.n, args.batch):
            n = min(args.batch, args.n - start)
            t = time.perf_counter()
            x = gen.batch(start, n)
            times["generate_s"] += time.perf_counter() - t
            ids = np.arange(start, start + n, dtype=np.int64)
            t = time.perf_counter()
            store.add(ids, x, ids // args.segments_per_video)
            times["add_s"] += time.perf_counter() - t
            t = time.perf_counter()
            dist, pos = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)
            heap.add_result(dist, pos + start)
            times["ground_truth_s"] += time.perf_counter() - t
            del x
            if args.verbose:
                print(f"  {start + n:>10,d} vectors  add {times['add_s']:.1f}s", file=sys.stderr, flush=True)
        heap.finalize()
        truth = heap.I
        t = time.perf_counter()
        store.save(1)
        times["save_s"] = time.perf_counter() - t
        gc.collect()
        rss_built = psutil.Process().memory_info().rss
        info = store.info()

        rows = []
        template = auto_factory(args.dim) if factory == "auto" else factory
        for setting in parse_params(args.params):
            # A knob the factory has no use for would only repeat the default row.
            if (setting.ef_search is not None and "HNSW" not in template) or (
                setting.nprobe is not None and "IVF" not in template
            ):
                continue
            params = SearchParams(k=k, nprobe=setting.nprobe, ef_search=setting.ef_search, k_factor=setting.k_factor)
            def search_one(q: np.ndarray, params: SearchParams = params) -> np.ndarray:
                return store.search(q, params)[1]

            cold = {}
            if args.cold:
                # First pass with an empty page cache (no warm-up: it would read the same
                # rows); the warm pass below then repeats the same queries.
                _drop_page_cache()
                cold_lat, _ = time_queries(search_one, queries, warmup=0, repeats=1)
                cold = {f"cold_{m}_ms": round(cold_lat[f"{m}_ms"], 3) for m in ("p50", "p99", "mean")}
            lat, found = time_queries(search_one, queries, warmup=0 if args.cold else args.warmup, repeats=1)
            t = time.perf_counter()
            store.search(queries, params)
            batch_s = time.perf_counter() - t
            rows.append(
                {
                    "params": setting.label(),
                    **asdict(setting),
                    "recall_at_10": round(_recall(found, truth), 4),
                    **{f"{m}_ms": round(lat[f"{m}_ms"], 3) for m in ("p50", "p99", "mean")},
                    "batch_qps": round(args.queries / batch_s, 1),
                    **cold,
                }
            )
    finally:
        store.close()
    serving = _serving_rss(index_dir)
    report = {
        "benchmark": "vectors",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "machine": machine_info(),
        "data": {
            "generator": "SyntheticJoint",
            "n": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "clusters": args.clusters,
            "noise": args.noise,
            "decay": args.decay,
            "p_missing": args.p_missing,
            "seed": args.seed,
            "segments_per_video": args.segments_per_video,
        },
        "settings": asdict(settings),
        "factory_template": auto_factory(args.dim) if factory == "auto" else factory,
        "shards": [{k2: s[k2] for k2 in ("shard", "kind", "factory", "count", "nlist", "trained_n")} for s in info["shards"]],
        "build": {
            **{key: round(v, 3) for key, v in times.items()},
            "add_vectors_per_s": round(args.n / max(times["add_s"], 1e-9), 1),
            "peak_rss_bytes": _peak_rss_bytes(),
            "rss_before_build_bytes": rss0,
            "rss_after_build_bytes": rss_built,
            "disk_bytes": _disk_bytes(index_dir),
            "disk_bytes_per_vector": round(_disk_bytes(index_dir) / max(args.n, 1), 1),
        },
        "serving": serving,
        "results": rows,
    }
    if own_dir and not args.keep:
        shutil.rmtree(index_dir, ignore_errors=False)
    else:
        report["index_dir"] = str(index_dir)
    return report


def _print_table(report: dict) -> None:
    b, s = report["build"], report["serving"]
    gib = 1 << 30
    print(
        f"{report['data']['n']:,} x {report['data']['dim']}  factory {report['factory_template']}  "
        f"shards {report['settings']['num_shards']}  ({report['machine']['cpu']}, "
        f"{report['machine']['affinity_cores']} cores, faiss {report['machine']['faiss']})"
    )
    print(
        f"build: add {b['add_s']:.1f}s ({b['add_vectors_per_s']:,.0f}/s), save {b['save_s']:.1f}s, "
        f"peak RSS {b['peak_rss_bytes'] / gib:.2f} GiB (incl. generator), disk {b['disk_bytes'] / gib:.2f} GiB, "
        f"serving RSS {s['rss_bytes'] / gib:.2f} GiB (open {s['open_s']:.1f}s)"
    )
    cold = any("cold_p50_ms" in r for r in report["results"])
    head = f"{'params':<28}{'recall@10':>10}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'batch qps':>11}"
    print(head + (f"{'cold p50':>10}{'cold p99':>10}" if cold else ""))
    for r in report["results"]:
        line = (
            f"{r['params']:<28}{r['recall_at_10']:>10.4f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['mean_ms']:>9.2f}{r['batch_qps']:>11.0f}"
        )
        if cold:
            line += f"{r.get('cold_p50_ms', float('nan')):>10.2f}{r.get('cold_p99_ms', float('nan')):>10.2f}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="vectors to index")
    p.add_argument("--dim", type=int, default=1536)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("bench-results/vectors.json"))
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--flat-max", type=int, default=VectorSettings(dim=1).flat_max)
    p.add_argument("--train-sample", type=int, default=VectorSettings(dim=1).train_sample)
    p.add_argument("--factory", default=None, help='approx factory template (default "auto")')
    p.add_argument("--compressed", action="store_true", help="use compressed_factory(dim) (the 10M / 8 GB point)")
    p.add_argument("--params", default=DEFAULT_SWEEP, help="';'-separated settings, e.g. 'default;nprobe=64,k_factor=8'")
    p.add_argument("--use-gpu", default="auto", choices=["auto", "never", "always"])
    p.add_argument("--batch", type=int, default=100_000, help="vectors generated and added per step")
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--noise", type=float, default=1.0, help="noise norm relative to a block centre")
    p.add_argument("--decay", type=float, default=0.5, help="noise std of direction j ~ j**-decay")
    p.add_argument("--p-missing", type=float, default=0.2, help="chance that a modality block is missing")
    p.add_argument("--segments-per-video", type=int, default=50, help="ids per shard key")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument(
        "--cold",
        action="store_true",
        help="time each setting first with an emptied page cache (root: writes /proc/sys/vm/drop_caches), "
        "then warm; for stores whose refine rows are on disk",
    )
    p.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0: FAISS default)")
    p.add_argument("--index-dir", default=None, help="build here (must be empty) and keep it")
    p.add_argument("--tmp", default=None, help="parent folder of the temporary index (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary index folder")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    report = run(args)
    _print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
