"""Lexical (BM25) retrieval over segment text: tokeniser, tantivy backend, reference.

``open_lexical(path)`` opens the serving backend (tantivy); ``ReferenceBM25`` is the
rank-bm25 reference that tests and benchmarks compare it with. The contract is in
``engine.lexical.base``. ``LexicalShard`` is a RAM BM25 shard that scores with global
statistics (``Bm25Stats``, tantivy's formula in ``engine.lexical.bm25``), for the shard
groups of ``query.shards``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.errors import UnknownNameError
from engine.lexical.base import FIELDS, LexicalDoc, LexicalHit, LexicalIndexProtocol
from engine.lexical.bm25 import Bm25Stats
from engine.lexical.reference import ReferenceBM25
from engine.lexical.shard import LexicalShard
from engine.lexical.tantivy_index import LexicalQuery, TantivyIndex
from engine.lexical.tokenize import TOKENIZER_VERSION, tokenize

__all__ = [
    "BACKENDS",
    "Bm25Stats",
    "FIELDS",
    "LexicalDoc",
    "LexicalHit",
    "LexicalIndexProtocol",
    "LexicalQuery",
    "LexicalShard",
    "ReferenceBM25",
    "TOKENIZER_VERSION",
    "TantivyIndex",
    "open_lexical",
    "tokenize",
]

# Persistent backends by name; the reference is in-memory only, so it is not here.
BACKENDS: dict[str, Callable[..., LexicalIndexProtocol]] = {"tantivy": TantivyIndex}


def open_lexical(
    path: str | Path,
    create: bool = False,
    *,
    read_only: bool = False,
    backend: str = "tantivy",
) -> TantivyIndex:
    """Open the lexical index in ``path`` (``create=True`` makes it when missing).

    ``read_only=True`` opens without the writer lock, for search processes that run
    beside the one writer. Raises ``UnknownNameError`` for an unknown ``backend``,
    and what ``TantivyIndex`` raises (``NotFoundError``, ``IndexMismatchError``,
    ``CorruptIndexError``, ``IndexLockedError``).
    """
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise UnknownNameError("lexical backend", backend, tuple(BACKENDS)) from None
    return factory(path, create=create, read_only=read_only)  # type: ignore[return-value]
