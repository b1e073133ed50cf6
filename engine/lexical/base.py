"""The lexical (BM25) index contract.

One ``LexicalIndex`` lives in one folder and indexes the text of segments, in named
fields: ``transcript`` (speech), ``ocr`` (text on screen), ``labels`` (visual labels)
and ``metadata`` (title, description, tags, people). Text is tokenised by
``engine.lexical.tokenize.tokenize`` (English words and Chinese words) before it
reaches the backend, so every backend sees the same tokens.

Contract
--------
- ``add(docs)``: ``LexicalDoc`` rows; ``id`` is the segment's global id,
  ``video_key`` the video's catalog id. Adding an id that exists replaces it.
- ``delete_video(video_key)`` removes every doc of that video (no full rebuild).
- ``search(query, k, fields=None, phrases=())`` -> ``list[LexicalHit]`` by descending
  BM25 (summed over the searched fields). ``phrases``: each must occur as an exact
  token sequence in one of the searched fields, or the doc is not returned.
- ``save(applied_seq)`` persists atomically (crash leaves the previous state
  readable) and records ``applied_seq`` as ``engine.vectors`` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

__all__ = ["FIELDS", "LexicalDoc", "LexicalHit", "LexicalIndexProtocol"]

FIELDS: tuple[str, ...] = ("transcript", "ocr", "labels", "metadata")


@dataclass(frozen=True)
class LexicalDoc:
    id: int
    video_key: int
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LexicalHit:
    id: int
    score: float


class LexicalIndexProtocol(Protocol):
    @property
    def applied_seq(self) -> int: ...

    def add(self, docs: Sequence[LexicalDoc]) -> None: ...

    def delete_video(self, video_key: int) -> None: ...

    def search(
        self,
        query: str,
        k: int = 10,
        fields: Sequence[str] | None = None,
        phrases: Sequence[str] = (),
    ) -> list[LexicalHit]: ...

    def count(self) -> int: ...

    def save(self, applied_seq: int) -> None: ...
