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
import numpy as np

from engine.errors import InputError

__all__ = ["GpuContext", "NodeIndex", "GPU_MAX_K", "gpu_count", "node_index_wanted"]

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


def node_index_wanted(gpu: GpuContext | None, extra: dict | None) -> bool:
    """Whether a store serves its exact (Flat) shards as one :class:`NodeIndex`: on a GPU,
    or on the CPU when ``settings.extra`` sets ``node_index`` (the CPU twin: one BLAS
    call for a batch over every shard, and what the tests check the GPU form against)."""
    flag = (extra or {}).get("node_index")
    if flag in (False, 0, "false", "no", "off"):
        return False
    return bool(flag) or (gpu is not None and gpu.enabled)


class NodeIndex:
    """Every Flat shard of a store as one index: on a GPU one ``GpuIndexFlatIP`` per
    device (``index_cpu_to_all_gpus``, rows split across devices), else one CPU
    ``IndexFlatIP``. A query batch is one search call whatever the number of shards,
    instead of one call a shard taking turns on one ``StandardGpuResources`` under
    the context's lock. Built from the shards' rows (ids kept beside), rebuilt by the
    store after any change; searches of one node index are serialised by its own
    lock when it lives on a GPU (FAISS GPU resources are not thread-safe)."""

    def __init__(self, dim: int, ids: list[np.ndarray], rows: list[np.ndarray], gpu: GpuContext | None) -> None:
        self.ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        flat = faiss.IndexFlatIP(dim)
        for x in rows:
            if len(x):
                flat.add(np.ascontiguousarray(x, dtype=np.float32))
        self.on_gpu = False
        self.index: Any = flat
        if gpu is not None and gpu.enabled and len(self.ids):
            try:
                co = faiss.GpuMultipleClonerOptions()
                co.shard = True  # one part of the rows per device
                self.index = faiss.index_cpu_to_all_gpus(flat, co=co)
                self.on_gpu = True
            except RuntimeError as e:  # out of GPU memory, a build without GPU Flat: serve from the CPU
                log.warning("node index stays on CPU: %s", str(e).splitlines()[-1])
        self._lock = threading.Lock() if self.on_gpu else None

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def max_k(self) -> int:
        return GPU_MAX_K if self.on_gpu else max(1, self.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k``: scores (nq, k) descending and global ids, padded -inf / -1."""
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        kk = min(k, self.ntotal)
        if kk == 0:
            return scores, ids
        if self._lock is not None:
            with self._lock:
                d, pos = self.index.search(queries, kk)
        else:
            d, pos = self.index.search(queries, kk)
        valid = pos >= 0
        ids[:, :kk] = np.where(valid, self.ids[np.where(valid, pos, 0)], -1)
        scores[:, :kk] = np.where(valid, d, -np.inf)
        return scores, ids
