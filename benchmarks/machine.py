"""The machine description recorded with every benchmark result (the one copy).

``machine_info`` is the common record (CPU, cores, RAM, load, Python, library
versions); ``describe_machine`` adds what the suites need to compare runs (the peers'
versions, usable cores, FAISS threads); ``vector_machine_info`` is the layout that
``bench_vectors`` has always written, built from the same parts.
"""
from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "machine_info",
    "describe_machine",
    "vector_machine_info",
    "cpu_model",
    "memory_bytes",
    "loadavg",
    "affinity_cores",
    "faiss_details",
    "PACKAGES",
    "EXTRA_PACKAGES",
]

PACKAGES: tuple[str, ...] = (
    "faiss-cpu", "faiss-gpu", "torch", "numpy", "sentence-transformers", "onnxruntime", "tantivy", "rank-bm25",
    "bm25s", "jieba", "av", "faster-whisper", "rapidocr-onnxruntime",
)
# Reported beside the engine's own packages by the suites: the peers and the plotting library.
EXTRA_PACKAGES: tuple[str, ...] = ("txtai", "transformers", "matplotlib", "psutil", "msgpack")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def memory_bytes() -> int | None:
    """Physical memory in bytes (``None`` where the OS does not say)."""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def loadavg() -> list[float] | None:
    """The 1, 5 and 15-minute load averages now (``None`` where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def affinity_cores() -> int | None:
    """How many cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def faiss_details() -> dict[str, Any]:
    """FAISS's OpenMP thread count and compile options (imports faiss)."""
    import faiss

    return {
        "faiss_omp_threads": int(faiss.omp_get_max_threads()),
        "faiss_compile_options": faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else None,
    }


def machine_info(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """CPU model, cores, RAM, load average, Python and library versions."""
    ram = memory_bytes()
    versions: dict[str, str | None] = {}
    for pkg in packages:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None  # recorded as absent, not an error: some are optional
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": ram,
        "memory_gib": round(ram / 2**30, 1) if ram else None,
        "loadavg": loadavg(),
        "versions": versions,
    }


def describe_machine() -> dict[str, Any]:
    """``machine_info`` plus the peers' versions, the cores this process may use and
    FAISS's thread count: what a reader needs to compare suite runs."""
    info = machine_info((*PACKAGES, *EXTRA_PACKAGES))
    info["affinity_cores"] = affinity_cores()
    info.update(faiss_details())
    return info


def vector_machine_info() -> dict[str, Any]:
    """The machine as ``bench_vectors`` records it: CPU, logical/physical/usable cores,
    RAM, load, numpy and FAISS versions, FAISS threads and GPUs."""
    import faiss
    import numpy as np
    import psutil

    get_gpus = getattr(faiss, "get_num_gpus", None)
    fd = faiss_details()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": affinity_cores(),
        "ram_bytes": memory_bytes(),
        "load_avg": loadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "faiss_compile_options": fd["faiss_compile_options"],
        "faiss_omp_threads": fd["faiss_omp_threads"],
        "gpus": int(get_gpus()) if get_gpus else 0,
    }
