"""``VectorStore``: N FAISS shards in one folder, a manifest, parallel fan-out, heap merge.

Folder layout::

    manifest.json                  format version, FAISS version, settings, shards,
                                   created/updated times, applied_seq, generation
    shard-000.000007.faiss         shard 0 as saved by generation 7 (ids inside)
    shard-000.000007.tomb.npy      its tombstoned positions, when it has any
    shard-000.3fa9c04e1b2d.f16vec  its float16 refine rows, for ``@disk`` factories:
                                   append-only; the manifest names the file, its
                                   committed row count and a digest per block
    .lock                          flock held by the one writer

A vector goes to shard ``shard_key % num_shards``; all vectors of one video share a
shard. ``save`` writes only dirty shards, each under the *new* generation's names,
then replaces ``manifest.json`` atomically, then deletes the files the old manifest
named. Until the manifest lands the old files are untouched, and after it lands the
new ones are complete and fsynced, so a crash at any point leaves one consistent
state: whichever manifest is on disk. Files that no manifest names (left by a
crashed save) are deleted by the next writable ``open``.

Searches hold a shared lock and run one task per shard on a thread pool (FAISS
releases the GIL); mutations hold the exclusive lock. Per-query parameters are
built into fresh FAISS ``SearchParameters`` objects per call and per shard.
"""
from __future__ import annotations

import heapq
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import faiss
import numpy as np

from engine.atomic import atomic_write_json, fsync_dir, sha256_file
from engine.errors import CorruptIndexError, IndexMismatchError, InputError, NotFoundError
from engine.locks import acquire_writer_lock, release_lock
from engine.vectors.base import SearchParams, VectorSettings
from engine.vectors.factory import check_factory, faiss_version
from engine.vectors.gpu import GpuContext, NodeIndex, node_index_wanted
from engine.vectors.params import SearchDefaults
from engine.vectors.shard import FaissShard, ShardFiles

__all__ = ["VectorStore", "validate_settings", "MANIFEST_NAME", "FORMAT_VERSION", "STRUCTURAL_FIELDS"]

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "vidseek.vectors"
FORMAT_VERSION = 1
LOCK_NAME = ".lock"
# Settings that decide how stored vectors are laid out: a store opened with other
# values would route ids to the wrong shard or mix index families.
STRUCTURAL_FIELDS = ("dim", "num_shards", "approx_factory")
_OWNED_FILE_RE = re.compile(
    r"^\.?shard-\d{3}\.\d{6}\.(faiss|tomb\.npy)(\.tmp)?$|^\.manifest\.json\..*\.tmp$"
    r"|^shard-\d{3}\.[0-9a-f]{12}\.f16vec$"
)

# Test-only hook, called with a step name after each file a save writes, replaces or
# deletes. tests/test_vectors_crash.py sets it in a child process to SIGKILL itself.
_SAVE_HOOK: Callable[[str], None] | None = None


def _step(name: str) -> None:
    hook = _SAVE_HOOK
    if hook is not None:
        hook(name)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _RWLock:
    """Many readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def validate_settings(settings: VectorSettings) -> None:
    """Raise ``InputError`` / ``UnknownNameError`` for settings no store can use."""
    settings.check()
    check_factory(settings.approx_factory, settings.dim)


def _settings_from_manifest(raw: Any, manifest_path: Path) -> VectorSettings:
    try:
        return VectorSettings.from_dict(raw)
    except ValueError:
        raise CorruptIndexError(
            f"{manifest_path}: 'settings' is not a VectorSettings record: {raw!r}",
            hint="restore the index folder or rebuild it",
        ) from None


def _mismatches(stored: VectorSettings, expected: VectorSettings) -> list[str]:
    out = []
    for name in STRUCTURAL_FIELDS:
        have, want = getattr(stored, name), getattr(expected, name)
        if have != want:
            out.append(f"{name} {have!r} != {want!r}" if isinstance(have, str) else f"{name} {have} != {want}")
    return out


class VectorStore:
    """One folder of N FAISS shards holding the vectors of one space (see ``base.py``).

    Build with :meth:`create`, reopen with :meth:`open`. Writers hold an exclusive
    ``flock`` on the folder until :meth:`close`; ``read_only`` opens take none and
    never write files, but may ``add``/``remove`` in memory (how a reader replays
    commits that the saved shards do not hold yet).
    """

    def __init__(
        self,
        path: Path,
        settings: VectorSettings,
        shards: list[FaissShard],
        manifest: dict,
        read_only: bool,
        lock_fd: int | None,
        only_shards: frozenset[int] | None = None,
        gpu: GpuContext | None = None,
    ) -> None:
        self.path = path
        # Shard-group serving (query.shards): the shards this handle loaded; vectors
        # routed to any other shard (a replayed commit) are dropped. None: all.
        self.only_shards = only_shards
        self.settings = settings
        self.read_only = read_only
        self._shards = shards
        self._manifest = manifest
        self._lock_fd = lock_fd
        self._defaults = SearchDefaults.from_settings(settings)
        self._rw = _RWLock()
        self._save_mutex = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False
        # The Flat shards as one index (engine.vectors.gpu.NodeIndex): on a GPU, or the
        # CPU twin with extra node_index; keyed by the mutation count it was built at.
        self._gpu = gpu
        self._mutations = 0
        self._node: tuple[int, NodeIndex] | None = None
        self._node_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: str | Path, settings: VectorSettings) -> VectorStore:
        """Make an empty store in ``path`` (created if needed) and open it for writing."""
        validate_settings(settings)
        path = Path(path)
        if (path / MANIFEST_NAME).exists():
            raise InputError(
                f"{path} already holds a vector store",
                hint="open it with VectorStore.open, or delete the folder to start over",
            )
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = _acquire_lock(path)
        try:
            gpu = GpuContext(settings.use_gpu)
            shards = [FaissShard(i, settings, gpu=gpu, folder=path) for i in range(settings.num_shards)]
            now = _now()
            manifest = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "faiss_version": faiss_version(),
                "settings": settings.to_dict(),
                "created": now,
                "updated": now,
                "applied_seq": 0,
                "generation": 0,
                "count": 0,
                "shards": [_empty_entry(i) for i in range(settings.num_shards)],
            }
            atomic_write_json(path / MANIFEST_NAME, manifest)
        except BaseException:
            _release_lock(lock_fd)
            raise
        return cls(path, settings, shards, manifest, read_only=False, lock_fd=lock_fd, gpu=gpu)

    @classmethod
    def open(
        cls, path: str | Path, expected: VectorSettings | None = None, read_only: bool = False,
        *, only_shards: Iterable[int] | None = None,
    ) -> VectorStore:
        """Open a store, verifying every file's checksum and the settings against ``expected``.

        ``dim``, ``num_shards`` and ``approx_factory`` must equal ``expected``'s
        (``IndexMismatchError`` names each difference); the other fields are tuning
        knobs taken from ``expected`` when given and recorded at the next save.
        ``only_shards`` (read-only): load just these shards; the others stay empty and
        vectors added for them are dropped (one shard group of ``query.shards``).
        """
        only = None if only_shards is None else frozenset(int(s) for s in only_shards)
        if only is not None and not read_only:
            raise InputError("only_shards needs read_only=True (a writer holds every shard)")
        path = Path(path)
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.exists():
            raise NotFoundError(
                f"no vector store at {path} ({MANIFEST_NAME} missing)",
                hint="create one with VectorStore.create (vidseek index does this)",
            )
        lock_fd = None if read_only else _acquire_lock(path)
        try:
            # A reader racing a writer's save may see a manifest whose old files were
            # just deleted; reading the manifest again finds the new ones.
            attempts = 0
            while True:
                manifest = _read_manifest(manifest_path)
                try:
                    return cls._load(path, manifest, expected, read_only, lock_fd, only)
                except _MissingFile:
                    attempts += 1
                    if attempts >= 3 or _read_manifest(manifest_path) == manifest:
                        raise
        except _MissingFile as e:
            _release_lock(lock_fd)
            raise CorruptIndexError(
                f"{e.path} is named by {manifest_path} but missing",
                hint="restore the index folder from a backup or rebuild it",
            ) from None
        except BaseException:
            _release_lock(lock_fd)
            raise

    @classmethod
    def _load(
        cls,
        path: Path,
        manifest: dict,
        expected: VectorSettings | None,
        read_only: bool,
        lock_fd: int | None,
        only: frozenset[int] | None = None,
    ) -> VectorStore:
        manifest_path = path / MANIFEST_NAME
        if manifest.get("format") != FORMAT_NAME:
            raise IndexMismatchError(
                f"{manifest_path} is not a vidseek vector manifest (format {manifest.get('format')!r})",
                hint="point --index at a vidseek index folder",
            )
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"{manifest_path}: format_version {version} != {FORMAT_VERSION} (this build)",
                hint="use the vidseek version that wrote it, or rebuild the index",
            )
        stored = _settings_from_manifest(manifest.get("settings"), manifest_path)
        settings = stored
        if expected is not None:
            diffs = _mismatches(stored, expected)
            if diffs:
                raise IndexMismatchError(
                    f"{path} was built with other vector settings: {'; '.join(diffs)}",
                    hint="open it with the settings it was built with, or rebuild the index",
                )
            settings = expected
        validate_settings(settings)
        entries = manifest.get("shards")
        if not isinstance(entries, list) or len(entries) != settings.num_shards:
            raise CorruptIndexError(
                f"{manifest_path} lists {len(entries) if isinstance(entries, list) else 'no'} shards, "
                f"expected {settings.num_shards}",
                hint="restore the index folder or rebuild it",
            )
        for i, entry in enumerate(entries):
            if only is None or i in only:
                _verify_entry(path, entry)
        gpu = GpuContext(settings.use_gpu)
        shards: list[FaissShard] = []
        try:
            for i in range(settings.num_shards):
                if only is not None and i not in only:
                    shards.append(FaissShard(i, settings, gpu=gpu, folder=path))
                    continue
                shards.append(FaissShard.read(path, i, settings, entries[i], gpu, writable=not read_only))
        except BaseException:
            for shard in shards:
                shard.close()
            raise
        store = cls(path, settings, shards, manifest, read_only=read_only, lock_fd=lock_fd, only_shards=only,
                    gpu=gpu)
        if not read_only:
            store._remove_orphans()
        return store

    def close(self) -> None:
        """Stop the search threads and release the writer lock. Idempotent."""
        if self._closed:
            return
        with self._rw.write():
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            for shard in self._shards:
                shard.close()
            _release_lock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- facts
    @property
    def applied_seq(self) -> int:
        """The catalog operation-log sequence number that the saved state reflects."""
        return int(self._manifest["applied_seq"])

    @property
    def generation(self) -> int:
        """How many saves this folder has seen (names the newest files)."""
        return int(self._manifest["generation"])

    def count(self) -> int:
        """Live vectors over all shards (saved or not)."""
        with self._rw.read():
            return sum(s.count() for s in self._shards)

    def shard_of(self, shard_keys: np.ndarray) -> np.ndarray:
        """The shard number of each key."""
        return np.mod(np.asarray(shard_keys, dtype=np.int64), self.settings.num_shards)

    def live_ids(self) -> np.ndarray:
        """All live ids, sorted (for checks and tools; O(n))."""
        with self._rw.read():
            parts = [s.live_ids() for s in self._shards]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def info(self) -> dict:
        """A JSON-able description for ``vidseek info``."""
        with self._rw.read():
            shard_info = [s.info() for s in self._shards]
            disk = sum(int(e.get("bytes") or 0) + int(e.get("vec_bytes") or 0) for e in self._manifest["shards"])
            return {
                "path": str(self.path),
                "dim": self.settings.dim,
                "num_shards": self.settings.num_shards,
                "count": sum(s["count"] for s in shard_info),
                "applied_seq": self.applied_seq,
                "generation": self.generation,
                "dirty": any(s.dirty for s in self._shards),
                "faiss_version": faiss_version(),
                "saved_with_faiss": self._manifest.get("faiss_version"),
                "created": self._manifest.get("created"),
                "updated": self._manifest.get("updated"),
                "disk_bytes": disk,
                "read_only": self.read_only,
                "settings": self.settings.to_dict(),
                "shards": shard_info,
            }

    # ------------------------------------------------------------- mutation
    def add(self, ids: np.ndarray, vectors: np.ndarray, shard_keys: np.ndarray) -> None:
        """Add vectors under unique new global ids; an id that is already live raises."""
        ids = _as_ids(ids, "ids")
        vectors = self._as_vectors(vectors, "vectors")
        keys = _as_ids(shard_keys, "shard_keys", allow_negative=True)
        if not (len(ids) == len(vectors) == len(keys)):
            raise InputError(
                f"add: ids ({len(ids)}), vectors ({len(vectors)}) and shard_keys ({len(keys)}) differ in length"
            )
        if len(ids) == 0:
            return
        uniq, counts = np.unique(ids, return_counts=True)
        if len(uniq) != len(ids):
            raise InputError(f"add: ids repeat within the batch: {uniq[counts > 1][:10].tolist()}")
        with self._rw.write():
            self._check_open("add")
            live = np.zeros(len(ids), dtype=bool)
            for shard in self._shards:
                live |= shard.contains_live(ids)
            if live.any():
                raise InputError(
                    f"add: ids already live in {self.path}: {ids[live][:10].tolist()}",
                    hint="remove them first to replace their vectors",
                )
            target = self.shard_of(keys)
            self._mutations += 1
            for no in np.unique(target):
                if self.only_shards is not None and int(no) not in self.only_shards:
                    continue
                rows = np.flatnonzero(target == no)
                self._shards[no].add(ids[rows], vectors[rows])

    def remove(self, ids: np.ndarray, shard_keys: np.ndarray) -> None:
        """Remove ids (looked up in their keys' shards); unknown ids are ignored.

        Approximate shards keep tombstones; a shard whose tombstones pass
        ``compact_ratio`` is compacted here.
        """
        ids = _as_ids(ids, "ids")
        keys = _as_ids(shard_keys, "shard_keys", allow_negative=True)
        if len(ids) != len(keys):
            raise InputError(f"remove: ids ({len(ids)}) and shard_keys ({len(keys)}) differ in length")
        with self._rw.write():
            self._check_open("remove")
            self._mutations += 1
            target = self.shard_of(keys)
            for no in np.unique(target):
                shard = self._shards[no]
                shard.remove(ids[target == no])
                shard.compact()

    def compact(self, force: bool = False) -> int:
        """Rebuild shards whose tombstones pass ``compact_ratio`` (all with any, if ``force``)."""
        with self._rw.write():
            self._check_writable("compact")
            self._mutations += 1
            return sum(1 for shard in self._shards if shard.compact(force=force))

    # --------------------------------------------------------------- search
    def search(self, queries: np.ndarray, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
        """Top ``params.k`` over all shards: (scores, ids), each (nq, k), padded -inf / -1."""
        queries = self._as_vectors(queries, "queries")
        k = params.k
        with self._rw.read():
            if self._closed:
                raise InputError(f"search on a closed store ({self.path})")
            active = [s for s in self._shards if s.count() > 0]
            if not active or len(queries) == 0:
                return (
                    np.full((len(queries), k), -np.inf, dtype=np.float32),
                    np.full((len(queries), k), -1, dtype=np.int64),
                )
            node = self._node_index(active, k)
            if node is not None:
                return node.search(queries, k)
            if len(active) == 1:
                return active[0].search(queries, k, params, self._defaults)
            pool = self._executor()
            futures = [pool.submit(s.search, queries, k, params, self._defaults) for s in active]
            results = [f.result() for f in futures]
        return _merge(results, len(queries), k)

    def _node_index(self, active: list[FaissShard], k: int) -> NodeIndex | None:
        """The node index over ``active`` when wanted and every shard is Flat (called
        under the read lock: no mutation runs meanwhile); None: search shard by shard."""
        if not node_index_wanted(self._gpu, self.settings.extra) or any(s.kind != "flat" for s in active):
            return None
        with self._node_lock:
            cached = self._node
            if cached is None or cached[0] != self._mutations:
                rows = [s.flat_rows() for s in active]
                cached = (self._mutations, NodeIndex(self.settings.dim, [r[0] for r in rows], [r[1] for r in rows],
                                                     self._gpu))
                self._node = cached
        node = cached[1]
        return node if k <= node.max_k() else None

    def stored_vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(ids found live, their vectors as stored), or None when a shard stores
        lossily (PQ without an exact refine stage): then ask the catalog."""
        ids = np.asarray(ids, dtype=np.int64)
        found_ids: list[np.ndarray] = []
        found_vecs: list[np.ndarray] = []
        with self._rw.read():
            if self._closed:
                raise InputError(f"read from a closed store ({self.path})")
            shards = [s for s in self._shards if s.count() > 0]
            if not all(s.stores_exactly for s in shards):
                return None
            for shard in shards:
                mask, vecs = shard.stored_vectors(ids)
                if len(vecs):
                    found_ids.append(ids[mask])
                    found_vecs.append(vecs)
        if not found_ids:
            return np.zeros(0, np.int64), np.zeros((0, self.settings.dim), dtype=np.float32)
        return np.concatenate(found_ids), np.concatenate(found_vecs)

    def verify(self) -> None:
        """Hash every committed block of every on-disk refine file against the manifest.

        Opening a store checks each such file's size and last block only: hashing all
        of a 10M x 1536 store's 30 GB took 81 s here. Raises ``CorruptIndexError``.
        """
        with self._rw.read():
            self._check_open("verify")
            for shard in self._shards:
                shard.verify()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                workers = min(self.settings.num_shards, 32)
                # Each worker searches one shard; giving each the whole OpenMP team
                # would start num_shards teams on the same cores, and spinning OpenMP
                # threads then multiply single-query latency. Share the cores out.
                omp_threads = max(1, _available_cores() // workers)
                self._pool = ThreadPoolExecutor(
                    max_workers=workers,
                    thread_name_prefix="vidseek-shard",
                    initializer=faiss.omp_set_num_threads,
                    initargs=(omp_threads,),
                )
            return self._pool

    # ---------------------------------------------------------- persistence
    def save(self, applied_seq: int) -> None:
        """Persist dirty shards under new names, then the manifest, then drop old files."""
        if not isinstance(applied_seq, (int, np.integer)) or isinstance(applied_seq, bool) or applied_seq < 0:
            raise InputError(f"save: applied_seq must be an int >= 0, got {applied_seq!r}")
        if applied_seq < self.applied_seq:
            raise InputError(
                f"save: applied_seq {applied_seq} is behind the saved {self.applied_seq}",
                hint="pass the catalog's current operation-log sequence number",
            )
        with self._save_mutex, self._rw.read():
            self._check_writable("save")
            generation = self.generation + 1
            entries, written, superseded = self._write_dirty_shards(generation)
            manifest = dict(self._manifest)
            manifest.update(
                faiss_version=faiss_version(),
                settings=self.settings.to_dict(),
                updated=_now(),
                applied_seq=int(applied_seq),
                generation=generation,
                count=sum(int(e["count"]) for e in entries),
                shards=entries,
            )
            atomic_write_json(self.path / MANIFEST_NAME, manifest)
            _step("manifest")
            self._manifest = manifest
            for shard, files in written:
                shard.mark_committed(files)
            self._delete_files(superseded)

    def _write_dirty_shards(
        self, generation: int
    ) -> tuple[list[dict], list[tuple[FaissShard, ShardFiles]], list[str]]:
        """Write each dirty shard's files under ``generation``'s names.

        Returns the new manifest's shard entries (clean shards keep theirs), the shards
        written with their files, and the files of the old manifest they supersede.
        """
        entries: list[dict] = []
        written: list[tuple[FaissShard, ShardFiles]] = []
        superseded: list[str] = []
        for shard, old in zip(self._shards, self._manifest["shards"]):
            if not shard.dirty:
                entries.append(old)
                continue
            files = shard.write(self.path, generation, _step)
            written.append((shard, files))
            superseded += [f for f in (old.get("file"), old.get("tomb_file")) if f]
            if old.get("vec_file") and old.get("vec_file") != files.vec_file:
                superseded.append(old["vec_file"])
            entries.append(_shard_entry(shard, files))
        return entries, written, superseded

    def _delete_files(self, names: list[str]) -> None:
        """Delete files that the manifest no longer names (after it has landed)."""
        for name in names:
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass  # a crashed earlier cleanup already got it
            _step("cleanup")
        if names:
            fsync_dir(self.path)

    def _remove_orphans(self) -> None:
        """Delete shard files and temp files that the current manifest does not name."""
        named = {MANIFEST_NAME}
        for entry in self._manifest["shards"]:
            named.update(f for f in (entry.get("file"), entry.get("tomb_file"), entry.get("vec_file")) if f)
        removed = False
        for child in self.path.iterdir():
            if child.name not in named and _OWNED_FILE_RE.match(child.name):
                child.unlink()
                removed = True
        if removed:
            fsync_dir(self.path)

    # ------------------------------------------------------------ checking
    def _check_open(self, op: str) -> None:
        """add/remove need an open store only: on a ``read_only`` store they change the
        in-memory state (a reader replaying the catalog's op log) and never touch files."""
        if self._closed:
            raise InputError(f"{op} on a closed store ({self.path})")

    def _check_writable(self, op: str) -> None:
        if self._closed:
            raise InputError(f"{op} on a closed store ({self.path})")
        if self.read_only:
            raise InputError(f"{op}: {self.path} was opened read_only", hint="open it with read_only=False")

    def _as_vectors(self, x: np.ndarray, name: str) -> np.ndarray:
        arr = np.asarray(x)
        if arr.ndim == 1 and arr.shape[0] == self.settings.dim:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.settings.dim:
            raise InputError(f"{name} must have shape (n, {self.settings.dim}), got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise InputError(f"{name} must be float, got {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contain NaN or infinite values")
        return arr


class _MissingFile(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def _shard_entry(shard: FaissShard, files: ShardFiles) -> dict:
    """The manifest entry of a shard just written as ``files``."""
    return {
        "shard": shard.shard_no,
        "file": files.file,
        "sha256": files.sha256,
        "bytes": files.bytes,
        "tomb_file": files.tomb_file,
        "tomb_sha256": files.tomb_sha256,
        "ntotal": shard.ntotal,
        "count": shard.count(),
        "tombstones": shard.tombstone_count,
        "kind": shard.kind,
        "factory": shard.factory,
        "trained_n": shard.trained_n,
        "vec_file": files.vec_file,
        "vec_rows": files.vec_rows,
        "vec_bytes": files.vec_bytes,
        "vec_sha256": files.vec_sha256,
        **({"tuned": shard.tuned} if shard.tuned else {}),
    }


def _empty_entry(shard_no: int) -> dict:
    return {
        "shard": shard_no,
        "file": None,
        "sha256": None,
        "bytes": 0,
        "tomb_file": None,
        "tomb_sha256": None,
        "ntotal": 0,
        "count": 0,
        "tombstones": 0,
        "kind": "flat",
        "factory": "Flat",
        "trained_n": 0,
    }


def _read_manifest(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as e:
        raise CorruptIndexError(f"cannot read {path}: {e}", hint="restore the index folder or rebuild it") from e
    if not isinstance(manifest, dict):
        raise CorruptIndexError(f"{path} is not a JSON object", hint="restore the index folder or rebuild it")
    return manifest


def _verify_entry(folder: Path, entry: dict) -> None:
    # The refine file's blocks are checked when the shard opens it (VectorFile.open).
    for file_key, sha_key in (("file", "sha256"), ("tomb_file", "tomb_sha256"), ("vec_file", None)):
        name = entry.get(file_key)
        if not name:
            continue
        if "/" in name or name.startswith(".."):
            raise CorruptIndexError(f"manifest names a file outside {folder}: {name!r}")
        path = folder / name
        if not path.exists():
            raise _MissingFile(path)
        if sha_key is None:
            continue
        digest = sha256_file(path)
        if digest != entry.get(sha_key):
            raise CorruptIndexError(
                f"checksum mismatch for {path}: sha256 {digest[:16]}... != manifest {str(entry.get(sha_key))[:16]}...",
                hint="the file was changed or damaged; restore the index folder or rebuild it",
            )


def _acquire_lock(folder: Path) -> int:
    return acquire_writer_lock(
        folder / LOCK_NAME, what=str(folder),
        hint="close that store first, or open this one with read_only=True",
    )


def _release_lock(fd: int | None) -> None:
    release_lock(fd)


def _as_ids(x: np.ndarray, name: str, allow_negative: bool = False) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    if len(arr) and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if not allow_negative and len(arr) and arr.min() < 0:
        raise InputError(f"{name} must be >= 0 (FAISS uses -1 for 'no result'), got {arr.min()}")
    return arr


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _merge(results: list[tuple[np.ndarray, np.ndarray]], nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Heap-merge per-shard top-k lists (each sorted by descending score) into one top-k."""
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    for q in range(nq):
        streams = [zip(d[q].tolist(), i[q].tolist()) for d, i in results]
        j = 0
        for score, gid in heapq.merge(*streams, key=lambda t: -t[0]):
            if gid < 0:
                continue  # padding sorts last in its stream but not across streams
            scores[q, j] = score
            ids[q, j] = gid
            j += 1
            if j == k:
                break
    return scores, ids
