"""``LearnConfig``: how an index learns from use, read from ``<index>/learn/config.toml``
when present (every key optional; an unknown key or a bad value is refused by name)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from engine.errors import InputError

__all__ = ["LearnConfig", "load_config"]


@dataclass(frozen=True)
class LearnConfig:
    retention_days: float = 90.0  # events older than this are dropped
    max_events_per_tenant: int = 5_000_000  # beyond this the oldest are dropped
    purge_every_writes: int = 1000  # the retention limits are applied every this many events
    store_user_ids: bool = False  # False: user identifiers are stored as a keyed hash only
    dwell_click_s: float = 10.0  # a dwell this long counts as a click
    randomise_share: float = 0.05  # share of searches with one adjacent pair of the top results swapped
    randomise_depth: int = 10  # the swapped pair lies in the top this many (the shown list)
    interleave_share: float = 0.0  # share of searches that interleave the live model with a challenger
    retrain_every_s: float = 3600.0  # the service retrains this often (0: never on a schedule)
    min_sessions: int = 200  # fewer logged searches than this: no retrain
    min_impressions: int = 3  # a (query, result) seen fewer times gives no label
    judged: str | None = None  # a judged queries JSONL (shared/bench format) the gate also checks
    l2: float = 1.0  # the ranker's pull toward the default ranking
    holdout_share: float = 0.2  # share of logged queries held out for the safety gate

    def __post_init__(self) -> None:
        for name in ("randomise_share", "interleave_share", "holdout_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"learn config: {name} must be in 0..1, got {v}")
        if self.randomise_share + self.interleave_share > 1.0:
            raise InputError("learn config: randomise_share + interleave_share must be at most 1")
        for name in ("retention_days", "retrain_every_s", "dwell_click_s", "l2"):
            if getattr(self, name) < 0:
                raise InputError(f"learn config: {name} must be >= 0")
        for name in ("max_events_per_tenant", "purge_every_writes", "min_sessions", "min_impressions",
                     "randomise_depth"):
            if getattr(self, name) < 1:
                raise InputError(f"learn config: {name} must be >= 1")


def load_config(index_dir: str | Path) -> LearnConfig:
    path = Path(index_dir) / "learn" / "config.toml"
    if not path.is_file():
        return LearnConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not TOML ({e})") from e
    known = {f.name: f for f in fields(LearnConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown}", hint=f"known keys: {sorted(known)}")
    try:
        return LearnConfig(**data)
    except TypeError as e:
        raise InputError(f"{path}: {e}") from e
