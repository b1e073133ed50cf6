"""One-writer locks on index folders (``flock``; released when the fd closes).

The holder's pid is written into the lock file so the error can name it.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from engine.errors import IndexLockedError

__all__ = ["acquire_writer_lock", "release_lock"]


def acquire_writer_lock(lock_file: Path, *, what: str, hint: str) -> int:
    """Take the exclusive lock or raise ``IndexLockedError`` naming the holder's pid."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise IndexLockedError(f"{what} is open for writing elsewhere (pid {holder})", hint=hint) from e
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def release_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
