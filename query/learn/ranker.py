"""The learned ranker and where it lives: a linear model over ``query.learn.features``
added to the hand-set fused score, saved per index under ``<index>/learn/``.

``LinearRanker``: a version string and one weight per feature (by name, so a model
saved before a feature was added still loads: a missing name weighs 0). The zero
model and "no model" are both the default ranking.

``ModelStore``: ``learn/models/<version>.json`` (every model ever trained, with its
training and gate report), ``learn/current.json`` (the live version, swapped
atomically: temp file, fsync, ``os.replace``) and ``learn/frozen`` (present: learning
is frozen, no retrain promotes, the live model stays).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.errors import InputError, NotFoundError
from query.learn.features import FEATURES, N_FEATURES
from query.learn.memory import ClickMemory

__all__ = ["DEFAULT_VERSION", "LinearRanker", "ModelStore", "atomic_write_json"]

DEFAULT_VERSION = "default"  # the hand-set ranking: no learned model


@dataclass(frozen=True)
class LinearRanker:
    """``score = fused + beta x memory prior + w . features``; ``version`` names it in
    every search response."""

    version: str
    weights: Mapping[str, float]
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)
    beta: float = 0.0  # the click memory's weight (query.learn.memory)
    memory: ClickMemory | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(FEATURES))
        if unknown:
            raise InputError(f"model {self.version} weighs unknown features {unknown}",
                             hint=f"features are {list(FEATURES)}")
        if not all(np.isfinite(float(v)) for v in self.weights.values()):
            raise InputError(f"model {self.version} has a non-finite weight")

    @classmethod
    def from_vector(cls, w: np.ndarray, info: Mapping[str, Any] | None = None, *, beta: float = 0.0,
                    memory: ClickMemory | None = None) -> LinearRanker:
        """A model named by its weights' (and memory's) hash: the same model, the same version."""
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (N_FEATURES,):
            raise InputError(f"a weight vector has {w.shape} entries, features are {N_FEATURES}")
        rounded = [round(float(v), 8) for v in w]
        h = hashlib.sha256(json.dumps([rounded, round(float(beta), 8)]).encode())
        if memory is not None:
            h.update(json.dumps([memory.tenants, memory.texts, memory.labels], sort_keys=True).encode())
        return cls(f"lin-{h.hexdigest()[:10]}", dict(zip(FEATURES, rounded)), dict(info or {}), float(beta), memory)

    def scorer(self):
        """This model as a ``query.learn.train.Scorer``."""
        from query.learn.train import Scorer

        return Scorer(self.vector(), self.memory, self.beta)

    def vector(self) -> np.ndarray:
        return np.array([float(self.weights.get(f, 0.0)) for f in FEATURES], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "kind": "linear", "weights": dict(self.weights), "beta": self.beta,
                "memory_queries": len(self.memory) if self.memory is not None else 0, "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], memory: ClickMemory | None = None) -> LinearRanker:
        if d.get("kind") != "linear" or "version" not in d or not isinstance(d.get("weights"), dict):
            raise InputError("not a linear ranker file", hint='expected {"version", "kind": "linear", "weights"}')
        return cls(str(d["version"]), {str(k): float(v) for k, v in d["weights"].items()}, d.get("info") or {},
                   float(d.get("beta", 0.0)), memory)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ModelStore:
    """The learned models of one index (see the module docstring)."""

    def __init__(self, index_dir: str | Path) -> None:
        self.root = Path(index_dir) / "learn"
        self.models = self.root / "models"
        self.current_file = self.root / "current.json"
        self.frozen_file = self.root / "frozen"

    # -- models ----------------------------------------------------------------------
    def save(self, model: LinearRanker) -> Path:
        """The model's JSON (after its memory, so that a JSON file is never without it)."""
        self.models.mkdir(parents=True, exist_ok=True)
        if model.memory is not None:
            model.memory.save(self.models / f"{model.version}.memory.npz")
        path = self.models / f"{model.version}.json"
        atomic_write_json(path, model.to_dict())
        return path

    def load(self, version: str) -> LinearRanker:
        path = self.models / f"{version}.json"
        if not path.is_file():
            raise NotFoundError(f"no learned model {version!r} in {self.models}",
                                hint="`vidseek learn status --index DIR` lists them")
        mem = self.models / f"{version}.memory.npz"
        return LinearRanker.from_dict(json.loads(path.read_text(encoding="utf-8")),
                                      ClickMemory.load(mem) if mem.is_file() else None)

    def versions(self) -> list[str]:
        return sorted(p.stem for p in self.models.glob("*.json")) if self.models.is_dir() else []  # not the .npz

    # -- the live model -------------------------------------------------------------------
    def current_version(self) -> str:
        try:
            return str(json.loads(self.current_file.read_text(encoding="utf-8"))["version"])
        except FileNotFoundError:
            return DEFAULT_VERSION

    def current(self) -> LinearRanker | None:
        """The live model (None: the default ranking)."""
        v = self.current_version()
        return None if v == DEFAULT_VERSION else self.load(v)

    def stamp(self) -> float:
        """Changes whenever the live pointer does (its mtime; 0 when absent)."""
        try:
            return self.current_file.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def promote(self, version: str, reason: str) -> None:
        """Make ``version`` (or ``DEFAULT_VERSION``) live. Refused while frozen."""
        if self.frozen:
            raise InputError("learning is frozen: the live model cannot change",
                             hint="`vidseek learn unfreeze --index DIR` first")
        if version != DEFAULT_VERSION:
            self.load(version)  # it must exist and parse
        previous = self.current_version()
        atomic_write_json(self.current_file, {"version": version, "previous": previous, "reason": reason,
                                              "at": time.time()})

    # -- the freeze switch ------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return self.frozen_file.exists()

    def freeze(self, frozen: bool = True) -> None:
        if frozen:
            self.root.mkdir(parents=True, exist_ok=True)
            self.frozen_file.write_text(f"frozen at {time.time():.0f}\n", encoding="utf-8")
        else:
            self.frozen_file.unlink(missing_ok=True)
