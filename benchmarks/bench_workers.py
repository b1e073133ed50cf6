"""Ingest worker start-up and memory: what each worker of ``vidseek index --workers N``
costs before it analyses, and what it holds while it does.

    python -m benchmarks.bench_workers --media ../shared/media --workers 2 --limit 8 \
        --out bench-results/workers.json

Indexes the first ``--limit`` clips (every modality on, the library defaults but
``workers``) into a fresh temporary index and reports:

- **start-up**: seconds from the pool's start (the ``start`` event; the pool is made
  right after it) to each worker's first ``stage`` event, and to the end of its first
  file (its ``done`` event); the first file's analysis seconds (model loading included).
  The events come through the pool's progress queue, read every 0.2 s at most, so
  these times are late by up to 0.2 s;
- **memory**: RSS, PSS and USS (private pages) of every process under this one, read
  from ``/proc/PID/smaps_rollup`` every ``--every`` seconds. Steady state: the samples
  taken once every worker has finished its first file (models loaded), up to the end;
  their median and maximum per process, and of the workers' sum (the whole process
  tree's PSS, this process included, is reported too: PSS adds up, RSS does not);
- **CPU**: each process's user + system seconds (``/proc/PID/stat``), and each
  worker's at the first sample after its first file was done (the load inflates CPU
  seconds far less than wall seconds);
- with ``--reference``: the same first files analysed in this process afterwards with
  one thread, twice (cold: the models load; warm: they are loaded), so that
  cold - warm is one process's model-loading cost on its first file.

The 1-minute load average before and after is recorded: the machine may be shared.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.core import SHARED_MEDIA, TreeCpu, add_media, add_out, descendants, entry_parser, proc_stat, write_json

__all__ = ["main", "smaps_rollup", "measure_workers"]

_FIELDS = {"Rss": "rss", "Pss": "pss", "Private_Clean": "priv", "Private_Dirty": "priv"}


def smaps_rollup(pid: int) -> dict[str, int] | None:
    """``{rss, pss, uss}`` bytes of ``pid`` (Linux ``/proc/PID/smaps_rollup``); None
    when it is gone or unreadable."""
    out = {"rss": 0, "pss": 0, "priv": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                name = _FIELDS.get(key)
                if name:
                    out[name] += int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return {"rss": out["rss"], "pss": out["pss"], "uss": out["priv"]}


def _role(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    if "forkserver" in cmd:
        return "forkserver-or-worker"  # forked workers keep the server's command line
    if "spawn_main" in cmd:
        return "worker"
    return cmd[:60]


class _Sampler(threading.Thread):
    def __init__(self, every: float) -> None:
        super().__init__(name="bench-workers-sampler", daemon=True)
        self.every = every
        self.samples: list[tuple[float, dict[int, dict[str, int]]]] = []
        self.roles: dict[int, str] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._halt.is_set():
            t = time.perf_counter()
            row: dict[int, dict[str, int]] = {}
            for pid in [me, *descendants(me)]:
                m = smaps_rollup(pid)
                st = proc_stat(pid)
                if m is not None and st is not None:
                    m["cpu"] = st[1]
                    row[pid] = m
                    if pid not in self.roles:
                        self.roles[pid] = "parent" if pid == me else _role(pid)
            self.samples.append((t, row))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _mb(x: float) -> float:
    return round(x / 1024**2, 1)


def measure_workers(media: Path, *, workers: int, limit: int, every: float = 0.5,
                    reference: bool = False) -> dict[str, Any]:
    from indexer.ingest import IngestEvent
    from indexer.pipeline import IndexOptions, discover, index_paths

    sources, _ = discover([str(media)])
    sources = sources[:limit]
    events: list[tuple[float, IngestEvent]] = []
    opts = IndexOptions(workers=workers)
    load_before = os.getloadavg()[0]
    sampler = _Sampler(every)
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="vidseek-bench-workers-") as d, TreeCpu() as cpu_meter:
        t0 = time.perf_counter()
        report = index_paths(sources, Path(d) / "idx", options=opts,
                             progress=lambda e: events.append((time.perf_counter(), e)))
        wall = time.perf_counter() - t0
    sampler.stop()
    load_after = os.getloadavg()[0]

    t_start = next(t for t, e in events if e.kind == "start")
    per_worker: dict[int, dict[str, Any]] = {}
    for t, e in events:
        if e.kind != "stage" or not e.worker:
            continue
        w = per_worker.setdefault(e.worker, {"first_stage_s": round(t - t_start, 3), "first_file": e.source})
        if e.source == w["first_file"] and e.stage == "done" and "first_file_done_s" not in w:
            w["first_file_done_s"] = round(t - t_start, 3)
    by_source = {r.source: r for r in report.results}
    for w in per_worker.values():
        r = by_source.get(w["first_file"])
        if r is not None:
            w["first_file_analysis_s"] = round(r.seconds, 3)
            w["first_file_stages"] = r.stages
    for pid, w in per_worker.items():
        seen = [(t - t_start, row[pid]["cpu"]) for t, row in sampler.samples if pid in row]
        if seen:
            w["cpu_s"] = round(seen[-1][1], 2)  # at its last sample (the end of the run)
            after = [c for t, c in seen if t >= w.get("first_file_done_s", float("inf"))]
            if after:
                w["cpu_to_first_file_done_s"] = round(after[0], 2)
    loaded_at = max((w.get("first_file_done_s", float("inf")) for w in per_worker.values()), default=float("inf"))
    steady = [(t, row) for t, row in sampler.samples if t - t_start >= loaded_at]
    pids = sorted({p for _, row in sampler.samples for p in row})
    procs: dict[str, Any] = {}
    for pid in pids:
        role = "worker" if pid in per_worker else sampler.roles.get(pid, "?")
        if role == "forkserver-or-worker":
            role = "forkserver"
        rows = [row[pid] for _, row in steady if pid in row]
        peak = [row[pid] for _, row in sampler.samples if pid in row]
        procs[str(pid)] = {"role": role, **{
            f"{k}_mb": _mb(statistics.median(r[k] for r in rows)) if rows else None for k in ("rss", "pss", "uss")},
            **{f"peak_{k}_mb": _mb(max(r[k] for r in peak)) if peak else None for k in ("rss", "pss")},
            "cpu_s": round(peak[-1]["cpu"], 2) if peak else None}

    def total(roles: set[str] | None, key: str) -> list[int]:
        return [sum(m[key] for p, m in row.items() if roles is None or procs[str(p)]["role"] in roles)
                for _, row in steady]

    totals = {}
    for label, roles in (("workers", {"worker"}), ("helpers", {"forkserver", "resource_tracker"}), ("tree", None)):
        for key in ("rss", "pss", "uss"):
            vals = total(roles, key)
            totals[f"{label}_{key}_mb"] = _mb(statistics.median(vals)) if vals else None
            totals[f"{label}_{key}_max_mb"] = _mb(max(vals)) if vals else None
    s = report.summary()
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {"workers": workers, "clips": len(sources), "every_s": every},
        "start_method": _start_method(),
        "wall_seconds": round(wall, 2),
        "media_seconds": s["media_seconds"],
        "speed_x_realtime": round(s["media_seconds"] / wall, 2) if wall else None,
        "failures": s["failures"],
        "cpu_seconds": round(cpu_meter.seconds, 1),
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
        "workers": {str(k): v for k, v in per_worker.items()},
        "steady_samples": len(steady),
        "processes": procs,
        "totals": totals,
    }
    if reference:
        out["reference"] = _reference([w["first_file"] for w in per_worker.values()], opts)
    return out


def _start_method() -> str:
    import indexer.pipeline as p

    ctx = getattr(p, "_pool_context", None)  # absent before the fork server: spawn
    return ctx().get_start_method() if ctx is not None else "spawn"


def _reference(files: list[str], opts) -> dict[str, Any]:
    """Each file analysed twice in this process with one thread: cold, then warm."""
    from engine.config import IndexConfig
    from indexer.mapper import analyse_file, set_threads
    from indexer.stages import build_stages

    stages = build_stages(opts)
    set_threads(1, stages)
    config = IndexConfig()
    res: dict[str, Any] = {}
    for i, f in enumerate(files):
        runs = []
        for _ in range(2):
            a = analyse_file(f, f"ref{i}", config, opts, None, None, stages)
            runs.append(round(a.seconds, 3))
        res[f] = {"first_in_process_s": runs[0], "again_s": runs[1]}
    return res


def main(argv: list[str] | None = None) -> int:
    p = entry_parser("bench_workers", __doc__)
    add_media(p, SHARED_MEDIA)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=8, help="the first N clips (default 8)")
    p.add_argument("--every", type=float, default=0.5, help="seconds between memory samples")
    p.add_argument("--reference", action="store_true",
                   help="afterwards analyse each worker's first file here, cold then warm")
    add_out(p, None)
    args = p.parse_args(argv)
    if not args.media.is_dir():
        print(f"media folder {args.media} does not exist (pass --media)", file=sys.stderr)
        return 2
    res = measure_workers(args.media, workers=args.workers, limit=args.limit, every=args.every,
                          reference=args.reference)
    if args.out:
        write_json(args.out, res)
    print(f"{res['start_method']}: {res['settings']['clips']} clips, {res['media_seconds']:.1f} s of media in "
          f"{res['wall_seconds']:.1f} s = {res['speed_x_realtime']}x, {res['cpu_seconds']} CPU s; 1-min load {res['load_before']} before, "
          f"{res['load_after']} after")
    for pid, w in res["workers"].items():
        print(f"worker {pid}: first stage {w['first_stage_s']} s, first file ({Path(w['first_file']).name}) done "
              f"{w.get('first_file_done_s')} s, its analysis {w.get('first_file_analysis_s')} s; CPU by then "
              f"{w.get('cpu_to_first_file_done_s')} s, in all {w.get('cpu_s')} s")
    for pid, m in res["processes"].items():
        print(f"  {m['role']:>16} {pid}: steady RSS {m['rss_mb']} PSS {m['pss_mb']} USS {m['uss_mb']} MB "
              f"(peak RSS {m['peak_rss_mb']}), CPU {m['cpu_s']} s")
    t = res["totals"]
    print(f"workers total: RSS {t['workers_rss_mb']} PSS {t['workers_pss_mb']} USS {t['workers_uss_mb']} MB; "
          f"helpers PSS {t['helpers_pss_mb']} MB; whole tree PSS {t['tree_pss_mb']} MB (max {t['tree_pss_max_mb']})")
    for f, r in res.get("reference", {}).items():
        print(f"reference {Path(f).name}: first in a process {r['first_in_process_s']} s, again {r['again_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
