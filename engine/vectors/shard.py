"""One FAISS shard: an exact ``Flat`` index that turns approximate when it grows.

A shard is an ``IndexIDMap`` over an *inner* index whose internal ids are positions
``0..ntotal-1``; the ``IndexIDMap`` holds the global int64 ids (``add_with_ids``) and
travels inside the shard's ``.faiss`` file, so ids and vectors are checksummed and
replaced together. Searches run on the inner index and map positions to ids here:
that keeps every selector positional (one bitmap), whatever the index nesting.
Which factory a shard is built with: :mod:`engine.vectors.factory`; how a query's
parameters reach FAISS: :mod:`engine.vectors.params`; the GPU copy used for search:
:mod:`engine.vectors.gpu`.

Life of a shard
---------------
- Up to ``flat_max`` live vectors the inner index is ``IndexFlatIP`` (exact); removal
  is a real ``remove_ids``.
- The add that takes it past ``flat_max`` rebuilds it as the approximate factory
  (``approx_factory``, or :func:`~engine.vectors.factory.auto_factory`), trained on up to ``train_sample`` of
  the shard's own vectors (the old ones reconstructed exactly from the Flat index,
  plus the new batch). Ids and order are preserved.
- Approximate indexes cannot ``remove_ids`` through an id map (IVF keeps stale
  internal ids, refine stages and HNSW cannot remove at all), so removal marks the
  positions as tombstones. On CPU they are filtered inside FAISS through an
  ``IDSelectorBitmap`` passed in the per-call ``SearchParameters``; on GPU (no
  selectors) the shard over-fetches and filters. ``compact`` rebuilds without them.
- An ``{nlist}`` factory is retrained once the shard has grown ``retrain_growth``
  (default 8) times past the size it was trained at, so ``nlist`` follows the data.

What a rebuild needs, and what it costs
---------------------------------------
Compaction and retraining re-add vectors reconstructed from the index itself, so no
raw-vector sidecar is kept. The auto factories store vectors losslessly for that
purpose: ``IVF{nlist},Flat`` (4*d bytes a vector) for small dims, and for larger
dims a ``Refine(SQfp16)`` stage (2*d bytes a vector: 3 KiB at d=1536) beside the
fast-scan PQ codes (d/16 bytes). Float16 re-encodes bit-exactly, so rebuilds lose
nothing after the first rounding. A user factory with a lossy refine stage (PQ, SQ8)
keeps its trained refine codec across rebuilds, which also re-encodes exactly; only a
factory *without* a refine stage and with lossy codes (e.g. ``IVF..,PQ..``) loses
precision at each compaction, and is never retrained from its own reconstructions.
An ``@disk`` factory (``Refine(SQfp16@disk)``, :func:`~engine.vectors.factory.compressed_factory`) keeps the
float16 rows in an append-only file instead (:mod:`engine.vectors.vecfile`): FAISS
holds only the base index, searches ask it for ``k * k_factor`` candidates and rank
them by exact inner products with their rows read from the file, and rebuilds read
the rows back from it (exactly) into a new file.
Besides the index, a shard holds its ids twice (8 bytes each in the id map, 8 in a
sorted copy for duplicate checks) and, while it has tombstones, a byte a vector of
mask plus a bit a vector of selector bitmap. Rebuilds briefly hold old and new index.

``settings.extra`` keys read here: ``retrain_growth`` (default 8); ``nprobe``,
``ef_search`` and ``k_factor`` are search defaults (:class:`engine.vectors.params.SearchDefaults`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import faiss
import numpy as np

from engine.atomic import fsync_dir, fsync_path, sha256_file
from engine.errors import CorruptIndexError
from engine.vectors.base import SearchParams, VectorSettings
from engine.vectors.factory import FLAT_FACTORY, REFINE_RE, nlist_for, resolve_factory, split_disk_refine
from engine.vectors.gpu import GPU_MAX_K, GpuContext
from engine.vectors.params import SearchDefaults, search_parameters
from engine.vectors.tune import describe, tune_shard, tuning_enabled
from engine.vectors.vecfile import VectorFile

__all__ = ["FaissShard", "ShardFiles", "DEFAULT_RETRAIN_GROWTH"]

log = logging.getLogger(__name__)

DEFAULT_RETRAIN_GROWTH = 8.0
_ADD_CHUNK = 65_536  # rows re-added per call during rebuilds; bounds transient memory


@dataclass(frozen=True)
class ShardFiles:
    """What the manifest records for one saved shard."""

    file: str | None
    sha256: str | None
    bytes: int
    tomb_file: str | None
    tomb_sha256: str | None
    vec_file: str | None = None  # on-disk refine rows (vecfile.py), when the factory has one
    vec_rows: int = 0
    vec_sha256: list[str] | None = None  # one digest per vecfile.BLOCK_ROWS rows
    vec_bytes: int = 0


class _Structure:
    """Facts about an inner index, found by walking it once after each rebuild."""

    def __init__(self, inner: faiss.Index) -> None:
        self.refine = isinstance(inner, faiss.IndexRefine)
        leaf = inner
        while True:
            if isinstance(leaf, faiss.IndexRefine):
                leaf = faiss.downcast_index(leaf.base_index)
            elif isinstance(leaf, faiss.IndexPreTransform):
                leaf = faiss.downcast_index(leaf.index)
            else:
                break
        self.leaf = leaf
        self.ivf = leaf if isinstance(leaf, faiss.IndexIVF) else None
        self.nlist = int(self.ivf.nlist) if self.ivf is not None else None
        self.selector_ok = isinstance(leaf, (faiss.IndexIVF, faiss.IndexHNSW, faiss.IndexFlat))



class FaissShard:
    """One shard of a ``VectorStore``: global ids, Flat-then-approximate, tombstones.

    Not thread-safe on its own: the store serialises mutations against searches
    (a readers-writer lock); concurrent ``search`` calls are safe.
    """

    def __init__(
        self,
        shard_no: int,
        settings: VectorSettings,
        index: faiss.IndexIDMap | None = None,
        tombstones: np.ndarray | None = None,
        trained_n: int = 0,
        factory: str = FLAT_FACTORY,
        gpu: GpuContext | None = None,
        vecs: VectorFile | None = None,
        folder: Path | None = None,
        writable: bool = True,
        tuned: dict | None = None,
    ) -> None:
        self.shard_no = shard_no
        self.settings = settings
        self.dim = settings.dim
        if index is None:
            index = faiss.IndexIDMap(faiss.IndexFlatIP(self.dim))
        self.index = index
        self.inner = faiss.downcast_index(index.index)
        self.trained_n = trained_n
        self.factory = factory
        self.dirty = False
        # Search defaults measured on this shard's data (engine.vectors.tune); None: untuned.
        self.tuned = dict(tuned) if tuned else None
        # On-disk refine rows (``Refine(SQfp16@disk)`` factories): row i = position i.
        # ``_folder`` is where rebuilds write new files; None keeps them in memory
        # (read-only stores never write). ``_committed_vec`` is the file the saved
        # manifest names, which must survive until a later manifest drops it.
        self._vecs = vecs
        self._writable = writable and folder is not None
        self._folder = folder if self._writable else None
        self._committed_vec = vecs.name if vecs is not None else None
        if vecs is not None and vecs.rows != int(index.ntotal):
            raise CorruptIndexError(
                f"shard {shard_no}: {vecs.rows} on-disk refine rows for {int(index.ntotal)} indexed vectors",
                hint="the vector file does not belong to this index file; restore the index folder",
            )
        self._gpu = gpu
        self._replica: Any = None
        self._replica_lock = threading.Lock()
        # Tombstones: empty when there are none, else a mask of length ntotal.
        self._tomb_mask = np.zeros(0, dtype=bool)
        self._n_tomb = 0
        self._tomb_ids = np.zeros(0, dtype=np.int64)  # sorted global ids of tombstones
        self._selector: Any = None
        self._structure = _Structure(self.inner)
        self._sorted_ids = np.sort(self._id_map()) if self.index.ntotal else np.zeros(0, np.int64)
        self._order: np.ndarray | None = None  # positions sorted by global id; rebuilt lazily after a change
        if tombstones is not None and len(tombstones):
            self._set_tombstones(np.asarray(tombstones, dtype=np.int64))

    # ----------------------------------------------------------------- facts
    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"approx"``."""
        return "flat" if isinstance(self.inner, faiss.IndexFlat) else "approx"

    @property
    def ntotal(self) -> int:
        """Stored vectors, tombstoned ones included."""
        return int(self.index.ntotal)

    @property
    def tombstone_count(self) -> int:
        """Removed vectors still stored (approximate shards only)."""
        return self._n_tomb

    def count(self) -> int:
        """Live vectors."""
        return self.ntotal - self.tombstone_count

    def tombstone_positions(self) -> np.ndarray:
        """Positions (internal ids) of tombstoned vectors, sorted."""
        if not self._n_tomb:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self._tomb_mask).astype(np.int64)

    def live_ids(self) -> np.ndarray:
        """Global ids of live vectors, sorted."""
        ids = self._id_map()
        if self._n_tomb:
            ids = ids[~self._tomb_mask]
        return np.sort(ids)

    def contains_live(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` are live in this shard."""
        found = _isin_sorted(ids, self._sorted_ids)
        if self._n_tomb and found.any():
            found &= ~_isin_sorted(ids, self._tomb_ids)
        return found

    @property
    def stores_exactly(self) -> bool:
        """True when stored vectors read back as added (Flat: exactly; an fp16 refine
        stage: rounded to float16), so :meth:`stored_vectors` may stand in for them."""
        if isinstance(self.inner, faiss.IndexFlat) or self._vecs is not None:
            return True
        return self._structure.refine and self._exact_storage_refine()

    def stored_vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of ``ids`` live here, their stored vectors in that order).

        Why: a search scores its few hundred candidates per modality; reading the
        vectors back from the index costs microseconds where fetching them from the
        catalog costs milliseconds. Only meaningful when :attr:`stores_exactly`.
        """
        mask = self.contains_live(ids)
        if not mask.any():
            return mask, np.zeros((0, self.dim), dtype=np.float32)
        order = self._order
        if order is None:
            order = np.argsort(self._id_map(), kind="stable")
            self._order = order
        found = ids[mask]
        positions = order[np.searchsorted(self._sorted_ids, found)]
        return mask, self._reconstruct(positions)

    def info(self) -> dict:
        """A JSON-able description of this shard."""
        return {
            "shard": self.shard_no,
            "kind": self.kind,
            "factory": self.factory,
            "count": self.count(),
            "ntotal": self.ntotal,
            "tombstones": self.tombstone_count,
            "nlist": self._structure.nlist,
            "trained_n": self.trained_n,
            "refine_on_disk": self._vecs is not None,
            "on_gpu": self._replica is not None and self._replica is not False,
            "tuned": self.tuned,
        }

    # Facts the tuner (engine.vectors.tune) reads.
    @property
    def ivf_nlist(self) -> int | None:
        """Lists of an approximate shard's IVF leaf (None: Flat, HNSW, ...)."""
        return self._structure.nlist if self.kind == "approx" else None

    @property
    def has_refine(self) -> bool:
        """Whether searches re-rank ``k * k_factor`` candidates (in RAM or on disk)."""
        return self._structure.refine or self._vecs is not None

    @property
    def refine_on_disk(self) -> bool:
        return self._vecs is not None

    @property
    def code_bytes(self) -> int:
        """Bytes of a vector's code in the IVF leaf (what a probe scans)."""
        return int(getattr(self._structure.leaf, "code_size", 0) or 0)

    def live_positions(self) -> np.ndarray:
        """Positions of live vectors, ascending."""
        return np.flatnonzero(~self._tomb_mask) if self._n_tomb else np.arange(self.ntotal)

    def reconstruct(self, positions: np.ndarray) -> np.ndarray:
        """Stored vectors at ``positions`` (see :meth:`_reconstruct`)."""
        return self._reconstruct(positions)

    def flat_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(global ids, their float32 rows) of a Flat shard, as copies (the node index)."""
        n = self.ntotal
        if n == 0 or self.kind != "flat":
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        xb = faiss.rev_swig_ptr(self.inner.get_xb(), n * self.dim).reshape(n, self.dim)
        return self._id_map().copy(), np.array(xb, dtype=np.float32)

    def id_map(self) -> np.ndarray:
        """Position -> global id (a view valid until the next mutation)."""
        return self._id_map()

    def tune(self, force: bool = False) -> dict | None:
        """Measure this shard's search defaults (``engine.vectors.tune``) when it has none,
        ``force``, or it has doubled since they were measured; returns them."""
        if self.kind != "approx" or not tuning_enabled(self.settings.extra):
            self.tuned = None
            return None
        if not force and self.tuned and self.ntotal < 2 * int(self.tuned.get("at_n") or 0):
            return self.tuned
        defaults = SearchDefaults.from_settings(self.settings)
        try:
            nlist = self.ivf_nlist or 1
            floor_kf = defaults.disk_k_factor if self._vecs is not None else defaults.k_factor
            self.tuned = tune_shard(self, lambda q, k, sp: self.search(q, k, sp, defaults, cpu=True)[1],
                                    floor_nprobe=defaults.nprobe_for(nlist), floor_k_factor=floor_kf)
        except (RuntimeError, ValueError, MemoryError) as e:  # tuning is an optimisation: keep serving
            log.warning("shard %d: tuning failed (%s); default search settings apply", self.shard_no, e)
            self.tuned = None
        log.info("shard %d (%d vectors) tuned: %s", self.shard_no, self.ntotal, describe(self.tuned))
        self.dirty = True
        return self.tuned

    def _id_map(self) -> np.ndarray:
        """Position -> global id, as a zero-copy view valid until the next mutation."""
        n = self.index.id_map.size()
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        return faiss.rev_swig_ptr(self.index.id_map.data(), n).view(np.int64)

    # -------------------------------------------------------------- mutation
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids`` (validated by the store: unique and not live)."""
        if len(ids) == 0:
            return
        if self._n_tomb and _isin_sorted(ids, self._tomb_ids).any():
            # An id coming back while its old vector is still stored: purge first so
            # that the id maps to exactly one position.
            self.compact(force=True)
        live_after = self.count() + len(ids)
        if self.kind == "flat" and live_after > self.settings.flat_max:
            self._rebuild(extra_ids=ids, extra_vectors=vectors, retrain=True)
            self.tune(force=True)
            return
        if self._vecs is not None:
            before = self._vecs.rows
            self._vecs.append(vectors, self._writable)
            try:
                self.index.add_with_ids(vectors, ids)
            except BaseException:
                self._vecs.rollback(before)
                raise
        else:
            self.index.add_with_ids(vectors, ids)
        self._after_mutation(added=ids)
        if self._should_retrain():
            self._rebuild(retrain=True)
            self.tune(force=True)
        elif self.tuned is None or self.ntotal >= 2 * int(self.tuned.get("at_n") or 0):
            self.tune()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (unknown ones are ignored); returns how many were live."""
        live = ids[self.contains_live(ids)]
        if len(live) == 0:
            return 0
        if self.kind == "flat":
            removed = self.index.remove_ids(faiss.IDSelectorBatch(live))
            if removed != len(live):
                raise CorruptIndexError(
                    f"shard {self.shard_no}: remove_ids removed {removed} of {len(live)} ids",
                    hint="the shard's id map disagrees with its index; rebuild the index",
                )
            self._after_mutation(removed=live)
        else:
            pos = np.flatnonzero(np.isin(self._id_map(), live))
            self._set_tombstones(np.union1d(self.tombstone_positions(), pos))
            self._mark_dirty()
        return len(live)

    def needs_compaction(self) -> bool:
        """True when tombstones exceed ``compact_ratio`` of the stored vectors."""
        return self.tombstone_count > 0 and self.tombstone_count > self.settings.compact_ratio * self.ntotal

    def compact(self, force: bool = False) -> bool:
        """Rebuild without tombstones if over ``compact_ratio`` (or any, with ``force``)."""
        if self.tombstone_count == 0 or not (force or self.needs_compaction()):
            return False
        self._rebuild(retrain=False)
        return True

    def _after_mutation(self, added: np.ndarray | None = None, removed: np.ndarray | None = None) -> None:
        if added is not None:
            new = np.sort(added)  # insert by position: O(n) per batch, not a full re-sort
            self._sorted_ids = np.insert(self._sorted_ids, np.searchsorted(self._sorted_ids, new), new)
            if self._n_tomb:  # keep the mask as long as the index; new positions are live
                self._tomb_mask = np.concatenate([self._tomb_mask, np.zeros(len(added), dtype=bool)])
        if removed is not None:
            self._sorted_ids = self._sorted_ids[~_isin_sorted(self._sorted_ids, np.sort(removed))]
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        self.dirty = True
        self._replica = None
        self._order = None

    def _set_tombstones(self, positions: np.ndarray) -> None:
        """Install the tombstone set (positions) and the selector that hides it."""
        if len(positions) == 0:
            self._tomb_mask = np.zeros(0, dtype=bool)
            self._n_tomb = 0
            self._tomb_ids = np.zeros(0, dtype=np.int64)
            self._selector = None
            return
        if positions.min() < 0 or positions.max() >= self.ntotal:
            raise CorruptIndexError(
                f"shard {self.shard_no}: tombstone position out of range 0..{self.ntotal - 1}",
                hint="the tombstone file does not belong to this index file; restore the index folder",
            )
        mask = np.zeros(self.ntotal, dtype=bool)
        mask[positions] = True
        self._tomb_mask = mask
        self._n_tomb = int(mask.sum())
        self._tomb_ids = np.sort(self._id_map()[mask])
        # Bit i set = position i removed; IDSelectorNot keeps everything else, and
        # positions added later (beyond the bitmap) read as "not removed".
        bitmap = np.packbits(mask, bitorder="little")
        self._selector = faiss.IDSelectorNot(faiss.IDSelectorBitmap(bitmap))

    def _should_retrain(self) -> bool:
        if self.kind != "approx" or self.trained_n <= 0:
            return False
        template = self.settings.approx_factory
        if template not in ("auto", "compressed") and "{nlist}" not in template:
            return False
        growth = float((self.settings.extra or {}).get("retrain_growth", DEFAULT_RETRAIN_GROWTH))
        if growth <= 1 or self.ntotal < growth * self.trained_n:
            return False
        if nlist_for(self.ntotal, min(self.ntotal, self.settings.train_sample)) <= (self._structure.nlist or 0):
            return False  # more data would not buy more lists (train_sample caps nlist)
        # Without a refine stage a retrain re-encodes lossy reconstructions.
        return self._structure.refine or self._exact_storage()

    def _exact_storage(self) -> bool:
        if self._vecs is not None:
            return True
        leaf = self._structure.leaf
        return isinstance(leaf, (faiss.IndexIVFFlat, faiss.IndexFlat)) or (
            isinstance(leaf, faiss.IndexHNSW) and isinstance(faiss.downcast_index(leaf.storage), faiss.IndexFlat)
        )

    # --------------------------------------------------------------- rebuild
    def _reconstruct(self, positions: np.ndarray) -> np.ndarray:
        """Vectors at ``positions`` as stored (exact for Flat, refine-stage codec otherwise)."""
        if len(positions) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._vecs is not None:
            return self._vecs.read(positions)
        if isinstance(self.inner, faiss.IndexFlat):
            xb = faiss.rev_swig_ptr(self.inner.get_xb(), self.ntotal * self.dim).reshape(self.ntotal, self.dim)
            return np.array(xb[positions], dtype=np.float32)
        ivf = None if self._structure.refine else self._structure.ivf
        made_map = False
        if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map(True)
            made_map = True
        try:
            return self.inner.reconstruct_batch(np.ascontiguousarray(positions, dtype=np.int64))
        finally:
            if made_map:
                ivf.make_direct_map(False)

    def _rebuild(
        self,
        retrain: bool,
        extra_ids: np.ndarray | None = None,
        extra_vectors: np.ndarray | None = None,
    ) -> None:
        """Replace the index by a fresh one holding the live vectors (+ ``extra``), same order."""
        keep = np.flatnonzero(~self._tomb_mask) if self._n_tomb else np.arange(self.ntotal)
        total = len(keep) + (0 if extra_ids is None else len(extra_ids))
        new_inner, factory, trained_n = self._new_inner(keep, extra_vectors, total, retrain)
        new_index = faiss.IndexIDMap(new_inner)
        # Positions change, so an on-disk refine stage gets a new file.
        new_vecs = VectorFile.create(self._folder, self.shard_no, self.dim) if split_disk_refine(factory)[1] else None
        try:
            self._refill(new_index, new_vecs, keep, extra_ids, extra_vectors)
            if new_index.ntotal != total or (new_vecs is not None and new_vecs.rows != total):
                raise CorruptIndexError(
                    f"shard {self.shard_no}: rebuild produced {new_index.ntotal} vectors, expected {total}",
                    hint="this is a bug; the old index is kept",
                )
        except BaseException:
            if new_vecs is not None:
                new_vecs.delete()
            raise
        self._install(new_index, new_vecs, factory, trained_n)
        log.info("shard %d rebuilt as %s with %d vectors", self.shard_no, factory, total)

    def _new_inner(
        self, keep: np.ndarray, extra_vectors: np.ndarray | None, total: int, retrain: bool
    ) -> tuple[faiss.Index, str, int]:
        """The empty inner index a rebuild to ``total`` vectors fills: (index, factory, trained_n)."""
        if total <= self.settings.flat_max:
            return faiss.IndexFlatIP(self.dim), FLAT_FACTORY, 0
        if retrain or self.kind == "flat":
            sample = self._training_sample(keep, extra_vectors, total)
            new_inner, factory = self._build_approx(total, sample)
            return new_inner, factory, total
        # Compaction keeps the trained quantizers: re-encoding stored codes with
        # the codec that produced them gives the same codes back.
        new_inner = faiss.clone_index(self.inner)
        new_inner.reset()
        return new_inner, self.factory, self.trained_n

    def _refill(
        self,
        new_index: faiss.IndexIDMap,
        new_vecs: VectorFile | None,
        keep: np.ndarray,
        extra_ids: np.ndarray | None,
        extra_vectors: np.ndarray | None,
    ) -> None:
        """Add the vectors at positions ``keep`` (in order, then ``extra``) to the new index."""
        old_ids = self._id_map()[keep].copy()
        for start in range(0, len(keep), _ADD_CHUNK):
            chunk = keep[start : start + _ADD_CHUNK]
            x = self._reconstruct(chunk)
            new_index.add_with_ids(x, old_ids[start : start + _ADD_CHUNK])
            if new_vecs is not None:
                new_vecs.append(x, self._writable)
        if extra_ids is not None and len(extra_ids):
            new_index.add_with_ids(extra_vectors, extra_ids)
            if new_vecs is not None:
                new_vecs.append(extra_vectors, self._writable)

    def _install(self, new_index: faiss.IndexIDMap, new_vecs: VectorFile | None, factory: str, trained_n: int) -> None:
        """Make a rebuilt index (and its refine file) the shard's, dropping the old ones."""
        old_vecs, self._vecs = self._vecs, new_vecs
        if old_vecs is not None:
            if old_vecs.name is not None and old_vecs.name != self._committed_vec:
                old_vecs.delete()  # written since the last save: no manifest names it
            else:
                old_vecs.close()  # the saved manifest names it; save() deletes it once superseded
        self.index = new_index
        self.inner = faiss.downcast_index(new_index.index)
        self.factory = factory
        self.trained_n = trained_n
        if factory == FLAT_FACTORY:
            self.tuned = None
        self._structure = _Structure(self.inner)
        self._sorted_ids = np.sort(self._id_map())
        self._set_tombstones(np.zeros(0, dtype=np.int64))
        self._mark_dirty()

    def _training_sample(self, keep: np.ndarray, extra: np.ndarray | None, total: int) -> np.ndarray:
        rng = np.random.default_rng([self.shard_no, total])
        size = min(total, max(1, self.settings.train_sample))
        picks = np.sort(rng.choice(total, size=size, replace=False))
        old_picks = picks[picks < len(keep)]
        parts = [self._reconstruct(keep[old_picks])]
        if extra is not None:
            parts.append(np.asarray(extra[picks[picks >= len(keep)] - len(keep)], dtype=np.float32))
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _build_approx(self, n: int, sample: np.ndarray) -> tuple[faiss.Index, str]:
        desc = resolve_factory(self.settings.approx_factory, self.dim, n, len(sample))
        base_desc, disk = split_disk_refine(desc)
        if disk:
            # The refine stage is the shard's VectorFile; FAISS holds only the base.
            index = faiss.index_factory(self.dim, base_desc, faiss.METRIC_INNER_PRODUCT)
            index.train(sample)
            return index, desc
        m = REFINE_RE.match(desc)
        keep_refine = (
            m is not None
            and self.kind == "approx"
            and self._structure.refine
            and self._vecs is None
            and not self._exact_storage_refine()
        )
        if m is None:
            index = faiss.index_factory(self.dim, desc, faiss.METRIC_INNER_PRODUCT)
            index.train(sample)
            return index, desc
        base = faiss.index_factory(self.dim, m.group("base"), faiss.METRIC_INNER_PRODUCT)
        base.train(sample)
        if keep_refine:
            # A lossy refine codec keeps its training: decoding then re-encoding
            # with the same codec is exact, so rebuilds do not compound its error.
            refine = faiss.clone_index(faiss.downcast_index(self.inner.refine_index))
            refine.reset()
        else:
            refine_desc = "Flat" if m.group("rflat") else m.group("refine")
            refine = faiss.index_factory(self.dim, refine_desc, faiss.METRIC_INNER_PRODUCT)
            refine.train(sample)
        return faiss.IndexRefine(base, refine), desc

    def _exact_storage_refine(self) -> bool:
        refine = faiss.downcast_index(self.inner.refine_index)
        if isinstance(refine, faiss.IndexFlat):
            return True
        return isinstance(refine, faiss.IndexScalarQuantizer) and refine.sq.qtype == faiss.ScalarQuantizer.QT_fp16

    # ---------------------------------------------------------------- search
    def search(
        self, queries: np.ndarray, k: int, sp: SearchParams, defaults: SearchDefaults, cpu: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of this shard: scores (nq, k) descending and global ids, padded -inf / -1.

        ``defaults`` are the store's; this shard's tuned values fill the knobs they leave
        unset. ``cpu`` searches the CPU index even where a GPU replica exists (tuning)."""
        defaults = defaults.tuned(self.tuned)
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        n = self.ntotal
        if n == 0 or self.count() == 0:
            return scores, ids
        index = self.inner if cpu else self._search_index()
        on_gpu = index is not self.inner
        kk = min(k, n)
        k_out = kk
        if self._vecs is not None:  # the base finds k * k_factor candidates; the disk rows rank them
            kk = min(n, kk * (sp.k_factor or defaults.disk_k_factor))
        use_sel = self.tombstone_count > 0 and not on_gpu and self._structure.selector_ok
        # FAISS's StandardGpuResources is not thread-safe: the shards' GPU replicas share
        # one, so GPU searches are serialised (the device runs one query batch at a time
        # anyway); CPU shards still search in parallel.
        with self._gpu.lock if on_gpu and self._gpu is not None else contextlib.nullcontext():
            if self.tombstone_count == 0 or use_sel:
                params = search_parameters(index, sp, defaults, kk, self._selector if use_sel else None)
                dist, pos = index.search(queries, kk, params=params)
            else:
                dist, pos = self._search_overfetch(index, queries, kk, sp, defaults, on_gpu)
        if self._vecs is not None:
            dist, pos = self._refine_on_disk(queries, pos, k_out)
        id_map = self._id_map()
        valid = pos >= 0
        got = np.where(valid, id_map[np.where(valid, pos, 0)], -1)
        ids[:, : got.shape[1]] = got
        scores[:, : got.shape[1]] = np.where(valid, dist, -np.inf)
        return scores, ids

    def _refine_on_disk(self, queries: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of each query with its candidates' float16 rows; top ``k``."""
        nq, kb = pos.shape
        scores = np.full((nq, kb), -np.inf, dtype=np.float32)
        for q0 in range(0, nq, 64):  # bounds the rows held at once to 64 * kb
            p = pos[q0 : q0 + 64]
            valid = p >= 0
            if not valid.any():
                continue
            uniq, inv = np.unique(p[valid], return_inverse=True)
            sims = self._vecs.read(uniq) @ queries[q0 : q0 + 64].T  # (unique rows, queries)
            rows, _cols = np.nonzero(valid)
            block = scores[q0 : q0 + 64]
            block[valid] = sims[inv.ravel(), rows]
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        dist = np.take_along_axis(scores, order, axis=1)
        pos = np.where(np.isfinite(dist), np.take_along_axis(pos, order, axis=1), -1)
        return dist, pos

    def _search_overfetch(
        self, index: Any, queries: np.ndarray, kk: int, sp: SearchParams, defaults: SearchDefaults, on_gpu: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search deeper than ``kk`` and drop tombstones, doubling depth while rows fall short."""
        n = self.ntotal
        cap = min(n, GPU_MAX_K) if on_gpu else n
        fetch = min(cap, kk + min(self.tombstone_count, 4 * kk) + kk)
        while True:
            params = search_parameters(index, sp, defaults, fetch, None)
            dist, pos = index.search(queries, fetch, params=params)
            dead = np.zeros(pos.shape, dtype=bool)
            inside = pos >= 0
            dead[inside] = self._tomb_mask[pos[inside]]  # mask is ntotal long here
            alive = inside & ~dead
            short = alive.sum(axis=1) < kk
            exhausted = (~inside).any(axis=1)  # the index had no more candidates to give
            if not (short & ~exhausted).any() or fetch >= cap:
                break
            fetch = min(cap, fetch * 4)
        order = np.argsort(~alive, axis=1, kind="stable")[:, :kk]  # alive first, rank order kept
        pos = np.take_along_axis(np.where(alive, pos, -1), order, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        return dist, pos

    def _search_index(self) -> Any:
        if self._gpu is None or not self._gpu.enabled:
            return self.inner
        replica = self._replica
        if replica is None:
            with self._replica_lock:
                if self._replica is None:
                    self._replica = self._gpu.copy(self.inner, self.shard_no)
                replica = self._replica
        return replica if replica is not False else self.inner

    # ----------------------------------------------------------- persistence
    def write(self, folder: Path, generation: int, step: Callable[[str], None]) -> ShardFiles:
        """Write this shard's files under new generation names (temp, fsync, rename).

        ``step`` is called after each file lands (the crash tests kill the process there).
        """
        if self.ntotal == 0:
            return ShardFiles(None, None, 0, None, None)
        vec_name, vec_rows, vec_digests = None, 0, None
        if self._vecs is not None:
            vec_name, vec_rows, vec_digests = self._vecs.commit()
            step("shard-vectors")
        name = f"shard-{self.shard_no:03d}.{generation:06d}.faiss"
        final = folder / name
        tmp = folder / f".{name}.tmp"
        faiss.write_index(self.index, str(tmp))
        fsync_path(tmp)
        os.replace(tmp, final)
        step("shard-index")
        tomb_file = tomb_sha = None
        if self.tombstone_count:
            tomb_name = f"shard-{self.shard_no:03d}.{generation:06d}.tomb.npy"
            tmp = folder / f".{tomb_name}.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, self.tombstone_positions())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / tomb_name)
            step("shard-tombstones")
            tomb_file, tomb_sha = tomb_name, sha256_file(folder / tomb_name)
        fsync_dir(folder)
        return ShardFiles(
            name,
            sha256_file(final),
            final.stat().st_size,
            tomb_file,
            tomb_sha,
            vec_name,
            vec_rows,
            vec_digests,
            vec_rows * self._vecs.row_bytes if self._vecs is not None else 0,
        )

    def mark_committed(self, files: ShardFiles) -> None:
        """Called once the manifest naming ``files`` has landed."""
        self.dirty = False
        self._committed_vec = files.vec_file

    def verify(self) -> None:
        """Hash every committed block of the on-disk refine file (no-op without one)."""
        if self._vecs is not None and self._vecs.name is not None:
            self._vecs.verify()

    def close(self) -> None:
        """Release the on-disk refine file's descriptor."""
        if self._vecs is not None:
            self._vecs.close()

    @classmethod
    def read(
        cls,
        folder: Path,
        shard_no: int,
        settings: VectorSettings,
        meta: dict,
        gpu: GpuContext | None,
        writable: bool = True,
    ) -> FaissShard:
        """Load a shard from the files its manifest entry names (checksums already verified,
        except the on-disk refine file's blocks, which ``VectorFile.open`` checks)."""
        if not meta.get("file"):
            return cls(shard_no, settings, gpu=gpu, folder=folder, writable=writable)
        path = folder / meta["file"]
        index = _read_index_file(path, settings.dim)
        tombs = _read_tombstones(folder, meta)
        vecs = _open_refine_file(folder, path, meta, settings.dim, int(index.ntotal), writable)
        try:
            shard = cls(
                shard_no,
                settings,
                index=index,
                tombstones=tombs,
                trained_n=int(meta.get("trained_n") or 0),
                factory=str(meta.get("factory") or FLAT_FACTORY),
                gpu=gpu,
                vecs=vecs,
                folder=folder,
                writable=writable,
                tuned=meta.get("tuned") if isinstance(meta.get("tuned"), dict) else None,
            )
        except BaseException:
            if vecs is not None:
                vecs.close()
            raise
        if shard.ntotal != int(meta.get("ntotal", shard.ntotal)):
            raise CorruptIndexError(
                f"{path} holds {shard.ntotal} vectors but the manifest says {meta.get('ntotal')}",
                hint="restore the index folder or rebuild it",
            )
        return shard


def _read_index_file(path: Path, dim: int) -> faiss.IndexIDMap:
    """The id-mapped FAISS index saved in ``path``."""
    try:
        index = faiss.read_index(str(path))  # keep this owning proxy: it frees the index
    except RuntimeError as e:
        raise CorruptIndexError(
            f"cannot read {path}: {str(e).splitlines()[-1]}", hint="restore the index folder or rebuild it"
        ) from e
    if not isinstance(index, faiss.IndexIDMap) or index.d != dim:
        raise CorruptIndexError(
            f"{path} is not an id-mapped index of dim {dim}",
            hint="restore the index folder or rebuild it",
        )
    return index


def _read_tombstones(folder: Path, meta: dict) -> np.ndarray | None:
    """The tombstoned positions a manifest entry names, or None."""
    if not meta.get("tomb_file"):
        return None
    try:
        return np.load(folder / meta["tomb_file"], allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CorruptIndexError(f"cannot read {folder / meta['tomb_file']}: {e}") from e


def _open_refine_file(
    folder: Path, path: Path, meta: dict, dim: int, ntotal: int, writable: bool
) -> VectorFile | None:
    """The on-disk refine rows a manifest entry names; None when its factory keeps none."""
    if meta.get("vec_file"):
        return VectorFile.open(
            folder / meta["vec_file"],
            dim,
            int(meta.get("vec_rows") or 0),
            list(meta.get("vec_sha256") or []),
            writable=writable,
        )
    if split_disk_refine(str(meta.get("factory") or ""))[1] and ntotal:
        raise CorruptIndexError(
            f"{path}: factory {meta.get('factory')!r} keeps its refine rows on disk, but the manifest names no file",
            hint="restore the index folder or rebuild it",
        )
    return None

def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted int64 set, without re-sorting the set."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    idx = np.searchsorted(sorted_set, values)
    idx[idx == len(sorted_set)] = 0
    return sorted_set[idx] == values
