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

This module is the command line: the options map onto
``benchmarks.suites.vectors.VectorsConfig`` and ``run`` measures (on the same
``vectors_common`` machinery as the latency and scale suites); the generator is
``benchmarks.synthetic.SyntheticJoint``.
"""
from __future__ import annotations

import argparse
import sys

from benchmarks.core import add_out, entry_parser, write_json
from benchmarks.presets import SweepPoint
from benchmarks.suites.vectors import DEFAULT_SWEEP, VectorsConfig, parse_sweep, run
from benchmarks.synthetic import SyntheticJoint
from engine.errors import InputError

__all__ = ["SyntheticJoint", "parse_params", "config_from_args", "main"]


def parse_params(text: str) -> list[SweepPoint]:
    """``--params``: ``"default;nprobe=32,k_factor=8;ef_search=64"`` -> sweep points."""
    try:
        return list(parse_sweep(text))
    except InputError as e:
        raise SystemExit(str(e)) from e


def config_from_args(args: argparse.Namespace) -> VectorsConfig:
    """The parsed options as the framework's configuration."""
    return VectorsConfig(
        n=args.n, dim=args.dim, queries=args.queries, shards=args.shards, flat_max=args.flat_max,
        train_sample=args.train_sample, factory=args.factory, compressed=args.compressed,
        sweep=tuple(parse_params(args.params)), use_gpu=args.use_gpu, batch=args.batch, clusters=args.clusters,
        noise=args.noise, decay=args.decay, p_missing=args.p_missing, segments_per_video=args.segments_per_video,
        seed=args.seed, warmup=args.warmup, cold=args.cold, threads=args.threads, index_dir=args.index_dir,
        tmp=args.tmp, keep=args.keep,
    )


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
    d = VectorsConfig()
    p = entry_parser("bench_vectors", __doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=d.n, help="vectors to index")
    p.add_argument("--dim", type=int, default=d.dim)
    p.add_argument("--queries", type=int, default=d.queries)
    add_out(p, "bench-results/vectors.json")
    p.add_argument("--shards", type=int, default=d.shards)
    p.add_argument("--flat-max", type=int, default=d.flat_max)
    p.add_argument("--train-sample", type=int, default=d.train_sample)
    p.add_argument("--factory", default=None, help='approx factory template (default "auto")')
    p.add_argument("--compressed", action="store_true", help="use compressed_factory(dim) (the 10M / 8 GB point)")
    p.add_argument("--params", default=DEFAULT_SWEEP, help="';'-separated settings, e.g. 'default;nprobe=64,k_factor=8'")
    p.add_argument("--use-gpu", default=d.use_gpu, choices=["auto", "never", "always"])
    p.add_argument("--batch", type=int, default=d.batch, help="vectors generated and added per step")
    p.add_argument("--clusters", type=int, default=d.clusters)
    p.add_argument("--noise", type=float, default=d.noise, help="noise norm relative to a block centre")
    p.add_argument("--decay", type=float, default=d.decay, help="noise std of direction j ~ j**-decay")
    p.add_argument("--p-missing", type=float, default=d.p_missing, help="chance that a modality block is missing")
    p.add_argument("--segments-per-video", type=int, default=d.segments_per_video, help="ids per shard key")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--warmup", type=int, default=d.warmup)
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
    cfg = config_from_args(args)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = run(cfg, command=" ".join(sys.argv), progress=say if args.verbose else None)
    except InputError as e:
        raise SystemExit(str(e)) from e
    _print_table(report)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
