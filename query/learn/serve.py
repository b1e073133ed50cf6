"""The ranking hook of the ``Searcher`` (``query.planner``): ``LiveRanking.rank`` takes
the fused scores and returns the hits users see, with what the response says about
them (the ranker's version, interleaving, randomisation).

- With a live model (``ModelStore.current``, reloaded when the pointer changes), each
  candidate's score becomes ``fused + w . features``; with none, the fused scores are
  used unchanged, so the default ranking is exactly today's.
- With a feedback store (the service), a share of searches (``randomise_share``) has
  one adjacent pair in the top ``randomise_depth`` swapped, which lets the click model
  separate position from relevance; another share (``interleave_share``, when
  ``learn/challenger.json`` names a model) shows the team-draft interleaving of the
  live model (team A) and the challenger (team B); each search's list is recorded as
  its impression. Without a store (the CLI, benchmarks) nothing is randomised or logged.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any, Callable, Mapping

from query.learn.config import LearnConfig
import numpy as np

from query.learn.features import apply_linear, segment_features
from query.learn.interleave import team_draft
from query.learn.ranker import DEFAULT_VERSION, LinearRanker, ModelStore, atomic_write_json

__all__ = ["LiveRanking", "RELOAD_EVERY_S"]

log = logging.getLogger("vidseek.learn")
RELOAD_EVERY_S = 1.0  # how often a search may look at the live pointer


class LiveRanking:
    """The learned-ranking hook for one index (see the module docstring)."""

    def __init__(self, index_dir, *, config: LearnConfig | None = None, store=None,
                 rng: random.Random | None = None) -> None:
        self.models = ModelStore(index_dir)
        self.config = config or LearnConfig()
        self.store = store  # query.learn.store.FeedbackStore, or None: log nothing, randomise nothing
        self._rng = rng  # None: a generator seeded by the search itself (see _rng_for)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp: float | None = None
        self._model: LinearRanker | None = None
        self._challenger: LinearRanker | None = None

    # -- the live model ----------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._checked < RELOAD_EVERY_S:
                return
            self._checked = now
        stamp = (self.models.stamp(), self._challenger_stamp())
        if stamp == self._stamp and not force:
            return
        try:
            model = self.models.current()
            challenger = self._load_challenger()
        except Exception as e:  # a broken model file must not break search: keep what serves now
            log.error("learned ranking: keeping %s, the live pointer does not load: %s", self.version, e)
            return
        with self._lock:
            self._model, self._challenger, self._stamp = model, challenger, stamp

    @property
    def model(self) -> LinearRanker | None:
        return self._model

    @property
    def challenger(self) -> LinearRanker | None:
        return self._challenger

    @property
    def version(self) -> str:
        return self._model.version if self._model is not None else DEFAULT_VERSION

    def _challenger_file(self):
        return self.models.root / "challenger.json"

    def _challenger_stamp(self) -> int:
        try:
            return self._challenger_file().stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _load_challenger(self) -> LinearRanker | None:
        try:
            v = json.loads(self._challenger_file().read_text(encoding="utf-8"))["version"]
        except FileNotFoundError:
            return None
        return None if v in (None, DEFAULT_VERSION) else self.models.load(v)

    def set_challenger(self, version: str | None) -> None:
        """Interleave ``version`` against the live model (None: stop)."""
        if version is None:
            self._challenger_file().unlink(missing_ok=True)
        else:
            if version != DEFAULT_VERSION:
                self.models.load(version)
            atomic_write_json(self._challenger_file(), {"version": version})
        self.refresh(force=True)

    # -- the hook ------------------------------------------------------------------------------
    def rescore(self, model: LinearRanker | None, plan, cands, cos, dense, fused, qvec=None) -> dict[int, float]:
        """The scores under ``model``: the click memory's boost (queries like this one),
        then the linear model over the default's top videos."""
        if model is None:
            return dict(fused)
        ids, x = segment_features(plan, cands, cos, dense, fused)
        base = np.array([fused[i] for i in ids], dtype=np.float64)
        if model.memory is not None and model.beta:
            base = base + model.memory.boost(qvec, [cands[i].video.video_id for i in ids], model.beta,
                                             plan.options.tenant)
        keys = np.array([cands[i].seg.video for i in ids], dtype=np.int64)
        new = apply_linear(base, x, keys, model.vector())
        return {i: float(new[r]) for r, i in enumerate(ids)}

    def _rng_for(self, plan) -> random.Random:
        """The given generator, or one seeded by the tenant, the query and the day: the
        same search asked twice (the next page of results, a reload) is randomised and
        interleaved the same way, while different searches still spread over every
        swap the click model needs."""
        if self._rng is not None:
            return self._rng
        import hashlib
        import time as _time

        day = int(_time.time() // 86400)
        seed = hashlib.blake2b(f"{plan.options.tenant}|{plan.query}|{day}".encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(seed, "big"))

    def rank(self, search_id: str, plan, cands: Mapping, cos: Mapping, dense: Mapping, fused: Mapping,
             make_hits: Callable[[Mapping[int, float]], list], blocks: Mapping | None = None
             ) -> tuple[list, dict[str, Any]]:
        """(the hits, the response's ``ranker`` object). ``blocks``: the query's vectors
        (its text vector keys the click memory)."""
        qvec = (blocks or {}).get("speech")
        self.refresh()
        model, challenger = self._model, self._challenger
        meta: dict[str, Any] = {"version": model.version if model else DEFAULT_VERSION}
        rng = self._rng_for(plan)
        draw = rng.random() if self.store is not None else 1.0
        teams = None
        if challenger is not None and draw < self.config.interleave_share:
            a = make_hits(self.rescore(model, plan, cands, cos, dense, fused, qvec))
            b = make_hits(self.rescore(challenger, plan, cands, cos, dense, fused, qvec))
            key = lambda h: (h.video_id, round(h.start, 3))  # noqa: E731
            by_key = {key(h): h for h in [*b, *a]}
            merged = team_draft([key(h) for h in a], [key(h) for h in b], plan.options.k, rng)
            hits = [by_key[d] for d in merged.docs]
            teams = list(merged.teams)
            meta.update(interleaved=True, challenger=challenger.version)
        else:
            hits = make_hits(self.rescore(model, plan, cands, cos, dense, fused, qvec))
            share = self.config.interleave_share if challenger is not None else 0.0
            if share <= draw < share + self.config.randomise_share and len(hits) > 1:
                j = rng.randrange(min(len(hits), self.config.randomise_depth) - 1)
                hits = [*hits[:j], hits[j + 1], hits[j], *hits[j + 2:]]
                meta["randomised"] = True
        tenant = plan.options.tenant
        if self.store is not None and tenant is not None:
            ranker = f"{meta['version']} vs {meta['challenger']}" if teams else meta["version"]
            try:
                self.store.record_impression(tenant, search_id, plan.query, [h.video_id for h in hits],
                                             ranker=ranker, teams=teams, randomised=bool(meta.get("randomised")))
            except Exception:  # the answer matters more than its log: search on, say so loudly
                log.exception("feedback: the impression of search %s was not recorded", search_id)
                meta["logged"] = False
        return hits, meta
