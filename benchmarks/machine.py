"""The machine description recorded with every benchmark result."""
from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

__all__ = ["machine_info", "PACKAGES"]

PACKAGES: tuple[str, ...] = (
    "faiss-cpu", "faiss-gpu", "torch", "numpy", "sentence-transformers", "onnxruntime", "tantivy", "rank-bm25",
    "bm25s", "jieba", "av", "faster-whisper", "rapidocr-onnxruntime",
)


def machine_info(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """CPU model, cores, RAM, load average, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions: dict[str, str | None] = {}
    for pkg in packages:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None  # recorded as absent, not an error: some are optional
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_bytes": ram,
        "memory_gib": round(ram / 2**30, 1) if ram else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }
