"""Fusion: pure functions that merge ranked lists from several retrievers into one.

A *run* is one retriever's result: either a sequence of ``(doc_id, score)`` pairs in
rank order (best first), or a mapping ``doc_id -> score`` (ranked by score, ties by
doc id). ``runs`` is a sequence of runs, or a mapping ``name -> run`` (e.g.
``{"visual": ..., "speech": ...}``) so that :class:`query.intent.Intent` weights can be
passed straight in.

Rules shared by every method:

- A document absent from a run contributes 0 from that run (it was not retrieved, or
  fell below the run's depth). With z-score normalisation, 0 is the run's mean, so a
  below-average hit scores lower than a miss there: prefer min-max for shallow runs.
- A run with weight 0 is skipped entirely: its documents appear only if another run
  has them. Weights must be finite and >= 0. A weight given for a name that has no
  run is ignored (a modality that was not searched); a named run without a weight
  is an error.
- Output is a list of :class:`FusedHit` sorted by score descending, ties broken by
  doc id ascending (ints before strs), so the result is deterministic. Scores are
  summed with ``math.fsum`` so equal contributions give exactly equal totals in any
  order.
- Doc ids are ``int`` or ``str``; scores must be finite; a doc id may appear once per
  run. Violations raise :class:`engine.errors.InputError` naming the run.
"""
from __future__ import annotations

import heapq
import math
import numbers
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Union

from engine.errors import InputError, UnknownNameError

__all__ = [
    "DocId",
    "Run",
    "Runs",
    "Weights",
    "FusedHit",
    "NORMALISATIONS",
    "reciprocal_rank_fusion",
    "rrf_top_ids",
    "convex_combination",
    "normalise",
    "FusionMethod",
    "FUSION_METHODS",
    "get_fusion_method",
    "list_fusion_methods",
]

DocId = Union[int, str]
Run = Union[Sequence[tuple[DocId, float]], Mapping[DocId, float]]
Runs = Union[Sequence[Run], Mapping[str, Run]]
Weights = Union[Sequence[float], Mapping[str, float], None]

NORMALISATIONS: tuple[str, ...] = ("minmax", "zscore", "none")

# Normalised value every doc of a run gets when all its scores are equal (or it has
# one doc): the middle of min-max's [0, 1] and z-score's mean. Such a run says "these
# were retrieved" but not which is better; 0.5 keeps them above docs it lacks
# (which contribute 0) without claiming they were its best. Never NaN or inf.
_NEUTRAL = {"minmax": 0.5, "zscore": 0.0}


class FusedHit(NamedTuple):
    """One fused result; a tuple, so a fused list is itself a valid run."""

    doc_id: DocId
    score: float


def _doc_id(doc_id: Any) -> DocId:
    """The id as int or str; numpy integers (FAISS ids) become int."""
    # bool is an int subclass but almost surely a bug as an id.
    if isinstance(doc_id, numbers.Integral) and not isinstance(doc_id, bool):
        return int(doc_id)
    if isinstance(doc_id, str):
        return doc_id
    raise InputError(
        f"doc id {doc_id!r} is a {type(doc_id).__name__}",
        hint="use int or str doc ids",
    )


def _id_key(doc_id: DocId) -> tuple[int, DocId]:
    return (0, doc_id) if isinstance(doc_id, int) else (1, doc_id)


def _score(doc_id: DocId, score: Any, label: str) -> float:
    """The score as a finite float; numpy floats (FAISS distances) are accepted."""
    if (
        isinstance(score, bool)
        or not isinstance(score, numbers.Real)
        or not math.isfinite(float(score))
    ):
        raise InputError(
            f"{label} gives doc {doc_id!r} the score {score!r}",
            hint="scores must be finite numbers",
        )
    return float(score)


def _ranked(run: Run, label: str) -> list[tuple[DocId, float]]:
    """The run as a validated list of (id, score) in rank order."""
    out: list[tuple[DocId, float]] = []
    seen: set[DocId] = set()
    if isinstance(run, Mapping):
        for raw_id, raw_score in run.items():
            doc_id = _doc_id(raw_id)
            if doc_id in seen:  # e.g. {1: .., np.int64(1): ..}
                raise InputError(f"{label} lists doc {doc_id!r} twice", hint="keep each doc once")
            seen.add(doc_id)
            out.append((doc_id, _score(doc_id, raw_score, label)))
        out.sort(key=lambda p: (-p[1], _id_key(p[0])))
        return out
    if isinstance(run, (str, bytes)) or not isinstance(run, Iterable):
        raise InputError(
            f"{label} is a {type(run).__name__}, not a run", hint="pass (doc_id, score) pairs"
        )
    for i, pair in enumerate(run):
        try:
            raw_id, raw_score = pair
        except (TypeError, ValueError) as e:
            raise InputError(
                f"{label} item {i} is {pair!r}, not a (doc_id, score) pair",
                hint="pass runs as lists of (doc_id, score) or dicts of doc_id -> score",
            ) from e
        doc_id = _doc_id(raw_id)
        score = _score(doc_id, raw_score, label)
        if doc_id in seen:
            raise InputError(
                f"{label} lists doc {doc_id!r} twice", hint="keep each doc once per run"
            )
        seen.add(doc_id)
        out.append((doc_id, score))
    return out


def _prepare(
    runs: Runs, weights: Weights, depth: int | None
) -> list[tuple[str, float, list[tuple[DocId, float]]]]:
    """(label, weight, ranked run cut to depth) for each run with a positive weight."""
    if depth is not None and (isinstance(depth, bool) or depth < 1):
        raise InputError(f"depth={depth!r}", hint="use a positive depth or None")
    if isinstance(runs, Mapping):
        labelled = [(f"run {name!r}", name, run) for name, run in runs.items()]
        if weights is None:
            ws = [1.0] * len(labelled)
        elif isinstance(weights, Mapping):
            missing = [name for _, name, _ in labelled if name not in weights]
            if missing:
                raise InputError(
                    f"no weight for run {missing[0]!r}",
                    hint=f"give weights for every run: {sorted(map(str, runs))}",
                )
            ws = [weights[name] for _, name, _ in labelled]
        else:
            raise InputError("runs are named, so weights must be a mapping of the same names")
    else:
        if isinstance(runs, (str, bytes)) or not isinstance(runs, Iterable):
            raise InputError(f"runs is a {type(runs).__name__}", hint="pass a list of runs")
        labelled = [(f"run {i}", str(i), run) for i, run in enumerate(runs)]
        if weights is None:
            ws = [1.0] * len(labelled)
        elif isinstance(weights, Mapping):
            raise InputError("runs are a list, so weights must be a list of the same length")
        else:
            ws = list(weights)
            if len(ws) != len(labelled):
                raise InputError(
                    f"{len(ws)} weights for {len(labelled)} runs",
                    hint="give one weight per run",
                )
    out = []
    for (label, _, run), w in zip(labelled, ws):
        if (
            isinstance(w, bool)
            or not isinstance(w, numbers.Real)
            or not math.isfinite(float(w))
            or w < 0
        ):
            raise InputError(f"{label} has weight {w!r}", hint="weights must be finite and >= 0")
        ranked = _ranked(run, label)
        if w == 0:
            continue
        out.append((label, float(w), ranked[:depth] if depth is not None else ranked))
    return out


def _finish(totals: Mapping[DocId, list[float]], top: int | None) -> list[FusedHit]:
    if top is not None and (isinstance(top, bool) or top < 0):
        raise InputError(f"top={top!r}", hint="use top >= 0 or None")
    hits = [FusedHit(d, math.fsum(parts)) for d, parts in totals.items()]
    hits.sort(key=lambda h: (-h.score, _id_key(h.doc_id)))
    return hits[:top] if top is not None else hits


def reciprocal_rank_fusion(
    runs: Runs,
    k: float = 60,
    weights: Weights = None,
    depth: int | None = None,
    top: int | None = None,
) -> list[FusedHit]:
    """Weighted RRF (Cormack et al. 2009): score(d) = sum over runs of w / (k + rank).

    Ranks start at 1 and follow each run's order (a sequence's given order; a
    mapping's scores). Only the first ``depth`` docs of each run count; ``top`` cuts
    the output. Scores are ignored apart from ordering mappings.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k) or k < 0:
        raise InputError(f"k={k!r}", hint="use a finite k >= 0 (60 is the usual value)")
    totals: dict[DocId, list[float]] = {}
    for _, w, ranked in _prepare(runs, weights, depth):
        for rank, (doc_id, _) in enumerate(ranked, 1):
            totals.setdefault(doc_id, []).append(w / (k + rank))
    return _finish(totals, top)


def rrf_top_ids(runs: Sequence[Sequence[tuple[int, float]]], k: float = 60, top: int = 100) -> list[int]:
    """The ``top`` ids of unweighted RRF over ``runs``, in fused order, without validation.

    The same ranking as :func:`reciprocal_rank_fusion` (ties by id) for runs that are
    already clean: int ids, each once per run, in rank order, as the planner's own
    retrievers return them. Validating every pair cost more than the fusion itself
    (about 4 ms a search over six runs of 100).
    """
    parts: dict[int, list[float]] = {}
    for run in runs:
        for rank, pair in enumerate(run, 1):
            parts.setdefault(pair[0], []).append(1.0 / (k + rank))
    # fsum, as reciprocal_rank_fusion does: equal rank sets tie exactly, whatever the run order.
    totals = [(-math.fsum(p), d) for d, p in parts.items()]
    return [d for _, d in heapq.nsmallest(top, totals)]


def normalise(scores: Sequence[float], method: str = "minmax") -> list[float]:
    """Normalise one run's scores.

    ``minmax`` maps to [0, 1]; ``zscore`` to (s - mean) / population std; ``none``
    keeps them. A zero spread (all equal, or a single score) gives every score the
    neutral value (0.5 for minmax, 0 for zscore) instead of dividing by zero.
    """
    if method not in NORMALISATIONS:
        raise UnknownNameError("normalisation", method, NORMALISATIONS)
    values = [float(s) for s in scores]
    if method == "none" or not values:
        return values
    if method == "minmax":
        lo, hi = min(values), max(values)
        spread = hi - lo
        if spread == 0 or not math.isfinite(spread):
            return [_NEUTRAL[method]] * len(values)
        return [(v - lo) / spread for v in values]
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    # Compare against the scores' magnitude: fsum of equal values can leave ~1e-17 of
    # rounding in the std, which would blow rounding noise up into unit z-scores.
    if std <= 1e-12 * max(1.0, max(abs(v) for v in values)) or not math.isfinite(std):
        return [_NEUTRAL[method]] * len(values)
    return [(v - mean) / std for v in values]


def convex_combination(
    runs: Runs,
    weights: Weights = None,
    normalisation: str = "minmax",
    depth: int | None = None,
    top: int | None = None,
) -> list[FusedHit]:
    """score(d) = sum over runs of w * normalised score of d in that run (0 if absent).

    Each run is normalised on its own (after cutting to ``depth``), see
    :func:`normalise`. ``weights`` default to 1 for every run; they are not rescaled,
    so pass weights that sum to 1 for scores in [0, 1] under min-max.
    """
    if normalisation not in NORMALISATIONS:
        raise UnknownNameError("normalisation", normalisation, NORMALISATIONS)
    totals: dict[DocId, list[float]] = {}
    for _, w, ranked in _prepare(runs, weights, depth):
        for (doc_id, _), value in zip(ranked, normalise([s for _, s in ranked], normalisation)):
            totals.setdefault(doc_id, []).append(w * value)
    return _finish(totals, top)


@dataclass(frozen=True)
class FusionMethod:
    """A named fusion function: ``fuse(runs, weights=None, depth=None, top=None, **params)``."""

    name: str
    fuse: Callable[..., list[FusedHit]]
    description: str

    def __call__(
        self,
        runs: Runs,
        weights: Weights = None,
        *,
        depth: int | None = None,
        top: int | None = None,
        **params: Any,
    ) -> list[FusedHit]:
        return self.fuse(runs, weights=weights, depth=depth, top=top, **params)


FUSION_METHODS: dict[str, FusionMethod] = {
    m.name: m
    for m in (
        FusionMethod(
            "rrf",
            reciprocal_rank_fusion,
            "weighted reciprocal rank fusion; params: k (default 60)",
        ),
        FusionMethod(
            "convex",
            convex_combination,
            "weighted sum of normalised scores; params: normalisation (minmax|zscore|none)",
        ),
    )
}


def get_fusion_method(name: str) -> FusionMethod:
    """The registered method called ``name``; UnknownNameError lists the valid names."""
    try:
        return FUSION_METHODS[name]
    except (KeyError, TypeError):
        raise UnknownNameError("fusion method", str(name), list(FUSION_METHODS)) from None


def list_fusion_methods() -> list[str]:
    """Registered fusion method names, sorted."""
    return sorted(FUSION_METHODS)

