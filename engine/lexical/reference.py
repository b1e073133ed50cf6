"""A BM25 reference over the same tokens: rank-bm25's ``BM25Okapi``, one model per field.

Used by the tests (is tantivy's ranking right?) and the benchmarks (what does a plain
Python BM25 cost?). It is an in-memory implementation of
``engine.lexical.base.LexicalIndexProtocol``: ``add``/``delete_video`` edit a dict of
documents and the rank-bm25 models are rebuilt lazily at the next search (rank-bm25
has no incremental update); ``save`` only records ``applied_seq``. Not for serving:
a query costs O(number of docs) in Python.

Scoring: for each searched field, a ``BM25Okapi`` over that field's tokens of every
doc (an empty field is a zero-length doc, as in tantivy), summed over fields. Only
docs that contain at least one query term in a searched field are returned (as a
search engine does). Two idf choices:

- ``idf="okapi"``: rank-bm25's own ``ln((N - n + 0.5) / (n + 0.5))``, with terms in
  more than half the docs floored at ``epsilon * mean idf``.
- ``idf="lucene"``: ``ln(1 + (N - n + 0.5) / (n + 0.5))``, the formula Lucene and
  tantivy use (always positive), plugged into the same rank-bm25 class. With it the
  scores should equal tantivy's up to float32 rounding (for docs under about 40
  tokens, where tantivy's one-byte length encoding is exact).

``k1`` defaults to tantivy's 1.2 (rank-bm25's own default is 1.5), ``b`` to 0.75.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
from rank_bm25 import BM25Okapi

from engine.errors import InputError, UnknownNameError
from engine.lexical.base import FIELDS, LexicalDoc, LexicalHit
from engine.lexical.tokenize import tokenize

__all__ = ["ReferenceBM25", "IdfMode"]

IdfMode = Literal["okapi", "lucene"]


class _LuceneIdfBM25(BM25Okapi):
    """rank-bm25's BM25Okapi with Lucene's idf (no negative idf, so no epsilon floor)."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        n_docs = self.corpus_size
        self.idf = {w: math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)) for w, df in nd.items()}
        self.average_idf = sum(self.idf.values()) / len(self.idf) if self.idf else 0.0


def _contains_sequence(tokens: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    first = phrase[0]
    for i in range(len(tokens) - n + 1):
        if tokens[i] == first and list(tokens[i : i + n]) == list(phrase):
            return True
    return False


class ReferenceBM25:
    """In-memory BM25 over ``tokenize()`` tokens with rank-bm25 (see module docstring)."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, idf: IdfMode = "okapi", epsilon: float = 0.25) -> None:
        if idf not in ("okapi", "lucene"):
            raise UnknownNameError("idf mode", str(idf), ("okapi", "lucene"))
        self.k1 = k1
        self.b = b
        self.idf_mode: IdfMode = idf
        self.epsilon = epsilon
        self._docs: dict[int, tuple[int, dict[str, list[str]]]] = {}  # id -> (video_key, tokens)
        self._applied_seq = 0
        self._models: dict[str, BM25Okapi | None] | None = None
        self._order: list[int] = []

    @classmethod
    def from_docs(cls, docs: Sequence[LexicalDoc], **kwargs: object) -> "ReferenceBM25":
        ref = cls(**kwargs)  # type: ignore[arg-type]
        ref.add(docs)
        return ref

    @property
    def applied_seq(self) -> int:
        return self._applied_seq

    def add(self, docs: Sequence[LexicalDoc]) -> None:
        for doc in docs:
            for name in doc.fields:
                if name not in FIELDS:
                    raise UnknownNameError("lexical field", name, FIELDS)
            self._docs[doc.id] = (doc.video_key, {name: tokenize(text) for name, text in doc.fields.items()})
        self._models = None

    def delete_video(self, video_key: int) -> None:
        for doc_id in [i for i, (vk, _) in self._docs.items() if vk == video_key]:
            del self._docs[doc_id]
        self._models = None

    def count(self) -> int:
        return len(self._docs)

    def save(self, applied_seq: int) -> None:
        self._applied_seq = applied_seq

    def _build(self) -> dict[str, BM25Okapi | None]:
        if self._models is None:
            self._order = sorted(self._docs)
            cls = _LuceneIdfBM25 if self.idf_mode == "lucene" else BM25Okapi
            models: dict[str, BM25Okapi | None] = {}
            for name in FIELDS:
                corpus = [self._docs[i][1].get(name, []) for i in self._order]
                # rank-bm25 divides by the mean length: a field empty everywhere
                # cannot match anything, so it gets no model.
                has_tokens = any(corpus)
                models[name] = cls(corpus, k1=self.k1, b=self.b, epsilon=self.epsilon) if has_tokens else None
            self._models = models
        return self._models

    def scores(self, terms: Sequence[str], fields: Sequence[str] | None = None) -> dict[int, float]:
        """BM25 of every doc that holds one of ``terms`` (already tokens) in ``fields``."""
        models = self._build()
        names = tuple(FIELDS if fields is None else fields)
        total = np.zeros(len(self._order))
        matched = np.zeros(len(self._order), dtype=bool)
        for name in names:
            model = models[name]
            if model is None:
                continue
            total += model.get_scores(list(terms))
            for j, freqs in enumerate(model.doc_freqs):
                if not matched[j] and any(t in freqs for t in terms):
                    matched[j] = True
        return {self._order[j]: float(total[j]) for j in np.flatnonzero(matched)}

    def search(
        self,
        query: str,
        k: int = 10,
        fields: Sequence[str] | None = None,
        phrases: Sequence[str] = (),
    ) -> list[LexicalHit]:
        """Same semantics as ``TantivyIndex.search``; ties broken by ascending id."""
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        names = tuple(FIELDS if fields is None else fields)
        for name in names:
            if name not in FIELDS:
                raise UnknownNameError("lexical field", name, FIELDS)
        phrase_tokens = [t for t in (tokenize(p) for p in phrases) if t]
        terms = list(dict.fromkeys([*tokenize(query), *(t for toks in phrase_tokens for t in toks)]))
        if not terms:
            return []
        scored = self.scores(terms, names)
        if phrase_tokens:
            scored = {
                i: s
                for i, s in scored.items()
                if all(
                    any(_contains_sequence(self._docs[i][1].get(name, []), toks) for name in names)
                    for toks in phrase_tokens
                )
            }
        ranked = sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [LexicalHit(id=i, score=s) for i, s in ranked]
