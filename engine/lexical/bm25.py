"""Tantivy's BM25, computed outside tantivy, so that shards can score with global statistics.

A sharded BM25 (``engine.lexical.shard``) scores each shard's documents with the
statistics of the whole library, as search engines do in a distributed-frequencies
phase (Elasticsearch's ``dfs_query_then_fetch``): every shard reports, for the query's
(field, term) pairs, its document frequencies, its number of documents and its tokens
per field (``Bm25Stats``); the sums are the global statistics; every shard then scores
with them. Tantivy (and its Python binding) cannot take outside statistics, so the
score is computed here, the way tantivy computes it (``src/query/bm25.rs``,
``src/fieldnorm/code.rs``):

- ``idf = ln(1 + (N - n + 0.5) / (n + 0.5))``, N the documents, n those with the term;
- ``score = idf * (1 + K1) * tf / (tf + K1 * (1 - B + B * dl / avgdl))`` per (field,
  term), K1 = 1.2, B = 0.75, summed over the query's term clauses;
- ``avgdl = tokens of the field / N`` (every document counts, with or without the field);
- ``dl`` is the field's length stored in one byte (``FIELD_NORMS``: exact to 40 tokens,
  coarser above) and decoded.

Everything is float32, in tantivy's order of operations, so that a score agrees with
tantivy's to a few units in the last place (the order in which tantivy sums the
clauses of one document can differ); ``tests/test_lexical_dfs.py`` checks it on many
queries.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["K1", "B", "FIELD_NORMS", "fieldnorm_id", "idf", "Bm25Stats", "ClauseWeights", "TermMatch"]

K1 = np.float32(1.2)
B = np.float32(0.75)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)


def _decode_fieldnorm(code: int) -> int:
    """Tantivy's (and Lucene's) one-byte length: identity below 24, then a 3-bit
    mantissa with an exponent."""
    if code < 24:
        return code
    b = code - 24
    bits, shift = b & 0b111, b >> 3
    return 24 + (bits if shift == 0 else (bits | 8) << (shift - 1))


FIELD_NORMS: tuple[int, ...] = tuple(_decode_fieldnorm(c) for c in range(256))


def fieldnorm_id(length: int) -> int:
    """The byte tantivy stores for a field of ``length`` tokens (the largest code whose
    decoded length is <= ``length``)."""
    return bisect.bisect_right(FIELD_NORMS, int(length)) - 1


def idf(doc_freq: int, num_docs: int) -> np.float32:
    """Tantivy's idf in float32; ``doc_freq`` <= ``num_docs``."""
    if not 0 <= doc_freq <= num_docs:
        raise ValueError(f"doc_freq {doc_freq} must be in 0..num_docs ({num_docs})")
    x = (np.float32(num_docs - doc_freq) + _HALF) / (np.float32(doc_freq) + _HALF)
    return np.float32(math.log(float(_ONE + x)))


@dataclass(frozen=True)
class Bm25Stats:
    """BM25 statistics of a set of documents: ``num_docs``, tokens per field, and the
    document frequency of each (field, term) asked for. Summable: the statistics of
    disjoint shards add up to those of their union."""

    num_docs: int = 0
    total_tokens: Mapping[str, int] = field(default_factory=dict)
    doc_freq: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def sum(cls, parts: Iterable["Bm25Stats"]) -> "Bm25Stats":
        n, tokens, df = 0, {}, {}
        for p in parts:
            n += p.num_docs
            for f, t in p.total_tokens.items():
                tokens[f] = tokens.get(f, 0) + t
            for key, d in p.doc_freq.items():
                df[key] = df.get(key, 0) + d
        return cls(n, tokens, df)

    def avgdl(self, name: str) -> np.float32:
        """Tokens of field ``name`` per document, as tantivy divides them (float32)."""
        if self.num_docs <= 0:
            return np.float32(0.0)
        return np.float32(self.total_tokens.get(name, 0)) / np.float32(self.num_docs)


@dataclass(frozen=True)
class TermMatch:
    """One (field, term) clause found in a document: its frequency and field length."""

    name: str
    term: str
    tf: int
    length: int  # the field's length in tokens (decoded from its stored byte is fine too)


class ClauseWeights:
    """Per (field, term) clause, the float32 weight ``idf * (1 + K1)`` and per field the
    256 length normalisations, from one set of statistics; ``score`` sums a document's
    matched clauses in clause order."""

    def __init__(self, stats: Bm25Stats, clauses: Sequence[tuple[str, str]]) -> None:
        self.clauses = list(clauses)
        self.order = {c: i for i, c in enumerate(self.clauses)}
        self.weight = {c: idf(stats.doc_freq.get(c, 0), stats.num_docs) * (_ONE + K1) for c in self.clauses}
        self._norms: dict[str, np.ndarray] = {}
        lengths = np.array(FIELD_NORMS, dtype=np.float32)
        for name in dict.fromkeys(f for f, _ in self.clauses):
            avg = stats.avgdl(name)
            with np.errstate(divide="ignore", invalid="ignore"):  # no tokens anywhere: never matched
                self._norms[name] = (K1 * ((_ONE - B) + (B * lengths) / avg)).astype(np.float32)

    def clause_score(self, clause: tuple[str, str], tf: int, length: int) -> np.float32:
        """One clause's score for a term frequency and field length (float32)."""
        f = np.float32(tf)
        return np.float32(self.weight[clause] * (f / (f + self._norms[clause[0]][fieldnorm_id(length)])))

    def score(self, matches: Iterable[TermMatch]) -> float:
        """A document's score: its matched clauses' scores summed in clause order."""
        total = np.float32(0.0)
        for m in sorted(matches, key=lambda m: self.order[(m.name, m.term)]):
            total = np.float32(total + self.clause_score((m.name, m.term), m.tf, m.length))
        return float(total)
