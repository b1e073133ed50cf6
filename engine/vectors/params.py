"""Search parameters: a query's ``SearchParams`` turned into FAISS ``SearchParameters``.

``SearchDefaults`` fills what a ``SearchParams`` leaves ``None`` (from
``settings.extra``: ``nprobe``, ``ef_search``, ``k_factor``);
:func:`search_parameters` builds a fresh FAISS parameter tree for one call and one
shard, so concurrent searches with different parameters share nothing mutable.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import faiss

from engine.vectors.base import SearchParams, VectorSettings, extra_int

__all__ = ["SearchDefaults", "search_parameters"]


@dataclass(frozen=True)
class SearchDefaults:
    """Values used where a ``SearchParams`` field is ``None``.

    ``nprobe`` of ``None`` means "a sixth of the shard's lists, at least 16, at
    most 384": recall tracks the probed share of the lists, and shards of
    different sizes have different ``nlist``. (On the benchmark's synthetic joint
    vectors, a 50k-vector IVF894 index needs about 1/7 of its lists for
    recall@10 0.95; smaller shards need a larger share.)

    ``disk_k_factor`` is the refine depth of shards whose refine rows are on disk
    (``@disk``): 16, because at 10M x 1536 the 4-bit PQ candidates of ``k_factor`` 8
    held recall@10 at 0.917 and 16 lifted it to 0.968 (``docs/vectors.md``), while
    the in-RAM layout at its sizes gains little past 8. A ``k_factor`` in
    ``settings.extra`` sets both.
    """

    nprobe: int | None = None
    ef_search: int = 128
    k_factor: int = 8
    disk_k_factor: int = 16
    user_k_factor: int | None = None  # a k_factor set in settings.extra (beats a shard's tuning)

    @classmethod
    def from_settings(cls, settings: VectorSettings) -> SearchDefaults:
        """Read ``nprobe`` / ``ef_search`` / ``k_factor`` overrides from ``settings.extra``."""
        extra = settings.extra or {}
        k_factor = extra_int(extra, "k_factor")
        return cls(
            nprobe=extra_int(extra, "nprobe"),
            ef_search=extra_int(extra, "ef_search") or cls.ef_search,
            k_factor=k_factor or cls.k_factor,
            disk_k_factor=k_factor or cls.disk_k_factor,
            user_k_factor=k_factor,
        )

    def tuned(self, tuning: Mapping[str, Any] | None) -> SearchDefaults:
        """These defaults with a shard's tuned ``nprobe`` / ``k_factor`` filled in
        (``engine.vectors.tune``), except where ``settings.extra`` sets them."""
        if not tuning:
            return self
        nprobe = self.nprobe if self.nprobe is not None else tuning.get("nprobe")
        k_factor = self.user_k_factor or tuning.get("k_factor")
        if nprobe == self.nprobe and not k_factor:
            return self
        return replace(self, nprobe=nprobe, k_factor=k_factor or self.k_factor,
                       disk_k_factor=k_factor or self.disk_k_factor)

    def probes(self, nlist: int, sp: SearchParams) -> int:
        """Lists to probe for this query: its nprobe, else its probe_share, else the default."""
        if sp.nprobe:
            return min(nlist, sp.nprobe)
        if sp.probe_share:
            return max(1, min(nlist, round(nlist * sp.probe_share)))
        return min(nlist, self.nprobe_for(nlist))

    def nprobe_for(self, nlist: int) -> int:
        """The default probe count for an index with ``nlist`` lists."""
        if self.nprobe is not None:
            return self.nprobe
        return max(1, min(nlist, max(16, min(384, nlist // 6))))


def search_parameters(index: Any, sp: SearchParams, defaults: SearchDefaults, k: int, sel: Any) -> Any:
    """Build the ``SearchParameters`` tree for ``index`` for one call.

    The selector goes on the leaf that stores positions; every object is new, so
    concurrent calls with different parameters share nothing mutable.
    """
    if isinstance(index, faiss.IndexRefine):
        k_factor = sp.k_factor or defaults.k_factor
        base = search_parameters(faiss.downcast_index(index.base_index), sp, defaults, k * k_factor, sel)
        return faiss.IndexRefineSearchParameters(k_factor=float(k_factor), base_index_params=base)
    if isinstance(index, faiss.IndexPreTransform):
        sub = search_parameters(faiss.downcast_index(index.index), sp, defaults, k, sel)
        return faiss.SearchParametersPreTransform(index_params=sub)
    if isinstance(index, faiss.IndexIVF):
        nprobe = defaults.probes(int(index.nlist), sp)
        p = faiss.SearchParametersIVF(nprobe=nprobe)
        quantizer = faiss.downcast_index(index.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):
            p.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(sp.ef_search or defaults.ef_search, nprobe))
        if sel is not None:
            p.sel = sel
        return p
    if isinstance(index, faiss.IndexHNSW):
        p = faiss.SearchParametersHNSW(efSearch=max(sp.ef_search or defaults.ef_search, k))
        if sel is not None:
            p.sel = sel
        return p
    gpu_ivf = getattr(faiss, "GpuIndexIVF", None)
    if gpu_ivf is not None and isinstance(index, gpu_ivf):
        nprobe = defaults.probes(int(index.nlist), sp)
        return faiss.SearchParametersIVF(nprobe=nprobe)
    if sel is not None:
        return faiss.SearchParameters(sel=sel)
    return None
