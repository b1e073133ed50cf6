"""What every benchmark shares, suites and single-purpose entries alike: where the
shared data lives, the command-line conventions, timing and percentiles, the recall
of a nearest-neighbour search, and how a result file is written.

Nothing here imports a suite or a ``bench_*`` entry: those import this.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from engine.errors import InputError

__all__ = [
    "free_port",
    "REPO_ROOT",
    "SHARED_DIR",
    "SHARED_MEDIA",
    "PUBLIC_QUERIES",
    "shared_media",
    "entry_parser",
    "add_out",
    "add_media",
    "write_json",
    "now_iso",
    "percentile",
    "time_each",
    "latency_summary",
    "knn_recall",
    "TreeCpu",
    "descendants",
    "proc_stat",
]

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The judged clips and queries sit beside the checkout, not in it.
SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_MEDIA = SHARED_DIR / "media"
PUBLIC_QUERIES = SHARED_DIR / "bench" / "queries-public.jsonl"


def shared_media() -> Path:
    """``$VIDSEEK_SHARED_MEDIA`` when set, else ``<repo>/../shared/media`` (the suites'
    and ``bench_quality``'s default; the other entries default to the latter alone)."""
    env = os.environ.get("VIDSEEK_SHARED_MEDIA")
    return Path(env) if env else SHARED_MEDIA


# -- command-line conventions --------------------------------------------------------------
def entry_parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.NAME``: that program name in usage lines,
    the description (usually the module docstring or its first paragraph) as written."""
    return argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_out(p: argparse.ArgumentParser, default: str | Path | None, what: str = "the JSON result") -> None:
    """``--out FILE``: where the JSON result goes (``None``: written only when given)."""
    p.add_argument("--out", type=Path, default=None if default is None else Path(default), metavar="FILE",
                   help=f"where {what} goes" + (f" (default {default})" if default is not None else ""))


def add_media(p: argparse.ArgumentParser, default: Path = SHARED_MEDIA) -> None:
    """``--media DIR``: the folder of real clips."""
    p.add_argument("--media", type=Path, default=default, metavar="DIR", help=f"folder of clips (default {default})")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server the benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- results ------------------------------------------------------------------------------
def write_json(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (UTF-8, a trailing newline) atomically: a temporary file,
    fsync, then a rename, so a reader never sees half a file. Creates the parent
    folder; values JSON cannot hold (paths, dates) are written as strings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=indent, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def emit(result: Any, text: str, json_path: str | Path | None) -> int:
    """A benchmark's end: print ``text`` (its table), write ``result`` to ``json_path``
    when one was given (``write_json``), and return the exit status 0."""
    print(text)
    if json_path:
        write_json(json_path, result)
    return 0


def now_iso() -> str:
    """Local time with its UTC offset, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# -- timing and statistics ----------------------------------------------------------------
def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (numpy's linear interpolation); NaN when there are no values."""
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def time_each(fn: Callable[[T], Any], items: Sequence[T], *, warmup: int = 0) -> tuple[list[float], list[Any]]:
    """Call ``fn`` on ``items[:warmup]`` untimed, then on every item one at a time,
    timing each call alone (``time.perf_counter``); returns (milliseconds per item,
    what each call returned)."""
    for item in items[:warmup]:
        fn(item)
    ms: list[float] = []
    out: list[Any] = []
    for item in items:
        t0 = time.perf_counter()
        r = fn(item)
        ms.append((time.perf_counter() - t0) * 1000.0)
        out.append(r)
    return ms, out


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


def knn_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Recall@k of a nearest-neighbour search: the mean share of each query's exact
    top-k ids (``truth``, (nq, k)) found among its returned ids (``found``, (nq, k');
    ids < 0 are padding). Not ``benchmarks.metrics.recall_at_k``, which scores one
    ranked list of clips against judged relevance."""
    if found.shape[0] != truth.shape[0]:
        raise InputError(f"recall: {found.shape[0]} result rows for {truth.shape[0]} queries")
    k = truth.shape[1]
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth))
    return float(hits / (k * len(truth)))



# -- CPU of a process tree ----------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of ``pid`` from ``/proc/PID/stat``; None
    when it is gone or there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (``/proc``; empty where there is none)."""
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


class TreeCpu:
    """CPU seconds (user + system) of this process and every process started under it
    while the ``with`` block runs.

    ``getrusage(RUSAGE_CHILDREN)`` counts only children this process has waited for:
    the ingest workers that a ``forkserver`` forks are its grandchildren, reaped by the
    fork server, and would be missed. So a thread also reads each descendant's CPU
    from ``/proc`` every ``every`` seconds and keeps the last reading; a direct child
    that has ended by the end is taken from ``RUSAGE_CHILDREN`` instead (no double
    count). A descendant's CPU after its last reading (at most ``every`` seconds of
    it) is missed. ``seconds`` holds the total after the block."""

    def __init__(self, every: float = 0.1) -> None:
        import threading

        self.every = every
        self.seconds = 0.0
        self._last: dict[int, tuple[int, float]] = {}
        self._first: dict[int, float] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-cpu", daemon=True)

    @staticmethod
    def _own() -> float:
        import resource

        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def _sample(self) -> None:
        for pid in descendants(os.getpid()):
            st = proc_stat(pid)
            if st is not None:
                self._last[pid] = st

    def _run(self) -> None:
        while not self._halt.wait(self.every):
            self._sample()

    def __enter__(self) -> "TreeCpu":
        for pid in descendants(os.getpid()):  # already running: count only what they spend from now
            st = proc_stat(pid)
            if st is not None:
                self._first[pid] = st[1]
        self._own0 = self._own()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._halt.set()
        self._thread.join()
        self._sample()
        me = os.getpid()
        total = self._own() - self._own0
        for pid, (ppid, cpu) in self._last.items():
            if ppid == me and proc_stat(pid) is None:
                continue  # an ended child of ours: RUSAGE_CHILDREN has it
            total += cpu - self._first.get(pid, 0.0)
        self.seconds = total
