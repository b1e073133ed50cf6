"""Click memory: what users chose for a query, carried to the same query and to
close rephrasings of it.

The linear ranker learns weights that must hold for every query; on the judged set it
finds none that beat the hand-set default on queries it never saw (docs/learning.md).
What clicks do know is which result answered *this* need. The memory keeps, per
logged query, its query vector (the retrieval encoder's) and the click model's
relevance of each result shown; a new query whose vector is within ``min_sim``
(cosine) of logged ones gets, per candidate video, the similarity-weighted mean of how
far users chose it above that query's average relevance, times ``beta`` (a lift only:
nothing is pushed down). A query with no close neighbour is ranked exactly as without it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from engine.errors import InputError

__all__ = ["ClickMemory", "MIN_SIM"]

# Cosine of MiniLM query vectors above which two queries are one need. Measured on the
# learning simulation's queries (benchmarks/suites/learning.py): a judged query and its
# variants (lower-cased, a quarter of the words dropped, synonyms) at 0.60-1.0, median
# 0.925, 86 % of 55 at or above 0.8; two different judged queries at most 0.72 (none of
# 4,278 pairs of the 93 reaches 0.8).
MIN_SIM = 0.8


@dataclass
class ClickMemory:
    tenants: list[str]
    texts: list[str]
    vectors: np.ndarray  # (n, d) float32, unit rows
    labels: list[dict[str, float]]  # per query: clip/video id -> relevance
    min_sim: float = MIN_SIM
    _centred: list[dict[str, float]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.texts)
        if not (len(self.tenants) == len(self.labels) == n and self.vectors.shape[0] == n):
            raise InputError("a click memory's parts differ in length")
        # Only what users chose above the query's mean is lifted; nothing is pushed down:
        # a shown result users passed over would otherwise fall below results nobody saw
        # (measured: with demotion, held-out sessions' nDCG fell as beta grew).
        self._centred = []
        for lab in self.labels:
            mean = float(np.mean(list(lab.values()))) if lab else 0.0
            self._centred.append({c: v - mean for c, v in lab.items() if v > mean})

    def __len__(self) -> int:
        return len(self.texts)

    def prior(self, qvec: np.ndarray | None, tenant: str | None = None) -> dict[str, float]:
        """Per video, the centred relevance users gave it for queries like this one."""
        if qvec is None or not len(self):
            return {}
        sims = self.vectors @ np.asarray(qvec, dtype=np.float32)
        num: dict[str, float] = {}
        den: dict[str, float] = {}
        for i in np.nonzero(sims >= self.min_sim)[0].tolist():
            if tenant is not None and self.tenants[i] != tenant:
                continue
            s = float(sims[i])
            for c, v in self._centred[i].items():
                num[c] = num.get(c, 0.0) + s * v
                den[c] = den.get(c, 0.0) + s
        return {c: num[c] / den[c] for c in num}

    def boost(self, qvec: np.ndarray | None, clips: Sequence[str], beta: float, tenant: str | None = None
              ) -> np.ndarray:
        """Per candidate (by its clip), ``beta`` x its prior (0 without one)."""
        p = self.prior(qvec, tenant)
        return np.array([beta * p.get(c, 0.0) for c in clips], dtype=np.float64)

    # -- files ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, vectors=self.vectors.astype(np.float32),
                 meta=np.frombuffer(json.dumps({"tenants": self.tenants, "texts": self.texts, "labels": self.labels,
                                                "min_sim": self.min_sim}).encode(), dtype=np.uint8))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ClickMemory:
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            return cls(meta["tenants"], meta["texts"], z["vectors"], meta["labels"], meta["min_sim"])

    @classmethod
    def build(cls, entries: Mapping[tuple[str, str] | str, tuple[np.ndarray, Mapping[str, float]]],
              min_sim: float = MIN_SIM) -> ClickMemory:
        """From ``(tenant, text) -> (query vector, labels)`` (a bare text: tenant "")."""
        keys = [k for k, (v, lab) in entries.items() if v is not None and lab]
        vecs = np.stack([entries[k][0] for k in keys]).astype(np.float32) if keys else np.zeros((0, 1), np.float32)
        pairs = [k if isinstance(k, tuple) else ("", k) for k in keys]
        return cls([p[0] for p in pairs], [p[1] for p in pairs], vecs, [dict(entries[k][1]) for k in keys], min_sim)
