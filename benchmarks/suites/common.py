"""What every suite shares: comparable metrics, latency statistics over repeats, the
machine description, and the result shape that ``benchmarks.report`` and
``benchmarks.compare`` read.

A suite returns a ``SuiteResult``: its settings (``config``), its ``metrics`` (flat,
named, each saying which direction is better and how much it moved between repeats,
so ``compare`` can tell a regression from noise), and ``details`` (tables and series
that the report draws). Everything in it is JSON-able.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from benchmarks.machine import PACKAGES, machine_info
from engine.errors import InputError

__all__ = [
    "Metric",
    "SuiteResult",
    "Progress",
    "BETTER",
    "latency_summary",
    "latency_metrics",
    "describe_machine",
    "faiss_threads",
    "run_with_faiss_threads",
    "recall_at_k",
    "now_iso",
]

# Which way a metric improves. "none": informational (counts, sizes), never a regression.
BETTER = ("higher", "lower", "none")

# Reported beside the engine's own packages: the peers and the plotting library.
EXTRA_PACKAGES: tuple[str, ...] = ("txtai", "transformers", "matplotlib", "psutil", "msgpack")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Metric:
    """One comparable number of a run.

    ``name`` is a slash path (``"latency/hnsw/ef_search=64/p50_ms"``) that is stable
    between runs of the same preset; ``spread`` is how far the value moved between
    repeats of the same measurement (max - min of the per-repeat values), ``None``
    for a number measured once or deterministic (quality metrics)."""

    name: str
    value: float
    better: str
    unit: str = ""
    spread: float | None = None

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise InputError(f"metric {self.name!r}: better must be one of {BETTER}, got {self.better!r}")
        if not np.isfinite(self.value):
            raise InputError(f"metric {self.name!r} is not a finite number: {self.value!r}",
                             hint="a suite must leave out what it could not measure")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SuiteResult:
    """What one suite measured: settings, comparable metrics, and report material."""

    suite: str
    config: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "seconds": round(self.seconds, 2),
            "config": self.config,
            "metrics": [m.as_dict() for m in self.metrics],
            "details": self.details,
        }


def now_iso() -> str:
    """Local time with its UTC offset, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def latency_summary(runs_ms: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Percentiles of single-query latencies over repeats.

    ``runs_ms`` holds one list of per-query milliseconds per repeat (the same queries
    each time). Each percentile is computed per repeat; the reported value is the
    median over repeats and ``*_range`` the [min, max] over repeats (the spread that
    ``compare`` treats as noise). ``iqr_ms`` is the interquartile range of all
    latencies pooled, a picture of the per-query spread."""
    runs = [np.asarray(r, dtype=np.float64) for r in runs_ms if len(r)]
    if not runs:
        raise InputError("latency_summary needs at least one repeat with at least one latency")
    out: dict[str, Any] = {"repeats": len(runs), "queries": int(len(runs[0]))}
    for name, fn in (("p50", lambda a: np.percentile(a, 50)), ("p90", lambda a: np.percentile(a, 90)),
                     ("p99", lambda a: np.percentile(a, 99)), ("mean", np.mean)):
        per = [float(fn(r)) for r in runs]
        out[f"{name}_ms"] = round(float(np.median(per)), 4)
        out[f"{name}_ms_range"] = [round(min(per), 4), round(max(per), 4)]
    pooled = np.concatenate(runs)
    q1, q3 = np.percentile(pooled, [25, 75])
    out["iqr_ms"] = round(float(q3 - q1), 4)
    out["min_ms"] = round(float(pooled.min()), 4)
    out["max_ms"] = round(float(pooled.max()), 4)
    return out


def latency_metrics(prefix: str, summary: dict[str, Any], keys: Iterable[str] = ("p50", "p90", "p99")) -> list[Metric]:
    """``Metric`` rows (lower is better) for the percentiles of a ``latency_summary``."""
    out = []
    for key in keys:
        lo, hi = summary[f"{key}_ms_range"]
        out.append(Metric(f"{prefix}/{key}_ms", summary[f"{key}_ms"], "lower", "ms", round(hi - lo, 4)))
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top-k ids found in its returned top-k (ids < 0 are padding)."""
    if found.shape[0] != truth.shape[0]:
        raise InputError(f"recall: {found.shape[0]} result rows for {truth.shape[0]} queries")
    k = truth.shape[1]
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth))
    return float(hits / (k * len(truth)))


def describe_machine() -> dict[str, Any]:
    """``benchmarks.machine.machine_info`` plus the peers' versions, the cores this
    process may use and FAISS's thread count: what a reader needs to compare runs."""
    import faiss

    info = machine_info((*PACKAGES, *EXTRA_PACKAGES))
    info["affinity_cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info["faiss_omp_threads"] = int(faiss.omp_get_max_threads())
    info["faiss_compile_options"] = faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else None
    return info


@contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """FAISS's OpenMP thread count set to ``n`` inside the block (``None``: unchanged)."""
    import faiss

    prev = int(faiss.omp_get_max_threads())
    if n is not None:
        if n < 1:
            raise InputError(f"threads must be at least 1, got {n}")
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(prev)


def run_with_faiss_threads(run: Callable[[Any, Path, Progress | None], SuiteResult], cfg: Any,
                           work_dir: Path, progress: Progress | None) -> SuiteResult:
    """``run(cfg, work_dir, progress)`` with FAISS on ``cfg.threads`` OpenMP threads
    (``None``: its default), recording the count it ran with in the result's config."""
    import faiss

    with faiss_threads(cfg.threads):
        res = run(cfg, work_dir, progress)
        res.config["faiss_threads"] = int(faiss.omp_get_max_threads())
    return res
