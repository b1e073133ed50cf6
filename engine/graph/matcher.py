"""Longest-match alias lookup in free text, aware of CJK and Latin word boundaries.

Text and aliases are normalised (:func:`engine.graph.store.normalise_alias`) and cut
into units: a Latin/digit word is one unit, each CJK character is one unit. An alias
matches a run of whole units, so "Li" does not match inside "lion" while "成龙" matches
inside "我喜欢成龙的电影" (Chinese has no spaces). Matching is greedy from the left,
longest alias first, without overlaps: "Jackie Chan Kong" finds "Jackie Chan", not
"Jackie" and then "Chan".

Used by the indexer (gazetteer mentions in transcripts and on-screen text) and by the
query planner (entity names in queries).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, Hashable, Iterable, TypeVar

from engine.graph.store import normalise_alias

__all__ = ["AliasMatcher", "AliasMatch", "units"]

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_UNIT = re.compile(rf"[{_CJK}]|[^\W{_CJK}_]+", re.UNICODE)
_IS_CJK = re.compile(rf"[{_CJK}]")

T = TypeVar("T", bound=Hashable)


def units(text: str, *, normalised: bool = False) -> list[str]:
    """The matching units of a text (words, and single CJK characters)."""
    return _UNIT.findall(text if normalised else normalise_alias(text))


@dataclass(frozen=True)
class AliasMatch(Generic[T]):
    """One match: the alias (normalised), the unit span, and every payload it maps to."""

    alias: str
    start: int
    end: int
    payloads: tuple[T, ...]


class AliasMatcher(Generic[T]):
    """A dictionary of aliases -> payloads (entity ids, or (type, name) keys).

    ``min_chars`` drops aliases too short to be names (a single Latin letter pair, a
    lone CJK character): they would match everywhere."""

    def __init__(self, entries: Iterable[tuple[str, T]], *, min_latin_chars: int = 3, min_cjk_chars: int = 2,
                 stopwords: Iterable[str] = ()) -> None:
        self._table: dict[tuple[str, ...], list[T]] = {}
        stop = {normalise_alias(s) for s in stopwords}
        for alias, payload in entries:
            key = normalise_alias(alias)
            if not key or key in stop:
                continue
            u = tuple(_UNIT.findall(key))
            if not u:
                continue
            cjk = sum(1 for x in u if _IS_CJK.fullmatch(x))
            if cjk == len(u) and cjk < min_cjk_chars:
                continue
            if cjk == 0 and len(key.replace(" ", "")) < min_latin_chars:
                continue
            lst = self._table.setdefault(u, [])
            if payload not in lst:
                lst.append(payload)
        self._max = max((len(k) for k in self._table), default=0)

    def __len__(self) -> int:
        return len(self._table)

    def __bool__(self) -> bool:
        return bool(self._table)

    def find(self, text: str) -> list[AliasMatch[T]]:
        """Non-overlapping matches, left to right, longest first at each position."""
        if not self._table or not text:
            return []
        u = units(text)
        out: list[AliasMatch[T]] = []
        i = 0
        while i < len(u):
            hit = None
            for n in range(min(self._max, len(u) - i), 0, -1):
                key = tuple(u[i : i + n])
                got = self._table.get(key)
                if got:
                    hit = AliasMatch(_join(key), i, i + n, tuple(got))
                    break
            if hit is None:
                i += 1
            else:
                out.append(hit)
                i = hit.end
        return out


def _join(u: tuple[str, ...]) -> str:
    """Units back to the normalised alias form (no space between CJK units)."""
    out = ""
    for x in u:
        if out and not (_IS_CJK.fullmatch(x) and _IS_CJK.fullmatch(out[-1])):
            out += " "
        out += x
    return out
