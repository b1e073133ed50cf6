"""Cover variants in the catalog, and the bandit policies that choose one per request.

Persistence (:class:`CoverStore`) keeps each video's cover variants with their
quality scores and reasons, every impression served and every click, in the
catalog's SQLite file (schema v3, ``engine.catalog.schema_covers``). Each event is one
``BEGIN IMMEDIATE`` transaction that logs the event and bumps the counters with
``SET n = n + 1`` (and updates the LinUCB statistics), so concurrent requests never
lose an event and a restart reads back exactly what was committed.

Policies are pure functions of an in-memory :class:`ArmState` list, so the service
(state loaded from the store) and the offline simulation (state kept in memory) run
the same code:

- :class:`ThompsonSampling`: Beta-Bernoulli per variant, the prior centred on a
  click rate that grows with the variant's quality score (``prior_strength``
  pseudo-impressions), so a new video starts by favouring its best-looking cover
  and real clicks take over.
- :class:`LinUCB`: disjoint LinUCB (Li et al., WWW 2010). The context of a request is
  a user or audience feature vector ``u`` (e.g. the embedding of the user's recent
  searches); its features for a video are ``[1, cos(u, e_1), ..., cos(u, e_K)]``,
  the similarity of ``u`` to the content embedding ``e_k`` of each of the video's K
  covers. Each cover learns which audiences click it; the dimension stays K + 1
  (small), so it learns from a few hundred impressions.
- :class:`RandomPolicy` and :class:`BestQuality`: the baselines of the simulation.

This module imports nothing from indexer, query or api.
"""
from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from engine.catalog import Catalog
from engine.errors import InputError, NotFoundError, UnknownNameError

__all__ = [
    "ArmState",
    "Choice",
    "Policy",
    "ThompsonSampling",
    "LinUCB",
    "RandomPolicy",
    "BestQuality",
    "POLICIES",
    "make_policy",
    "context_features",
    "beta_params",
    "NewCoverVariant",
    "CoverVariant",
    "Impression",
    "ClickResult",
    "CoverStore",
]


# ---------------------------------------------------------------------------
# Policies


@dataclass
class ArmState:
    """What a policy knows about one cover variant.

    ``quality`` is the variant's quality score in [0, 1]; ``impressions`` and
    ``clicks`` its counts; ``a``/``b`` its LinUCB statistics (None: never updated,
    i.e. A = I, b = 0).
    """

    quality: float
    impressions: int = 0
    clicks: int = 0
    a: np.ndarray | None = None
    b: np.ndarray | None = None


@dataclass(frozen=True)
class Choice:
    """A policy's pick: the arm index, the probability the policy had of picking it
    (for replay and inverse-propensity evaluation), the policy name, and the
    features it used (None without context)."""

    arm: int
    propensity: float
    policy: str
    features: np.ndarray | None = None


class Policy(Protocol):
    """Chooses one arm given the arms' state and an optional context vector."""

    name: str

    def choose(self, arms: Sequence[ArmState], features: np.ndarray | None,
               rng: np.random.Generator) -> Choice: ...


def context_features(context: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """LinUCB features of a request for a video: ``[1, cos(u, e_1), ..., cos(u, e_K)]``.

    ``context`` is the (d,) user/audience vector, ``embeddings`` the (K, d) content
    embeddings of the video's covers. Both are normalised here; a zero vector gives
    zero similarities.
    """
    u = np.asarray(context, dtype=np.float64).ravel()
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != u.shape[0]:
        raise InputError(
            f"context vector has dimension {u.shape[0]} but cover embeddings are {e.shape}",
            hint="encode the context with the index's image encoder (encode_text), the space covers live in",
        )
    un = np.linalg.norm(u)
    en = np.linalg.norm(e, axis=1)
    sims = (e @ u) / np.maximum(en * un, 1e-12)
    return np.concatenate([[1.0], sims])


def beta_params(arm: ArmState, prior_strength: float, base_ctr: float) -> tuple[float, float]:
    """The Beta(alpha, beta) posterior that :class:`ThompsonSampling` draws from for
    ``arm``: the quality prior (its mean clamped to [0.001, 0.95]) plus the clicks and
    non-clicks, each parameter at least 0.001. Reports of the bandit use this too."""
    # Prior mean rises with quality (0.5x base rate at quality 0, 1.5x at quality 1).
    mean = min(0.95, max(1e-3, base_ctr * (0.5 + float(arm.quality))))
    alpha = mean * prior_strength + arm.clicks
    beta = (1.0 - mean) * prior_strength + max(0, arm.impressions - arm.clicks)
    return max(alpha, 1e-3), max(beta, 1e-3)


@dataclass(frozen=True)
class ThompsonSampling:
    """Beta-Bernoulli Thompson sampling with a quality-score prior.

    ``propensity_draws`` Monte-Carlo draws estimate the probability of the chosen
    arm (Thompson has no closed form for it); the estimate is logged with the
    impression for offline evaluation.
    """

    prior_strength: float = 10.0
    base_ctr: float = 0.1
    propensity_draws: int = 256
    name: str = "thompson"

    def __post_init__(self) -> None:
        if not self.prior_strength > 0 or not 0 < self.base_ctr < 1:
            raise InputError(f"prior_strength must be > 0 and base_ctr in (0, 1), got "
                             f"{self.prior_strength}, {self.base_ctr}")

    def choose(self, arms: Sequence[ArmState], features: np.ndarray | None,
               rng: np.random.Generator) -> Choice:
        _check_arms(arms)
        params = np.array([beta_params(a, self.prior_strength, self.base_ctr) for a in arms])
        draw = rng.beta(params[:, 0], params[:, 1])
        arm = int(np.argmax(draw))
        sims = rng.beta(params[:, 0], params[:, 1], size=(self.propensity_draws, len(arms)))
        p = float(np.mean(np.argmax(sims, axis=1) == arm))
        return Choice(arm, max(p, 1.0 / self.propensity_draws), self.name, features)


@dataclass(frozen=True)
class LinUCB:
    """Disjoint LinUCB: per arm, ridge regression of click on the context features;
    pick the arm with the highest upper confidence bound ``x.theta + alpha *
    sqrt(x^T A^-1 x)``. Without features it falls back to ``fallback`` (Thompson)."""

    alpha: float = 0.5
    fallback: ThompsonSampling = field(default_factory=ThompsonSampling)
    name: str = "linucb"

    def __post_init__(self) -> None:
        if not self.alpha >= 0:
            raise InputError(f"LinUCB alpha must be >= 0, got {self.alpha}")

    def ucb(self, arms: Sequence[ArmState], x: np.ndarray) -> np.ndarray:
        d = x.shape[0]
        out = np.empty(len(arms))
        for i, arm in enumerate(arms):
            a = np.eye(d) if arm.a is None else arm.a
            b = np.zeros(d) if arm.b is None else arm.b
            if a.shape != (d, d) or b.shape != (d,):
                raise InputError(f"LinUCB state of arm {i} has dimension {a.shape}, features have {d}",
                                 hint="the video's covers changed; reset its LinUCB state")
            a_inv_x = np.linalg.solve(a, x)
            theta = np.linalg.solve(a, b)
            out[i] = float(x @ theta) + self.alpha * math.sqrt(max(0.0, float(x @ a_inv_x)))
        return out

    def choose(self, arms: Sequence[ArmState], features: np.ndarray | None,
               rng: np.random.Generator) -> Choice:
        _check_arms(arms)
        if features is None:
            c = self.fallback.choose(arms, None, rng)
            return Choice(c.arm, c.propensity, self.fallback.name, None)
        x = np.asarray(features, dtype=np.float64)
        scores = self.ucb(arms, x)
        best = np.flatnonzero(scores >= scores.max() - 1e-12)
        arm = int(rng.choice(best))
        return Choice(arm, 1.0 / len(best), self.name, x)


@dataclass(frozen=True)
class RandomPolicy:
    """Uniformly random: the logging policy of the replay evaluation."""

    name: str = "random"

    def choose(self, arms: Sequence[ArmState], features: np.ndarray | None,
               rng: np.random.Generator) -> Choice:
        _check_arms(arms)
        return Choice(int(rng.integers(len(arms))), 1.0 / len(arms), self.name, features)


@dataclass(frozen=True)
class BestQuality:
    """Always the variant with the highest quality score (no learning)."""

    name: str = "best_quality"

    def choose(self, arms: Sequence[ArmState], features: np.ndarray | None,
               rng: np.random.Generator) -> Choice:
        _check_arms(arms)
        return Choice(int(np.argmax([a.quality for a in arms])), 1.0, self.name, features)


POLICIES = {"thompson": ThompsonSampling, "linucb": LinUCB, "random": RandomPolicy, "best_quality": BestQuality}


def make_policy(name: str, **options) -> Policy:
    """A policy by name (``thompson``, ``linucb``, ``random``, ``best_quality``)."""
    try:
        cls = POLICIES[name]
    except KeyError:
        raise UnknownNameError("cover policy", name, list(POLICIES)) from None
    return cls(**options)


def _check_arms(arms: Sequence[ArmState]) -> None:
    if not arms:
        raise InputError("a bandit needs at least one cover variant", hint="compute the video's covers first")


def update_arm(arm: ArmState, features: np.ndarray | None, reward: float, *, impression: bool = True) -> None:
    """In-memory update (the simulation's; the store does the same in SQL): an
    impression adds x x^T to A, a click adds x to b and one click."""
    if impression:
        arm.impressions += 1
    if reward:
        arm.clicks += 1
    if features is not None:
        x = np.asarray(features, dtype=np.float64)
        d = x.shape[0]
        if arm.a is None:
            arm.a, arm.b = np.eye(d), np.zeros(d)
        if impression:
            arm.a = arm.a + np.outer(x, x)
        if reward:
            arm.b = arm.b + reward * x


__all__ += ["update_arm"]


# ---------------------------------------------------------------------------
# Persistence


@dataclass(frozen=True)
class NewCoverVariant:
    """A cover variant to store: frame time (s), quality score, sub-scores, reasons,
    content box, face boxes (x0, y0, x1, y1, confidence), rendered files (aspect ->
    path relative to the index dir) and content embedding."""

    t: float
    score: float
    parts: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    faces: tuple[tuple[float, ...], ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t) and self.t >= 0):
            raise InputError(f"cover time must be a finite number >= 0, got {self.t!r}")
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise InputError(f"cover score must be in [0, 1], got {self.score!r}")


@dataclass(frozen=True)
class CoverVariant:
    """A stored cover variant with its running counts."""

    id: int
    video: int
    rank: int
    t: float
    score: float
    parts: dict[str, float]
    reasons: list[str]
    box: tuple[int, ...]
    faces: tuple[tuple[float, ...], ...]
    files: dict[str, str]
    embedding: np.ndarray | None
    impressions: int
    clicks: int
    created_at: float

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    def as_dict(self) -> dict:
        return {
            "variant_id": self.id, "rank": self.rank, "t": self.t, "score": self.score,
            "parts": self.parts, "reasons": self.reasons, "box": list(self.box),
            "faces": [list(f) for f in self.faces], "files": self.files,
            "impressions": self.impressions, "clicks": self.clicks, "ctr": self.ctr,
        }


@dataclass(frozen=True)
class Impression:
    """One cover served: ``token`` is the id a client sends back with a click."""

    token: str
    cover: int
    video: int
    tenant: str
    policy: str
    propensity: float | None
    user_key: str | None
    at: float
    clicked_at: float | None = None


@dataclass(frozen=True)
class ClickResult:
    """The outcome of recording a click: ``recorded`` is False for a repeated click
    on the same impression (counted once)."""

    impression: Impression
    recorded: bool


def _variant_from_row(r) -> CoverVariant:
    emb = np.frombuffer(r["embedding"], dtype=np.float32).copy() if r["embedding"] is not None else None
    return CoverVariant(
        id=r["id"], video=r["video"], rank=r["rank"], t=r["t_ms"] / 1000.0, score=r["score"],
        parts=json.loads(r["parts"]), reasons=json.loads(r["reasons"]), box=tuple(json.loads(r["box"])),
        faces=tuple(tuple(f) for f in json.loads(r["faces"])), files=json.loads(r["files"]), embedding=emb,
        impressions=r["impressions"], clicks=r["clicks"], created_at=r["created_at"],
    )


def _impression_from_row(r) -> Impression:
    return Impression(r["token"], r["cover"], r["video"], r["tenant"], r["policy"], r["propensity"],
                      r["user_key"], r["at"], r["clicked_at"])


class CoverStore:
    """Cover variants and bandit events in a writable :class:`Catalog` (schema v3+).

    Thread-safe like the catalog (one connection per thread); every write is one
    ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(self, catalog: Catalog) -> None:
        if catalog.read_only:
            raise InputError("CoverStore needs a writable catalog",
                             hint="open Catalog(path) without read_only=True")
        self.catalog = catalog

    # -- variants ----------------------------------------------------------------------
    def replace_variants(self, video_key: int, variants: Sequence[NewCoverVariant]) -> list[CoverVariant]:
        """Make ``variants`` (in rank order) the video's covers, in one transaction.

        A variant at the same frame time (to the millisecond) as an existing one keeps
        its id, counts and history (rerunning cover selection does not reset what the
        bandit learnt); variants no longer chosen are deleted with their history.
        LinUCB statistics are reset for all, because their features depend on the
        whole set of covers.
        """
        if not variants:
            raise InputError("replace_variants needs at least one variant")
        now = time.time()
        t_ms = [int(round(v.t * 1000)) for v in variants]
        if len(set(t_ms)) != len(t_ms):
            raise InputError(f"two cover variants share a frame time: {sorted(t_ms)} ms")
        with self.catalog.transaction() as c:
            if c.execute("SELECT 1 FROM videos WHERE id = ?", (video_key,)).fetchone() is None:
                raise NotFoundError(f"no video with key {video_key} in the catalog")
            c.execute(
                f"DELETE FROM covers WHERE video = ? AND t_ms NOT IN ({','.join('?' * len(t_ms))})",
                (video_key, *t_ms),
            )
            # Ranks are unique per video only in intent; shift the kept rows out of the
            # way first so the new ranks never collide mid-update.
            c.execute("UPDATE covers SET rank = rank + 100000 WHERE video = ?", (video_key,))
            for rank, (v, ms) in enumerate(zip(variants, t_ms)):
                emb = None if v.embedding is None else np.asarray(v.embedding, dtype=np.float32).tobytes()
                c.execute(
                    "INSERT INTO covers (video, rank, t_ms, score, parts, reasons, box, faces, files, embedding,"
                    " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (video, t_ms) DO UPDATE SET rank = excluded.rank, score = excluded.score,"
                    " parts = excluded.parts, reasons = excluded.reasons, box = excluded.box,"
                    " faces = excluded.faces, files = excluded.files, embedding = excluded.embedding",
                    (video_key, rank, ms, float(v.score), json.dumps(v.parts), json.dumps(v.reasons),
                     json.dumps([int(x) for x in v.box]), json.dumps([[float(x) for x in f] for f in v.faces]),
                     json.dumps(v.files), emb, now),
                )
            c.execute("DELETE FROM cover_linucb WHERE cover IN (SELECT id FROM covers WHERE video = ?)", (video_key,))
        return self.variants(video_key)

    def variants(self, video_key: int) -> list[CoverVariant]:
        """The video's cover variants in rank order ([] when none were computed)."""
        rows = self.catalog._conn().execute(
            "SELECT * FROM covers WHERE video = ? ORDER BY rank", (video_key,)
        ).fetchall()
        return [_variant_from_row(r) for r in rows]

    def variant(self, cover_id: int) -> CoverVariant:
        r = self.catalog._conn().execute("SELECT * FROM covers WHERE id = ?", (int(cover_id),)).fetchone()
        if r is None:
            raise NotFoundError(f"no cover variant {cover_id}", hint="GET /v1/videos/{id}/covers lists them")
        return _variant_from_row(r)

    def set_file(self, cover_id: int, aspect: str, relpath: str) -> None:
        """Record a rendered file of a variant (JSON merge in one statement, so two
        renders of different aspects never overwrite each other)."""
        with self.catalog.transaction() as c:
            c.execute("UPDATE covers SET files = json_set(files, ?, ?) WHERE id = ?",
                      (f'$."{aspect}"', relpath, int(cover_id)))

    def arm_states(self, variants: Sequence[CoverVariant]) -> list[ArmState]:
        """Policy state of each variant (counts and LinUCB statistics), in order."""
        ids = [v.id for v in variants]
        lin: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if ids:
            for r in self.catalog._conn().execute(
                f"SELECT cover, dim, a, b FROM cover_linucb WHERE cover IN ({','.join('?' * len(ids))})", ids
            ):
                d = r["dim"]
                lin[r["cover"]] = (np.frombuffer(r["a"], dtype=np.float64).reshape(d, d).copy(),
                                   np.frombuffer(r["b"], dtype=np.float64).copy())
        out = []
        for v in variants:
            a, b = lin.get(v.id, (None, None))
            out.append(ArmState(quality=v.score, impressions=v.impressions, clicks=v.clicks, a=a, b=b))
        return out

    # -- events ------------------------------------------------------------------------
    def record_impression(self, cover_id: int, *, policy: str, propensity: float | None = None,
                          features: np.ndarray | None = None, tenant: str = "default",
                          user_key: str | None = None) -> Impression:
        """Log one served cover and count it, in one transaction."""
        token = "i" + secrets.token_hex(12)
        now = time.time()
        x = None if features is None else np.asarray(features, dtype=np.float64)
        with self.catalog.transaction() as c:
            row = c.execute("SELECT video FROM covers WHERE id = ?", (int(cover_id),)).fetchone()
            if row is None:
                raise NotFoundError(f"no cover variant {cover_id}")
            c.execute(
                "INSERT INTO cover_impressions (token, cover, video, tenant, policy, propensity, context, user_key, at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (token, int(cover_id), row["video"], tenant, policy, propensity,
                 None if x is None else x.astype(np.float32).tobytes(), user_key, now),
            )
            c.execute("UPDATE covers SET impressions = impressions + 1 WHERE id = ?", (int(cover_id),))
            if x is not None:
                self._linucb_update(c, int(cover_id), x, impression=True, reward=0.0)
        return Impression(token, int(cover_id), row["video"], tenant, policy, propensity, user_key, now)

    def record_click(self, token: str, *, tenant: str | None = None) -> ClickResult:
        """Record a click on the impression ``token``; a repeated click is counted once.
        Raises NotFoundError for an unknown token (or another tenant's)."""
        now = time.time()
        with self.catalog.transaction() as c:
            r = c.execute("SELECT * FROM cover_impressions WHERE token = ?", (token,)).fetchone()
            if r is None or (tenant is not None and r["tenant"] != tenant):
                raise NotFoundError(f"no impression {token!r}",
                                    hint="send the impression id from the X-Cover-Impression header of the cover")
            cur = c.execute(
                "UPDATE cover_impressions SET clicked_at = ? WHERE token = ? AND clicked_at IS NULL", (now, token)
            )
            recorded = cur.rowcount == 1
            if recorded:
                c.execute("UPDATE covers SET clicks = clicks + 1 WHERE id = ?", (r["cover"],))
                if r["context"] is not None:
                    x = np.frombuffer(r["context"], dtype=np.float32).astype(np.float64)
                    self._linucb_update(c, r["cover"], x, impression=False, reward=1.0)
            r = c.execute("SELECT * FROM cover_impressions WHERE token = ?", (token,)).fetchone()
        return ClickResult(_impression_from_row(r), recorded)

    def get_impression(self, token: str, *, tenant: str | None = None) -> Impression:
        """One impression by its token; NotFoundError if unknown (or another tenant's)."""
        r = self.catalog._conn().execute("SELECT * FROM cover_impressions WHERE token = ?", (token,)).fetchone()
        if r is None or (tenant is not None and r["tenant"] != tenant):
            raise NotFoundError(f"no impression {token!r}")
        return _impression_from_row(r)

    def latest_unclicked(self, cover_id: int, *, tenant: str) -> str | None:
        """Token of the most recent unclicked impression of a variant (for clicks that
        name the variant rather than the impression)."""
        r = self.catalog._conn().execute(
            "SELECT token FROM cover_impressions WHERE cover = ? AND tenant = ? AND clicked_at IS NULL"
            " ORDER BY id DESC LIMIT 1", (int(cover_id), tenant),
        ).fetchone()
        return None if r is None else r["token"]

    def impressions(self, video_key: int) -> list[Impression]:
        """Every impression of a video, oldest first (the logged stream for replay)."""
        rows = self.catalog._conn().execute(
            "SELECT * FROM cover_impressions WHERE video = ? ORDER BY id", (video_key,)
        ).fetchall()
        return [_impression_from_row(r) for r in rows]

    def _linucb_update(self, c, cover_id: int, x: np.ndarray, *, impression: bool, reward: float) -> None:
        d = x.shape[0]
        r = c.execute("SELECT dim, a, b, n FROM cover_linucb WHERE cover = ?", (cover_id,)).fetchone()
        if r is None or r["dim"] != d:
            a, b, n = np.eye(d), np.zeros(d), 0
        else:
            a = np.frombuffer(r["a"], dtype=np.float64).reshape(d, d).copy()
            b = np.frombuffer(r["b"], dtype=np.float64).copy()
            n = r["n"]
        if impression:
            a += np.outer(x, x)
            n += 1
        if reward:
            b += reward * x
        c.execute(
            "INSERT INTO cover_linucb (cover, dim, a, b, n) VALUES (?,?,?,?,?)"
            " ON CONFLICT (cover) DO UPDATE SET dim = excluded.dim, a = excluded.a, b = excluded.b, n = excluded.n",
            (cover_id, d, a.tobytes(), b.tobytes(), n),
        )
