"""What every suite shares: comparable metrics, the result shape that
``benchmarks.report`` and ``benchmarks.compare`` read, and FAISS's thread count.
Timing statistics are ``benchmarks.core``'s, the machine description
``benchmarks.machine``'s.

A suite returns a ``SuiteResult``: its settings (``config``), its ``metrics`` (flat,
named, each saying which direction is better and how much it moved between repeats,
so ``compare`` can tell a regression from noise), and ``details`` (tables and series
that the report draws). Everything in it is JSON-able.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from engine.errors import InputError

__all__ = [
    "Metric",
    "SuiteResult",
    "Progress",
    "BETTER",
    "latency_metrics",
    "faiss_threads",
    "run_with_faiss_threads",
]

# Which way a metric improves. "none": informational (counts, sizes), never a regression.
BETTER = ("higher", "lower", "none")

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


def latency_metrics(prefix: str, summary: dict[str, Any], keys: Iterable[str] = ("p50", "p90", "p99")) -> list[Metric]:
    """``Metric`` rows (lower is better) for the percentiles of a ``latency_summary``."""
    out = []
    for key in keys:
        lo, hi = summary[f"{key}_ms_range"]
        out.append(Metric(f"{prefix}/{key}_ms", summary[f"{key}_ms"], "lower", "ms", round(hi - lo, 4)))
    return out


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
