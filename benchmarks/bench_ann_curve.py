"""Recall@10 and latency of the default vector store at every size: the ANN curve.

    python -m benchmarks.bench_ann_curve --sizes 10000,20000,50000,100000,300000,1000000 \\
        --label after --out bench-results/ann-curve-after.json
    python -m benchmarks.bench_ann_curve --plot bench-results/ann-curve-before.json \\
        bench-results/ann-curve-after.json --png docs/ann-curve.png

At each size a ``VectorStore`` is built with the product's default settings (4 shards,
``flat_max`` 20k, the ``auto`` factory, d = 1536) over ``benchmarks.synthetic.
SyntheticJoint`` vectors (added in batches of 100k, ids 50 to a video as the index
assigns them), then searched one query at a time:

- ``engine``: ``SearchParams(k=10)``, the engine's defaults: recall@10 against exact
  brute force, p50/p99 ms (warm-up, then ``--repeats`` passes; medians over passes);
- ``planner``: the dense run of a search as ``query.plan`` asks for it (k = 100 and
  its ``DENSE_K_FACTOR`` / ``DENSE_PROBE_SHARE``): the share of the true top 10 inside
  the 100 candidates, and its latency.

Each size's row is written to ``--out`` as soon as it is measured (a long run keeps
what it measured). The machine's load average is recorded before and after each size:
this machine's cores are shared, so latencies are honest only beside it. ``--plot``
draws one or more result files (recall and p50 against size) into ``--png``.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.core import add_out, entry_parser, knn_recall, now_iso, write_json

__all__ = ["measure_size", "plot", "main"]

DEFAULT_SIZES = (10_000, 20_000, 50_000, 100_000, 300_000, 1_000_000)


def _planner_params(k: int = 100):
    """The dense-run parameters ``query.plan`` asks the engine for (None: engine default)."""
    from engine.vectors import SearchParams
    from query import plan

    return SearchParams(k=k, k_factor=getattr(plan, "DENSE_K_FACTOR", None),
                        probe_share=getattr(plan, "DENSE_PROBE_SHARE", None))


def _load() -> list[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


def measure_size(n: int, *, dim: int, shards: int, queries: int, repeats: int, work: Path, seed: int = 0) -> dict:
    """Build the default store of ``n`` vectors and measure it (see the module doc)."""
    from benchmarks.core import latency_summary, time_each
    from benchmarks.suites.vectors_common import Dataset, build_store, stream_batches
    from engine.vectors import SearchParams, VectorSettings

    load0 = _load()
    ds = Dataset.make(n, dim, queries, seed=seed, batch=100_000)
    path = work / f"curve-{n}"
    shutil.rmtree(path, ignore_errors=True)
    store, sink, timing = build_store(path, VectorSettings(dim=dim, num_shards=shards))
    try:
        t = time.perf_counter()
        truth, gt_s = stream_batches(ds, 10, [sink])
        build_s = time.perf_counter() - t - gt_s
        t = time.perf_counter()
        store.save(1)
        save_s = time.perf_counter() - t
        info = store.info()
        rows = [ds.queries[i : i + 1] for i in range(len(ds.queries))]
        out: dict[str, Any] = {"n": n, "dim": dim, "shards": shards, "queries": queries, "build_s": round(build_s, 1),
                               "add_s": round(timing["add_s"], 1), "save_s": round(save_s, 1),
                               "disk_bytes": info["disk_bytes"],
                               "shard_info": [{k: s.get(k) for k in ("kind", "factory", "count", "nlist", "tuned")}
                                              for s in info["shards"]]}
        for name, sp in (("engine", SearchParams(k=10)), ("planner", _planner_params())):
            search = lambda q, sp=sp: store.search(q, sp)[1]  # noqa: E731
            for q in rows[:20]:
                search(q)
            runs, found = [], []
            for _ in range(repeats):
                lat, ids = time_each(search, rows)
                runs.append(lat)
                found = [r[0] for r in ids]  # engine: its 10; planner: its 100 candidates
            lat = latency_summary(runs)
            out[name] = {"recall_at_10": round(knn_recall(np.stack(found), truth), 4),
                         "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"],
                         "params": {"k": sp.k, "k_factor": sp.k_factor, "probe_share": sp.probe_share}}
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)
    out["load_before"], out["load_after"] = load0, _load()
    return out


def plot(files: list[Path], png: Path) -> Path:
    """Recall@10 (engine defaults) and p50 ms against size, one line per result file."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    for f in files:
        data = json.loads(Path(f).read_text())
        rows = sorted(data["rows"], key=lambda r: r["n"])
        ns = [r["n"] for r in rows]
        label = data.get("label") or Path(f).stem
        ax_r.plot(ns, [r["engine"]["recall_at_10"] for r in rows], marker="o", label=f"{label}: engine k=10")
        ax_r.plot(ns, [r["planner"]["recall_at_10"] for r in rows], marker="x", linestyle="--",
                  label=f"{label}: planner (top 10 in 100)")
        ax_l.plot(ns, [r["engine"]["p50_ms"] for r in rows], marker="o", label=f"{label}: p50")
        ax_l.plot(ns, [r["engine"]["p99_ms"] for r in rows], marker="^", linestyle=":", label=f"{label}: p99")
    ax_r.axhline(0.95, color="grey", linewidth=0.8, linestyle="--")
    for ax in (ax_r, ax_l):
        ax.set_xscale("log")
        ax.set_xlabel("vectors in the store (4 shards, d = 1536)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax_r.set_ylabel("recall@10")
    ax_r.set_title("recall@10 of the default settings")
    ax_l.set_yscale("log")
    ax_l.set_ylabel("ms per query (one at a time, log scale)")
    ax_l.set_title("single-query latency, engine defaults\n(shared 2-core machine: compare with the load in the table)",
                   fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    return png


def main(argv: list[str] | None = None) -> int:
    p = entry_parser("bench_ann_curve", __doc__)
    p.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES), help="comma-separated store sizes")
    p.add_argument("--dim", type=int, default=1536)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--label", default="", help="the name of this run in plots (e.g. before / after)")
    p.add_argument("--work", type=Path, default=None, help="folder for the stores (default: a temp folder)")
    p.add_argument("--plot", type=Path, nargs="*", default=None, help="result files to draw instead of measuring")
    p.add_argument("--png", type=Path, default=Path("docs/ann-curve.png"))
    add_out(p, "bench-results/ann-curve.json")
    args = p.parse_args(argv)
    if args.plot:
        print(plot(args.plot, args.png))
        return 0
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        print(f"--sizes {args.sizes!r}: expected comma-separated integers, e.g. 10000,100000", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="ann-curve-"))
    res: dict[str, Any] = {"date": now_iso(), "label": args.label, "rows": []}
    for n in sizes:
        print(f"[{time.strftime('%H:%M:%S')}] n={n:,}: building", flush=True)
        row = measure_size(n, dim=args.dim, shards=args.shards, queries=args.queries, repeats=args.repeats, work=work)
        res["rows"].append(row)
        write_json(args.out, res)
        e, pl = row["engine"], row["planner"]
        print(f"[{time.strftime('%H:%M:%S')}] n={n:,}: engine recall@10 {e['recall_at_10']:.3f} p50 {e['p50_ms']} ms "
              f"p99 {e['p99_ms']} ms | planner top10-in-100 {pl['recall_at_10']:.3f} p50 {pl['p50_ms']} ms | "
              f"build {row['build_s']} s | load {row['load_before']} -> {row['load_after']}", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
