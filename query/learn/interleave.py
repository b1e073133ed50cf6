"""Team-draft interleaving (Radlinski, Kurup and Joachims, CIKM 2008): compare two
rankers on live traffic by merging their lists into one and crediting clicks to the
ranker that contributed the clicked result.

Each round a coin decides which ranker picks first; each then adds its best result
not already shown, so both contribute equally to every prefix of the list. A session
is won by the team with more clicks; over many sessions the share of wins says which
ranker users prefer, with far fewer sessions than an A/B split needs.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Hashable, Sequence

__all__ = ["Interleaved", "team_draft", "credit", "Tally"]

A, B = "A", "B"


@dataclass(frozen=True)
class Interleaved:
    docs: tuple[Hashable, ...]
    teams: tuple[str, ...]  # "A" or "B" per position


def team_draft(a: Sequence[Hashable], b: Sequence[Hashable], k: int, rng: random.Random) -> Interleaved:
    """The interleaved list of length up to ``k`` from rankings ``a`` and ``b``."""
    docs: list[Hashable] = []
    teams: list[str] = []
    seen: set[Hashable] = set()
    ia = ib = n_a = n_b = 0
    while len(docs) < k:
        while ia < len(a) and a[ia] in seen:
            ia += 1
        while ib < len(b) and b[ib] in seen:
            ib += 1
        if ia >= len(a) and ib >= len(b):
            break
        pick_a = ib >= len(b) or (ia < len(a) and (n_a < n_b or (n_a == n_b and rng.random() < 0.5)))
        if pick_a:
            d = a[ia]
            n_a += 1
            teams.append(A)
        else:
            d = b[ib]
            n_b += 1
            teams.append(B)
        docs.append(d)
        seen.add(d)
    return Interleaved(tuple(docs), tuple(teams))


def credit(teams: Sequence[str], clicked_positions: Sequence[int]) -> str | None:
    """The winner of one session ("A", "B") or None (a tie, or no click).
    ``clicked_positions``: 0-based positions in the interleaved list."""
    a = sum(1 for p in clicked_positions if 0 <= p < len(teams) and teams[p] == A)
    b = sum(1 for p in clicked_positions if 0 <= p < len(teams) and teams[p] == B)
    return None if a == b else (A if a > b else B)


@dataclass
class Tally:
    """Wins per ranker over a stream of sessions."""

    a: int = 0
    b: int = 0
    ties: int = 0

    def add(self, winner: str | None) -> None:
        if winner == A:
            self.a += 1
        elif winner == B:
            self.b += 1
        else:
            self.ties += 1

    @property
    def preference_b(self) -> float:
        """(wins B - wins A) / decided sessions: > 0 users prefer B (Chapelle et al. 2012's delta)."""
        decided = self.a + self.b
        return 0.0 if decided == 0 else (self.b - self.a) / decided

    def to_dict(self) -> dict:
        return {"wins_a": self.a, "wins_b": self.b, "ties": self.ties, "preference_b": round(self.preference_b, 4)}
