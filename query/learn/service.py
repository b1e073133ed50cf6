"""``LearningService``: what a running service owns to learn from use: the feedback
store, the ranking hook its searcher uses (``LiveRanking`` with the store: impressions
logged, a share randomised or interleaved), and a thread that retrains every
``retrain_every_s`` (never while frozen; a failed retrain is logged, and the live
model stays)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from query.learn.config import LearnConfig, load_config
from query.learn.retrain import retrain
from query.learn.serve import LiveRanking
from query.learn.store import FeedbackStore, feedback_path

__all__ = ["LearningService"]

log = logging.getLogger("vidseek.learn")


class LearningService:
    def __init__(self, index_dir: str | Path, config: LearnConfig | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.config = config or load_config(index_dir)
        self.store = FeedbackStore(feedback_path(index_dir), self.config)
        self.ranking = LiveRanking(index_dir, config=self.config, store=self.store)
        self.models = self.ranking.models
        self.last_report: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retrain_lock = threading.Lock()

    def start(self, searcher: Callable[[], Any]) -> None:
        """Start the retrain schedule (``searcher()``: the service's current searcher)."""
        if self.config.retrain_every_s <= 0 or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.config.retrain_every_s):
                try:
                    self.store.purge()
                    self.retrain(searcher())
                except Exception:  # the schedule must outlive one bad retrain; the live model stays
                    log.exception("learning: the scheduled retrain failed; the live model stays")

        self._thread = threading.Thread(target=loop, name="vidseek-retrain", daemon=True)
        self._thread.start()

    @property
    def scheduled(self) -> bool:
        """Whether the retrain schedule is running."""
        return self._thread is not None and self._thread.is_alive()

    def retrain(self, searcher, **kw) -> dict[str, Any]:
        with self._retrain_lock:  # one at a time: the schedule and a request may meet
            report = retrain(searcher, self.store, self.models, self.config, **kw)
        self.last_report = report
        self.ranking.refresh(force=True)
        if report.get("promoted"):
            log.warning("learning: model %s is live (was %s)", report["version"], report["live_before"])
        return report

    def status(self) -> dict[str, Any]:
        self.ranking.refresh(force=True)
        return {"live": self.ranking.version, "frozen": self.models.frozen,
                "challenger": self.ranking.challenger.version if self.ranking.challenger else None,
                "models": self.models.versions(), "events": self.store.count(),
                "interleaving": {k: t.to_dict() for k, t in self.store.interleaving().items()},
                "config": {k: getattr(self.config, k) for k in ("retrain_every_s", "randomise_share",
                                                                "interleave_share", "retention_days",
                                                                "store_user_ids", "min_sessions")},
                "last_retrain": self.last_report}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.close()
