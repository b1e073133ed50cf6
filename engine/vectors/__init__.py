"""Vector storage: sharded FAISS indexes with explicit int64 global ids.

``VectorStore`` (``engine.vectors.sharded``) is the implementation of
``VectorStoreProtocol`` (``engine.vectors.base``); ``FaissShard``
(``engine.vectors.shard``) is one of its shards. ``engine.vectors.factory`` resolves
``approx_factory`` to FAISS factory strings, ``engine.vectors.params`` turns a query's
``SearchParams`` into FAISS parameters, ``engine.vectors.gpu`` copies shards to a GPU
and ``engine.vectors.vecfile`` keeps on-disk refine rows. ``VectorSettings`` is the
one definition of a store's settings (manifest, index config, construction).
"""
from engine.vectors.base import SearchParams, VectorSettings, VectorStoreProtocol
from engine.vectors.factory import auto_factory, compressed_factory, nlist_for
from engine.vectors.params import SearchDefaults
from engine.vectors.shard import FaissShard
from engine.vectors.sharded import FORMAT_VERSION, MANIFEST_NAME, VectorStore

__all__ = [
    "SearchParams",
    "VectorSettings",
    "VectorStoreProtocol",
    "VectorStore",
    "FaissShard",
    "SearchDefaults",
    "auto_factory",
    "compressed_factory",
    "nlist_for",
    "MANIFEST_NAME",
    "FORMAT_VERSION",
]
