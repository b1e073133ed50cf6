"""A run's files: ``result.json`` (everything measured), ``report.md`` (tables) and
PNG plots beside it (matplotlib, Agg backend):

- ``ann_tradeoff.png``: recall@10 against p50 latency for each index configuration
  of the latency suite (engine solid, raw FAISS dashed, exact FAISS a star);
- ``latency_vs_size.png``: p50/p90/p99 against the number of vectors (scale suite);
- ``ingest_stages.png``: median seconds per ingest stage, [min, max] over repeats;
- ``quality_by_kind.png``: MRR per query kind for each method and peer.

A plot is drawn only for the suites the run holds; the Markdown links exactly the
PNGs that were written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from benchmarks.core import write_json
from engine.errors import InputError

__all__ = ["write_report", "render_markdown", "PLOTS"]

PLOTS = {
    "latency": "ann_tradeoff.png",
    "scale": "latency_vs_size.png",
    "ingest": "ingest_stages.png",
    "quality": "quality_by_kind.png",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # benchmark machines have no display
    import matplotlib.pyplot as plt

    return plt


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


# -- plots -------------------------------------------------------------------------------
def plot_tradeoff(latency: Mapping[str, Any], path: Path) -> None:
    """Recall@10 against p50 latency, one curve per index configuration."""
    plt = _plt()
    rows = latency["details"]["rows"]
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    cmap = plt.get_cmap("tab10")
    configs = [c["name"] for c in latency["config"]["indexes"]]
    for i, name in enumerate(configs):
        for system, style in (("vidseek", "-"), ("faiss-raw", "--")):
            # Along the knob recall rises; ordering by recall draws the curve, not a zigzag of noise.
            pts = sorted(((r["p50_ms"], r["recall_at_10"], r["params"]) for r in rows
                          if r["config"] == name and r["system"] == system), key=lambda t: (t[1], t[0]))
            if not pts:
                continue
            xs, ys, labels = zip(*pts)
            label = f"{name} (vidseek)" if system == "vidseek" else f"{name} (raw FAISS)"
            ax.plot(xs, ys, style, marker="o" if system == "vidseek" else "x", color=cmap(i % 10), label=label,
                    alpha=1.0 if system == "vidseek" else 0.6)
            if system == "vidseek":
                for x, y, lab in pts:
                    ax.annotate(lab.replace("nprobe=", "np").replace("ef_search=", "ef"), (x, y), fontsize=6,
                                xytext=(3, -8), textcoords="offset points")
    for r in rows:
        if r["system"] == "faiss-flat":
            ax.plot([r["p50_ms"]], [r["recall_at_10"]], "*", color="black", markersize=12, label="exact (raw FAISS Flat)")
    cfg = latency["config"]
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency of one query (ms, log scale)")
    ax.set_ylabel("recall@10")
    ax.set_title(f"ANN trade-off: {cfg['n']:,} x {cfg['dim']} synthetic joint vectors, {cfg['shards']} shard(s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scale(scale: Mapping[str, Any], path: Path) -> None:
    """p50/p90/p99 against the number of vectors (log-log); raw exact FAISS dashed."""
    plt = _plt()
    rows = scale["details"]["rows"]
    fig, ax = plt.subplots(figsize=(8, 5))
    mine = sorted((r for r in rows if r["system"] == "vidseek"), key=lambda r: r["n"])
    for key, color in (("p50", "tab:blue"), ("p90", "tab:orange"), ("p99", "tab:red")):
        ns = [r["n"] for r in mine]
        ys = [r[f"{key}_ms"] for r in mine]
        lo = [r[f"{key}_ms"] - r[f"{key}_ms_range"][0] for r in mine]
        hi = [r[f"{key}_ms_range"][1] - r[f"{key}_ms"] for r in mine]
        ax.errorbar(ns, ys, yerr=[lo, hi], marker="o", color=color, label=f"vidseek {key}", capsize=3)
    flat = sorted((r for r in rows if r["system"] == "faiss-flat"), key=lambda r: r["n"])
    if flat:
        ax.plot([r["n"] for r in flat], [r["p50_ms"] for r in flat], "--", marker="x", color="gray",
                label="raw FAISS Flat p50 (exact)")
    for r in mine:
        ax.annotate("/".join(r["shard_kinds"]) + f"\nR@10 {r['recall_at_10']:.2f}", (r["n"], r["p50_ms"]),
                    fontsize=6, xytext=(4, -14), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vectors in the store (log scale)")
    ax.set_ylabel("latency of one query (ms, log scale)")
    cfg = scale["config"]
    ax.set_title(f"Search latency against size (default settings, {cfg['shards']} shards, dim {cfg['dim']})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_ingest(ingest: Mapping[str, Any], path: Path) -> None:
    """Median seconds per stage with the [min, max] over repeats."""
    plt = _plt()
    d = ingest["details"]
    stages = sorted(d["stages"].items(), key=lambda kv: kv[1]["median_s"])
    names = [k for k, _ in stages]
    med = [v["median_s"] for _, v in stages]
    lo = [v["median_s"] - v["range_s"][0] for _, v in stages]
    hi = [v["range_s"][1] - v["median_s"] for _, v in stages]
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.4 * len(names) + 1.5)))
    ax.barh(names, med, xerr=[lo, hi], color="tab:blue", capsize=3)
    ax.set_xlabel("seconds (median over repeats; summed over clips)")
    ax.set_title(f"Ingest time per stage: {len(d['clips'])} clips, {d['media_s']:.1f} s of media, "
                 f"{d['speed_x_realtime']:.2f}x real time")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_quality(quality: Mapping[str, Any], path: Path) -> None:
    """MRR per query kind for each method and peer (``judged.plot``'s bar chart)."""
    from benchmarks.suites.judged import plot

    d = quality["details"]
    plot(d["summary"], d["kinds"], path, metric="MRR")


_PLOTTERS = {"latency": plot_tradeoff, "scale": plot_scale, "ingest": plot_ingest, "quality": plot_quality}


# -- markdown ----------------------------------------------------------------------------
def _machine_md(m: Mapping[str, Any]) -> list[str]:
    v = m.get("versions", {})
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    return [
        "| | |", "|---|---|",
        f"| CPU | {m.get('cpu')} |",
        f"| cores | {m.get('cpu_count')} logical, {m.get('affinity_cores')} usable; FAISS threads "
        f"{m.get('faiss_omp_threads')} |",
        f"| RAM | {m.get('memory_gib')} GiB |",
        f"| load average (start / end) | {_fmt_load(m.get('loadavg'))} / {_fmt_load(m.get('loadavg_end'))} |",
        f"| platform | {m.get('platform')}, Python {m.get('python')} |",
        f"| libraries | {libs} |",
        "",
    ]


def _fmt_load(x: Any) -> str:
    return "-" if not x else " ".join(f"{float(v):.2f}" for v in x)


def _quality_md(q: Mapping[str, Any], plot: str | None) -> list[str]:
    from benchmarks.suites.judged import METRICS, OVERALL

    c, d = q["config"], q["details"]
    out = [f"Clips and queries: {c['origin']}. {len(c['clips'])} clips, {c['queries']} queries; index "
           f"`{c['index_dir']}`.", ""]
    if c["peers"]:
        out.append("Peers: " + "; ".join(
            f"{n} ({p.get('package')} {p.get('version')}, {p.get('segments')} segment texts)" for n, p in c["peers"].items()
        ) + ". The product default is the `default` row.")
    for n, why in (c.get("peers_skipped") or {}).items():
        out.append(f"Peer {n} skipped: {why}.")
    out.append("")
    out.append(f"Overall (every non-negative query), top {10}, clip level:")
    out.append("")
    out.append("| method | " + " | ".join(METRICS) + " | p50 ms |")
    out.append("|---|" + "---:|" * (len(METRICS) + 1))
    for name, s in d["summary"].items():
        agg = s["kinds"][OVERALL]
        out.append(f"| {name} | " + " | ".join(_fmt(agg.get(mm)) for mm in METRICS) + f" | {_fmt(s['took_ms']['p50'], 1)} |")
    out.append("")
    if plot:
        out += [f"![MRR per query kind and method]({plot})", ""]
    out.append("<details><summary>Per query kind</summary>")
    out.append("")
    out.append(d["markdown"].replace("### ", "#### "))
    out.append("</details>")
    out.append("")
    return out


def _latency_md(lat: Mapping[str, Any], plot: str | None) -> list[str]:
    c = lat["config"]
    out = [f"{c['n']:,} synthetic joint vectors of {c['dim']} dims ({c['data']}), {c['queries']} queries one at a "
           f"time, {c['warmup']} warm-up, {c['repeats']} repeats; k={c['k']}. Latency columns are medians over "
           "repeats; the range is [min, max] of the per-repeat p50. `faiss-raw` searches the very index the store "
           "saved, with the same parameters: the gap is the engine's overhead.", ""]
    out += ["| config | factory (shard 0) | shards | build s | disk bytes/vector |", "|---|---|---:|---:|---:|"]
    for ix in c["indexes"]:
        fac = ix["shards"][0]["factory"] if ix["shards"] else "-"
        out.append(f"| {ix['name']} | `{fac}` | {len(ix['shards'])} | {ix['build_s']:.1f} | "
                   f"{ix['disk_bytes'] / c['n']:.0f} |")
    out += ["", "| config | system | params | recall@10 | p50 ms | p90 ms | p99 ms | p50 range | overhead p50 ms |",
            "|---|---|---|---:|---:|---:|---:|---|---:|"]
    for r in lat["details"]["rows"]:
        rng = r["p50_ms_range"]
        out.append(f"| {r['config']} | {r['system']} | {r['params']} | {r['recall_at_10']:.3f} | {r['p50_ms']:.3f} | "
                   f"{r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {rng[0]:.3f}-{rng[1]:.3f} | "
                   f"{_fmt(r.get('overhead_p50_ms'))} |")
    out.append("")
    if plot:
        out += [f"![recall@10 against latency]({plot})", ""]
    return out


def _scale_md(sc: Mapping[str, Any], plot: str | None) -> list[str]:
    c = sc["config"]
    out = [f"Default store settings ({c['shards']} shards, flat_max {c['flat_max']:,}), dim {c['dim']}, "
           f"{c['queries']} queries, {c['repeats']} repeats, default search parameters.", "",
           "| vectors | system | shards | recall@10 | p50 ms | p90 ms | p99 ms | build s | disk MB |",
           "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(sc["details"]["rows"], key=lambda r: (r["n"], r["system"] != "vidseek")):
        kinds = "/".join(r.get("shard_kinds", [])) or "-"
        disk = f"{r['disk_bytes'] / 1e6:.1f}" if r.get("disk_bytes") is not None else "-"
        build = f"{r['build_s']:.1f}" if r.get("build_s") is not None else "-"
        out.append(f"| {r['n']:,} | {r['system']} | {kinds} | {r['recall_at_10']:.3f} | {r['p50_ms']:.3f} | "
                   f"{r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {build} | {disk} |")
    out.append("")
    if plot:
        out += [f"![latency against index size]({plot})", ""]
    return out


def _ingest_md(ing: Mapping[str, Any], plot: str | None) -> list[str]:
    d, c = ing["details"], ing["config"]
    cold = (f"; cold start (model loading + {d['cold_start_clip']}): {d['cold_start_wall_s']:.1f} s"
            if d.get("cold_start_wall_s") is not None else "")
    out = [f"{len(d['clips'])} clips ({', '.join(x['name'] for x in d['clips'])}), {d['media_s']:.1f} s of media, "
           f"{c['workers']} worker(s), {c['repeats']} repeats: wall {d['wall_s']:.1f} s "
           f"[{d['wall_s_range'][0]:.1f}-{d['wall_s_range'][1]:.1f}], {d['speed_x_realtime']:.2f}x real time{cold}.",
           "", "| stage | median s | range s |", "|---|---:|---|"]
    for name, st in sorted(d["stages"].items(), key=lambda kv: -kv[1]["median_s"]):
        out.append(f"| {name} | {st['median_s']:.2f} | {st['range_s'][0]:.2f}-{st['range_s'][1]:.2f} |")
    out.append("")
    if plot:
        out += [f"![ingest time per stage]({plot})", ""]
    return out


_SECTIONS = {"quality": ("Quality", _quality_md), "latency": ("Latency: the ANN trade-off", _latency_md),
             "scale": ("Scale: latency against index size", _scale_md), "ingest": ("Ingest", _ingest_md)}


def render_markdown(result: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The report: run header, machine, then one section per suite with its plot."""
    lines = [f"# vidseek benchmarks: preset `{result['preset']}`", "",
             f"Run {result['date']} - {result['finished']} ({result['seconds']:.0f} s), suites: "
             f"{', '.join(result['suites'])}.", ""]
    if result.get("command"):
        lines += [f"Command: `{result['command']}`", ""]
    for suite, f in (result.get("failed") or {}).items():
        lines += [f"**Suite {suite} FAILED**: `{f['error']}` (traceback in result.json).", ""]
    lines += ["## Machine", ""] + _machine_md(result["machine"])
    for suite in result["suites"]:
        title, fn = _SECTIONS[suite]
        res = result["results"][suite]
        lines += [f"## {title}", "", f"_{res['seconds']:.0f} s._", ""]
        lines += fn(res, plots.get(suite))
    return "\n".join(lines)


def write_report(result: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """``result.json``, ``report.md`` and the PNGs into ``out_dir``; returns their paths."""
    if "results" not in result or "suites" not in result:
        raise InputError("write_report needs a run result (from benchmarks.suites.run_benchmarks)")
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    for suite in result["suites"]:
        name = PLOTS[suite]
        _PLOTTERS[suite](result["results"][suite], out_dir / name)
        plots[suite] = name
    files = {"json": str(out_dir / "result.json"), "markdown": str(out_dir / "report.md"),
             **{f"plot_{s}": str(out_dir / p) for s, p in plots.items()}}
    write_json(out_dir / "result.json", {**result, "files": files}, indent=1)
    (out_dir / "report.md").write_text(render_markdown(result, plots) + "\n", encoding="utf-8")
    return files
