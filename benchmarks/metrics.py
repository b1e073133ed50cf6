"""Retrieval-quality metrics over ranked lists: pure functions, no I/O.

Conventions (the quality benchmark and its tests rely on them):

- **Clip level.** ``ranked_ids`` is a method's result list, best first. One clip may
  appear several times (several moments of one video); clip-level metrics keep only
  its first occurrence (``dedupe``), so a clip is counted once, at its best rank.
- **Ties.** Scores are not looked at: the list order as given is the rank order, so
  two hits with equal scores keep the order the method returned them in.
- **Binary relevance.** A clip is relevant or not; nDCG's ideal DCG puts every
  relevant clip first (``min(len(relevant), k)`` gains of 1).
- **Empty ground truth.** A negative query (nothing in the library answers it) has
  no relevant clip. Recall, reciprocal rank and nDCG are undefined for it and return
  ``None``; averages (``mean_defined``) skip ``None``, so negatives are EXCLUDED from
  Recall/MRR/nDCG means. Negatives are judged separately by the score the method
  gives its top hit (``top1_score``, a "false positive score": lower is better,
  meaningful only beside the same method's top-1 scores on positive queries).
- **Moments.** ``r1_at_iou`` asks whether the top hit is on a relevant clip and its
  ``[start, end]`` overlaps that clip's ground-truth window with temporal IoU at or
  above a threshold. Only ground-truth entries with a window take part; a query with
  no window at all returns ``None`` (not applicable). A top hit on a relevant clip
  whose ground truth has no window scores 0 here (there is no window to compare
  with), though Recall@1 counts it: for queries with mixed ground truth R1@IoU is a
  lower bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Iterable, Sequence

from engine.errors import InputError

__all__ = [
    "Relevant",
    "RankedMoment",
    "dedupe",
    "recall_at_k",
    "reciprocal_rank",
    "ndcg_at_k",
    "first_relevant_rank",
    "temporal_iou",
    "r1_at_iou",
    "top1_score",
    "mean_defined",
]


@dataclass(frozen=True)
class Relevant:
    """One ground-truth entry: a clip id and, optionally, the moment that answers."""

    clip: str
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise InputError(f"ground truth for clip {self.clip!r} has only one of start/end",
                             hint="give both start and end (seconds) or neither")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise InputError(f"ground truth for clip {self.clip!r} ends ({self.end}) before it starts ({self.start})")

    @property
    def has_window(self) -> bool:
        return self.start is not None


@dataclass(frozen=True)
class RankedMoment:
    """One result of a method: which clip, which seconds of it, and its score."""

    clip: str
    start: float
    end: float
    score: float = 0.0


def _check_k(k: int) -> None:
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")


def dedupe(ranked_ids: Iterable[str]) -> list[str]:
    """First occurrence of each id, in the given order."""
    seen: set[str] = set()
    out: list[str] = []
    for i in ranked_ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def first_relevant_rank(ranked_ids: Sequence[str], relevant_ids: Collection[str]) -> int | None:
    """1-based rank of the first relevant clip in the deduplicated list; None if absent."""
    rel = set(relevant_ids)
    for rank, i in enumerate(dedupe(ranked_ids), start=1):
        if i in rel:
            return rank
    return None


def recall_at_k(ranked_ids: Sequence[str], relevant_ids: Collection[str], k: int) -> float | None:
    """Share of the relevant clips found in the first ``k`` distinct clips.

    ``None`` for empty ground truth (see the module docstring). ``k`` larger than the
    list simply looks at the whole list."""
    _check_k(k)
    rel = set(relevant_ids)
    if not rel:
        return None
    found = sum(1 for i in dedupe(ranked_ids)[:k] if i in rel)
    return found / len(rel)


def reciprocal_rank(ranked_ids: Sequence[str], relevant_ids: Collection[str], k: int | None = None) -> float | None:
    """1 / rank of the first relevant clip (0 if none in the first ``k``, or in the
    whole list when ``k`` is None); ``None`` for empty ground truth."""
    if k is not None:
        _check_k(k)
    if not set(relevant_ids):
        return None
    rank = first_relevant_rank(ranked_ids, relevant_ids)
    if rank is None or (k is not None and rank > k):
        return 0.0
    return 1.0 / rank


def ndcg_at_k(ranked_ids: Sequence[str], relevant_ids: Collection[str], k: int) -> float | None:
    """Binary-relevance nDCG over the first ``k`` distinct clips (gain 1/log2(rank+1));
    the ideal list has ``min(len(relevant), k)`` relevant clips first. ``None`` for
    empty ground truth."""
    _check_k(k)
    rel = set(relevant_ids)
    if not rel:
        return None
    dcg = sum(1.0 / math.log2(r + 1) for r, i in enumerate(dedupe(ranked_ids)[:k], start=1) if i in rel)
    idcg = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(rel), k) + 1))
    return dcg / idcg


def temporal_iou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Intersection over union of two time intervals (seconds).

    Touching intervals (one ends where the other starts) have IoU 0. Two zero-length
    intervals at the same instant have IoU 1 (they are the same moment); a
    zero-length interval inside a longer one has IoU 0 (no length in common)."""
    for s, e, name in ((a_start, a_end, "a"), (b_start, b_end, "b")):
        if not (math.isfinite(s) and math.isfinite(e)):
            raise InputError(f"interval {name} has a non-finite bound: [{s}, {e}]")
        if e < s:
            raise InputError(f"interval {name} ends before it starts: [{s}, {e}]")
    inter = max(0.0, min(a_end, b_end) - max(a_start, b_start))
    union = (a_end - a_start) + (b_end - b_start) - inter
    if union <= 0.0:
        return 1.0 if (a_start, a_end) == (b_start, b_end) else 0.0
    return inter / union


def r1_at_iou(hits: Sequence[RankedMoment], relevant: Sequence[Relevant], threshold: float = 0.5) -> float | None:
    """1.0 if the top hit is on a relevant clip and overlaps one of that clip's
    ground-truth windows with IoU >= ``threshold``, else 0.0; ``None`` when no
    ground-truth entry has a window (see the module docstring)."""
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"IoU threshold must be in (0, 1], got {threshold}")
    windows = [r for r in relevant if r.has_window]
    if not windows:
        return None
    if not hits:
        return 0.0
    top = hits[0]
    for r in windows:
        if r.clip != top.clip or r.start is None or r.end is None:
            continue
        if temporal_iou(top.start, top.end, r.start, r.end) >= threshold:
            return 1.0
    return 0.0


def top1_score(hits: Sequence[RankedMoment]) -> float | None:
    """The top hit's score (the "false positive score" of a negative query); None if
    the method returned nothing (the ideal answer to a negative query)."""
    return float(hits[0].score) if hits else None


def mean_defined(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None if there are none."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None
