"""Calibrated confidence: how likely a hit answers the query, and a level for people.

A fused score says which moment ranks above which *within* one query; it is not
comparable across queries (min-max normalisation puts the top of every query near
1.0, an entity boost adds to it), so "penguins on an iceberg" over a library without
one returned ten hits that looked as sure as real ones. The confidence model reads
evidence that *is* comparable across queries, per hit (``features``):

- ``dense``: the weighted mean of the segment's per-modality cosine similarities (the
  query planner's dense score, on the encoders' fixed scale);
- ``best``: its best single-modality cosine among the modalities the query weighs;
- ``coverage``: the share of the query's words found in the segment's speech,
  on-screen text, labels or its video's metadata;
- ``lift``: ``dense`` minus the median ``dense`` of every candidate of the query (a
  real match stands out from the crowd; a query with no answer gives a flat crowd);
- ``behind``: how far ``dense`` is below the query's best candidate;
- ``phrase``: every quoted phrase occurs in it;
- ``visual``: the visual share of the query's weights (visual cosines live on another
  scale than text ones), and ``visual_dense`` its product with ``dense``.

A logistic regression over them (``ConfidenceModel``, coefficients in
``confidence_model.json``) gives ``p``, the probability that the hit's video is a
relevant answer; two thresholds on ``p`` make the levels ``high`` / ``medium`` /
``low``. Both are fitted by ``python -m benchmarks.calibrate`` on judged queries (the
written moment queries plus written negative queries: things absent from every clip)
and measured on held-out ones (the public judged set plus other negatives); the
model file records what it was fitted on and what it measured.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

from engine.errors import InputError
from query.levels import level_rank

__all__ = ["FEATURES", "ConfidenceModel", "QueryContext", "features", "MODEL_PATH", "default_model", "shown"]

FEATURES: tuple[str, ...] = ("dense", "best", "coverage", "lift", "behind", "phrase", "visual", "visual_dense")
MODEL_PATH = Path(__file__).with_name("confidence_model.json")
MIN_WEIGHT = 0.05  # as query.moments.MIN_WEIGHT: a modality the query does not weigh is no evidence


@dataclass(frozen=True)
class QueryContext:
    """What the features compare a hit with: the query's candidates' dense scores."""

    median_dense: float
    best_dense: float
    visual_share: float

    @classmethod
    def of(cls, dense: Mapping[int, float], weights: Mapping[str, float]) -> QueryContext:
        vals = list(dense.values())
        total = sum(w for w in weights.values() if w > 0)
        vis = weights.get("visual", 0.0) / total if total > 0 else 0.0
        return cls(statistics.median(vals) if vals else 0.0, max(vals) if vals else 0.0, float(vis))


def features(dense: float, cos: Mapping[str, float], weights: Mapping[str, float], coverage: float,
             phrase: bool, ctx: QueryContext) -> dict[str, float]:
    """One hit's features (see the module docstring), from its best segment's scores."""
    weighed = [v for m, v in cos.items() if weights.get(m, 0.0) >= MIN_WEIGHT]
    return {
        "dense": float(dense),
        "best": float(max(weighed)) if weighed else 0.0,
        "coverage": float(coverage),
        "lift": float(dense - ctx.median_dense),
        "behind": float(ctx.best_dense - dense),
        "phrase": 1.0 if phrase else 0.0,
        "visual": ctx.visual_share,
        "visual_dense": ctx.visual_share * float(dense),
    }


@dataclass(frozen=True)
class ConfidenceModel:
    """Standardised logistic regression over ``FEATURES`` and the level thresholds."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    thresholds: Mapping[str, float]  # "medium" and "high": the least p of each level
    info: Mapping = field(default_factory=dict, compare=False)  # what it was fitted on, what it measured

    def __post_init__(self) -> None:
        n = len(FEATURES)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise InputError(f"a confidence model needs {n} means, scales and coefficients ({', '.join(FEATURES)})")
        if not 0.0 <= self.thresholds.get("medium", -1) <= self.thresholds.get("high", -1) <= 1.0:
            raise InputError("confidence thresholds must satisfy 0 <= medium <= high <= 1,"
                             f" got {dict(self.thresholds)}")

    def probability(self, feats: Mapping[str, float]) -> float:
        z = self.intercept + sum(c * (feats[f] - m) / s
                                 for f, m, s, c in zip(FEATURES, self.mean, self.scale, self.coef))
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def level(self, p: float) -> str:
        if p >= self.thresholds["high"]:
            return "high"
        if p >= self.thresholds["medium"]:
            return "medium"
        return "low"

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept, "thresholds": dict(self.thresholds),
                "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: Mapping) -> ConfidenceModel:
        if list(d.get("features", [])) != list(FEATURES):
            raise InputError(f"the confidence model's features {d.get('features')} are not {list(FEATURES)}",
                             hint="refit it: python -m benchmarks.calibrate")
        return cls(tuple(d["mean"]), tuple(d["scale"]), tuple(d["coef"]), float(d["intercept"]),
                   dict(d["thresholds"]), dict(d.get("info", {})))

    @classmethod
    def load(cls, path: str | Path = MODEL_PATH) -> ConfidenceModel:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise InputError(f"no confidence model at {path}", hint="fit one: python -m benchmarks.calibrate") from None
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path} is not a confidence model ({type(e).__name__}: {e})",
                             hint="refit it: python -m benchmarks.calibrate") from e

    def save(self, path: str | Path = MODEL_PATH) -> None:
        from engine.atomic import atomic_write_bytes

        atomic_write_bytes(Path(path), (json.dumps(self.to_dict(), indent=1) + "\n").encode("utf-8"))


@lru_cache(maxsize=1)
def default_model() -> ConfidenceModel:
    """The model that ships with the package (``confidence_model.json``)."""
    return ConfidenceModel.load(MODEL_PATH)


def shown(levels: Sequence[str], min_confidence: str) -> list[bool]:
    """Which of ``levels`` reach ``min_confidence``."""
    floor = level_rank(min_confidence)
    return [level_rank(lv) >= floor for lv in levels]

