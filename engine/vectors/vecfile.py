"""An append-only file of float16 vectors: the on-disk refine stage of a shard.

Why: at 10M x 1536 an in-RAM float16 refine stage needs 30 GB, and the lossy
in-RAM alternatives (PQ or 4-bit SQ refine codes) either do not fit 8 GB or cap
recall@10 below 0.9 (``docs/vectors.md``). With ``Refine(SQfp16@disk)`` a shard keeps
only its fast-scan PQ codes and ids in RAM, and re-scores the ``k * k_factor``
candidates of each query by reading their float16 rows from this file: a few
hundred 3 KiB reads a query, served by the page cache when it is warm.

Layout and durability
---------------------
Row ``i`` holds the vector at shard position ``i``; rows are only ever appended
(``os.pwrite`` at the end). The manifest records, per shard, the file name, the
number of *committed* rows and a SHA-256 digest per block of ``BLOCK_ROWS`` rows.
Rows past the committed count belong to no manifest: a writer that opens the file
truncates them (a crashed ingest's rows), and a reader never looks at them, so
appending never changes what an older manifest describes. A rebuild (compaction,
retraining) changes positions, so it writes a *new* file under a fresh name; the old
one stays until the manifest that drops it has landed.

A store opened ``read_only`` (a reader replaying the catalog's op log) never writes
files: its appended rows, and whole files its rebuilds would write, stay in memory.

Reads use ``os.pread`` (coalescing runs of consecutive rows) rather than ``mmap``, so
file pages stay in the kernel's page cache and out of the process's RSS.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import threading
from pathlib import Path

import numpy as np

from engine.errors import CorruptIndexError

__all__ = ["VectorFile", "BLOCK_ROWS", "VEC_SUFFIX"]

BLOCK_ROWS = 16_384  # rows per checksum block (48 MiB at d=1536)
VEC_SUFFIX = ".f16vec"
_DTYPE = np.float16


class VectorFile:
    """Rows of float16 vectors, on disk (``path``) or, for read-only stores, in memory.

    Not thread-safe for writers: the store serialises appends against reads (its
    readers-writer lock). Concurrent :meth:`read` calls are safe.
    """

    def __init__(self, dim: int, path: Path | None = None, rows: int = 0, digests: list[str] | None = None) -> None:
        self.dim = dim
        self.row_bytes = dim * np.dtype(_DTYPE).itemsize
        self.path = path
        self._fd: int | None = None
        self._file_rows = rows if path is not None else 0  # rows readable from the file
        self._committed_rows = rows if path is not None else 0
        self._digests = list(digests or [])
        self._mem: list[np.ndarray] = []  # rows past the file (read-only stores / memory files)
        self._mem_rows = 0
        self._mem_cat: np.ndarray | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, folder: Path | None, shard_no: int, dim: int) -> VectorFile:
        """A new empty file with a fresh name in ``folder`` (``None``: in memory)."""
        if folder is None:
            return cls(dim)
        path = folder / f"shard-{shard_no:03d}.{secrets.token_hex(6)}{VEC_SUFFIX}"
        vf = cls(dim, path, 0, [])
        vf._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        return vf

    @classmethod
    def open(cls, path: Path, dim: int, rows: int, digests: list[str], writable: bool, verify: str = "last") -> VectorFile:
        """Open a committed file holding ``rows`` rows; check its size and block digests.

        ``verify``: ``"all"`` hashes every block, ``"last"`` (default) the last one
        (whole-file hashing of a 30 GB file would make every open take a minute;
        :meth:`verify` does it on demand). A writer truncates rows past ``rows``.
        """
        vf = cls(dim, path, rows, digests)
        size = path.stat().st_size
        need = rows * vf.row_bytes
        if size < need:
            raise CorruptIndexError(
                f"{path} holds {size} bytes but the manifest needs {need} ({rows} rows of {dim} float16)",
                hint="the file was truncated; restore the index folder or rebuild it",
            )
        expected_blocks = -(-rows // BLOCK_ROWS)
        if len(digests) != expected_blocks:
            raise CorruptIndexError(
                f"manifest lists {len(digests)} block digests for {path}, expected {expected_blocks}",
                hint="restore the index folder or rebuild it",
            )
        mode = os.O_RDWR if writable else os.O_RDONLY
        vf._fd = os.open(path, mode)
        blocks = range(expected_blocks) if verify == "all" else range(max(0, expected_blocks - 1), expected_blocks)
        vf._check_blocks(blocks)
        if writable and size > need:
            os.ftruncate(vf._fd, need)  # rows appended after the last commit: no manifest names them
        return vf

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def delete(self) -> None:
        """Close and unlink the file (used for files no manifest names)."""
        self.close()
        if self.path is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    # --------------------------------------------------------------- facts
    @property
    def rows(self) -> int:
        """Rows held (committed, uncommitted and in-memory)."""
        return self._file_rows + self._mem_rows

    @property
    def name(self) -> str | None:
        """The file's name, or ``None`` for a memory-only file."""
        return None if self.path is None else self.path.name

    @property
    def in_memory(self) -> bool:
        """True when some rows live only in memory (read-only stores)."""
        return self._mem_rows > 0 or self.path is None

    # ------------------------------------------------------------- writing
    def append(self, vectors: np.ndarray, writable: bool) -> None:
        """Append rows (float32 in, stored as float16): to the file when ``writable``."""
        x = np.ascontiguousarray(vectors, dtype=_DTYPE)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"append: expected (n, {self.dim}), got {x.shape}")
        if len(x) == 0:
            return
        if writable and self.path is not None and self._mem_rows == 0:
            self._pwrite_all(x.tobytes(), self._file_rows * self.row_bytes)
            self._file_rows += len(x)
        else:
            self._mem.append(x)
            self._mem_rows += len(x)
            self._mem_cat = None

    def rollback(self, rows: int) -> None:
        """Drop rows past ``rows`` (an add that failed after its rows were appended)."""
        if rows >= self.rows:
            return
        if rows < self._committed_rows:
            raise ValueError(f"rollback to {rows} would drop committed rows (0..{self._committed_rows - 1})")
        if rows >= self._file_rows:
            keep = rows - self._file_rows
            tail = self._mem_all()[:keep]
            self._mem = [tail] if keep else []
            self._mem_rows = keep
        else:
            self._mem, self._mem_rows = [], 0
            os.ftruncate(self._fd, rows * self.row_bytes)
            self._file_rows = rows
        self._mem_cat = None

    def _pwrite_all(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n

    def commit(self) -> tuple[str, int, list[str]]:
        """fsync the file and return (name, rows, block digests) for the manifest.

        Only blocks that changed since the last commit are hashed again.
        """
        if self.path is None or self._mem_rows:
            raise RuntimeError("commit: this vector file holds rows only in memory")
        os.fsync(self._fd)
        first = self._committed_rows // BLOCK_ROWS
        digests = self._digests[:first]
        for b in range(first, -(-self._file_rows // BLOCK_ROWS)):
            digests.append(self._block_digest(b, self._file_rows))
        self._digests = digests
        self._committed_rows = self._file_rows
        return self.path.name, self._file_rows, list(digests)

    # ------------------------------------------------------------- reading
    def read(self, positions: np.ndarray) -> np.ndarray:
        """float32 rows at ``positions`` (any order, repeats allowed)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), self.dim), dtype=np.float32)
        if len(positions) == 0:
            return out
        if positions.min() < 0 or positions.max() >= self.rows:
            raise IndexError(f"row out of range 0..{self.rows - 1}")
        on_file = positions < self._file_rows
        if on_file.any():
            out[on_file] = self._read_file(positions[on_file])
        if not on_file.all():
            mem = self._mem_all()
            out[~on_file] = mem[positions[~on_file] - self._file_rows]
        return out

    def _read_file(self, positions: np.ndarray) -> np.ndarray:
        order = np.argsort(positions, kind="stable")
        sorted_pos = positions[order]
        # Runs of consecutive rows: one pread each.
        breaks = np.flatnonzero(np.diff(sorted_pos) != 1) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(sorted_pos)]])
        buf = np.empty((len(sorted_pos), self.dim), dtype=_DTYPE)
        flat = buf.reshape(-1).view(np.uint8)
        for a, b in zip(starts.tolist(), stops.tolist()):
            # Repeated positions make a "run" of length 1 each; that is fine.
            first = int(sorted_pos[a])
            want = (b - a) * self.row_bytes
            got = os.preadv(self._fd, [flat[a * self.row_bytes : a * self.row_bytes + want]], first * self.row_bytes)
            if got != want:
                raise CorruptIndexError(
                    f"{self.path}: short read at row {first} ({got} of {want} bytes)",
                    hint="the file was truncated; restore the index folder or rebuild it",
                )
        out = np.empty((len(positions), self.dim), dtype=np.float32)
        out[order] = buf
        return out

    def _mem_all(self) -> np.ndarray:
        with self._lock:
            if self._mem_cat is None or len(self._mem_cat) != self._mem_rows:
                self._mem_cat = np.concatenate(self._mem) if self._mem else np.zeros((0, self.dim), _DTYPE)
            return self._mem_cat

    # ------------------------------------------------------------ checking
    def verify(self) -> None:
        """Hash every committed block against the manifest (slow: reads the whole file)."""
        self._check_blocks(range(len(self._digests)))

    def _check_blocks(self, blocks: range) -> None:
        for b in blocks:
            digest = self._block_digest(b, self._committed_rows)
            if digest != self._digests[b]:
                raise CorruptIndexError(
                    f"checksum mismatch for {self.path} rows {b * BLOCK_ROWS}..: sha256 {digest[:16]}... "
                    f"!= manifest {self._digests[b][:16]}...",
                    hint="the file was changed or damaged; restore the index folder or rebuild it",
                )

    def _block_digest(self, block: int, rows: int) -> str:
        start = block * BLOCK_ROWS
        stop = min(rows, start + BLOCK_ROWS)
        h = hashlib.sha256()
        offset, end = start * self.row_bytes, stop * self.row_bytes
        step = 1 << 24
        while offset < end:
            data = os.pread(self._fd, min(step, end - offset), offset)
            if not data:
                raise CorruptIndexError(f"{self.path}: unexpected end of file at byte {offset}")
            h.update(data)
            offset += len(data)
        return h.hexdigest()
