"""Vector storage: sharded FAISS indexes with explicit int64 global ids.

``VectorStore`` (``engine.vectors.sharded``) is the implementation of
``VectorStoreProtocol`` (``engine.vectors.base``); ``FaissShard``
(``engine.vectors.faiss``) is one of its shards.
"""
from engine.vectors.base import SearchParams, VectorSettings, VectorStoreProtocol
from engine.vectors.faiss import FaissShard, SearchDefaults, auto_factory, compressed_factory, nlist_for
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
