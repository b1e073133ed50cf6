"""The GPU copy of a store's shards.

With a GPU (``use_gpu`` "auto"/"always" and ``faiss.get_num_gpus() > 0``) each shard's
inner index is copied with ``index_cpu_to_gpu`` before its first search after a
change; the CPU index stays the master that is mutated and saved. FAISS has GPU forms
for Flat and IVF-Flat/SQ/PQ but not for fast-scan PQ or refine stages, so the auto
factory's approximate shards stay on CPU (with a warning; an error under "always").
GPU indexes take no selectors: the shard over-fetches and filters tombstones there
(at most ``GPU_MAX_K`` results a call). See ``docs/gpu.md``.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import faiss

from engine.errors import InputError

__all__ = ["GpuContext", "GPU_MAX_K", "gpu_count"]

log = logging.getLogger(__name__)

GPU_MAX_K = 2048  # most FAISS GPU indexes refuse k above this


def gpu_count() -> int:
    """GPUs that this FAISS build can use (0 for faiss-cpu)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


class GpuContext:
    """Copies shards to GPU for search; one per store. Disabled unless FAISS sees a GPU."""

    def __init__(self, use_gpu: str) -> None:
        self.mode = use_gpu
        self.enabled = use_gpu != "never" and gpu_count() > 0
        if use_gpu == "always" and not self.enabled:
            raise InputError(
                'use_gpu="always" but FAISS sees no GPU',
                hint='install faiss-gpu on a CUDA machine, or set use_gpu="auto"',
            )
        self._resources: Any = None
        # Guards the shared StandardGpuResources: its per-device setup and its scratch
        # memory are not thread-safe (concurrent first copies abort inside FAISS with
        # "allocs_.count(device) == 0", seen on an H200), so copies and GPU searches
        # take this lock.
        self.lock = threading.Lock()

    def copy(self, inner: faiss.Index, shard_no: int) -> Any:
        """A GPU replica of ``inner``, or ``False`` when this index type has no GPU form."""
        ngpu = gpu_count()
        with self.lock:
            if self._resources is None:
                self._resources = faiss.StandardGpuResources()
            try:
                replica = faiss.index_cpu_to_gpu(self._resources, shard_no % ngpu, inner)
                reason = None if _has_gpu_part(replica) else "FAISS has no GPU form for it"
            except RuntimeError as e:
                replica, reason = None, str(e).splitlines()[-1]
        if reason is None:
            return replica
        # The cloner copies unsupported types (fast-scan PQ, refine stages) to CPU
        # instead of failing: such a "replica" would only double the memory.
        if self.mode == "always":
            raise InputError(
                f"shard {shard_no}: cannot move {type(inner).__name__} to GPU: {reason}",
                hint='choose a GPU-capable approx_factory ("IVF{nlist},Flat", "IVF{nlist},SQ8", '
                '"IVF{nlist},PQ64") or use_gpu="auto"',
            )
        log.warning("shard %d: %s stays on CPU (%s)", shard_no, type(inner).__name__, reason)
        return False


def _has_gpu_part(index: Any) -> bool:
    """True if ``index`` or a sub-index it wraps is a FAISS GPU index."""
    while index is not None:
        if type(index).__name__.startswith("Gpu"):
            return True
        sub = getattr(index, "index", None) or getattr(index, "base_index", None)
        index = faiss.downcast_index(sub) if sub is not None else None
    return False
