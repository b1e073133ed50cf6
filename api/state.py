"""The service state: one ``ServiceState`` per running app, opened by its lifespan hook
and closed with it. It owns everything the routes share:

- the index handles: the one writer (``SharedWriter``: ingest jobs and deletes,
  serialised), and a read-only handle opened only when it serves, i.e. when
  ``Settings.search_on_writer`` is off or another process holds the writer lock;
  ``index()`` hands out the handle that reads use and ``searcher()`` the query
  planner over it, synced first so that it sees every commit;
- the key store, link signer and rate limiter; the job queue and its job kinds
  (``job_kinds``: kind -> runner, besides the built-in ``ingest``); with
  ``Settings.ray_ingest`` the Ray analysis pool its ingest jobs use (``ingest_pool``)
  and, when the state started Ray, the connection;
- the cover service (its own writable catalog connection, made on first use), the
  thumbnail and context-vector caches, the limits of clips and reels, the metrics.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable, TypeVar

from api.auth import KeyStore, LinkSigner, RateLimiter, service_db_path
from api.errors import ApiError
from api.jobs import JobQueue, JobRunner, SharedWriter
from api.conventions import IdempotencyStore
from api.discovery import new_owner_token
from api.webhooks import Webhooks
from api.metrics import Metrics
from api.settings import Settings
from engine.errors import InputError

__all__ = ["ServiceState", "LruCache", "is_loopback"]

log = logging.getLogger("vidseek.api")

T = TypeVar("T")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LruCache:
    """A small thread-safe LRU of computed values (encoded thumbnails, context vectors).
    Two threads missing the same key may both compute it; the later one wins."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = make()
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)


class ServiceState:
    """Everything the routes use (see the module docstring). ``open`` makes one,
    ``start`` readies the search side and starts the job worker, ``close`` releases
    it all."""

    def __init__(self, index_dir: Path, settings: Settings, keys: KeyStore, writer: SharedWriter) -> None:
        from indexer.export import ExportLimits
        from indexer.previews import PreviewCache, PreviewLimits

        self.index_dir = index_dir
        self.settings = settings
        self.keys = keys
        self.writer = writer
        self.signer = LinkSigner(keys.secret("link_signing"), settings.link_ttl_s)
        self.limiter = RateLimiter(0.0, settings.burst)  # the rate that applies: rate()
        self.job_kinds: dict[str, JobRunner] = {}
        self.webhooks: Webhooks | None = None
        if settings.webhook is not None:
            # the secret is text (what `python -m api.keys webhook-secret` prints, or the file's content)
            secret = settings.webhook_secret or keys.secret("webhook_signing").hex().encode()
            self.webhooks = Webhooks(settings.webhook, secret)
        self.jobs = JobQueue(service_db_path(index_dir), writer, kinds=self.job_kinds,
                             on_finish=(lambda job: self.webhooks.notify(job.as_dict())) if self.webhooks else None)
        self.idempotency = IdempotencyStore(service_db_path(index_dir))
        self.metrics = Metrics()
        self.loopback = is_loopback(settings.host)
        self.thumbs = LruCache(256)  # encoded thumbnails: decoding a frame costs tens of ms
        self.context_vectors = LruCache(1024)  # cover contexts in the image encoder's space
        self.clip_limits = ExportLimits()  # clips and highlight reels made over HTTP
        self.previews = PreviewCache(index_dir, PreviewLimits(settings.preview_budget_bytes))  # playable copies
        self.cover_service: Any = None  # indexer.covers.service.CoverService, made on first use
        self.reader: Any = None  # the read-only engine.index.VideoIndex, opened only when it serves
        self._was_local: bool | None = None
        self.owner_token = new_owner_token()  # api.discovery: the index's own user (server.json)
        self.ready = False
        self.started_at = time.time()
        self._closed = False
        self._lock = threading.RLock()
        self._searcher: Any = None  # query.planner.Searcher over the handle index() gave last
        self.router: Any = None  # query.shards.ShardedSearcher when searches run on Ray replicas
        self.ingest_pool: Any = None  # indexer.distributed.AnalysisPool when ingest jobs run on Ray
        self._ray_connected = False  # this state started or joined Ray (it disconnects at close)
        from query.learn.service import LearningService

        self.learning = LearningService(index_dir)  # feedback store, learned ranking, retrain schedule

    @classmethod
    def open(cls, index_dir: str | Path, settings: Settings) -> ServiceState:
        """The state of the service for ``index_dir`` (created when absent)."""
        index_dir = Path(index_dir)
        index_dir.mkdir(parents=True, exist_ok=True)
        keys = KeyStore(service_db_path(index_dir))
        writer = SharedWriter(index_dir)
        try:
            # The writer first: it creates the index when the folder is new.
            writer.try_open()
            return cls(index_dir, settings, keys, writer)
        except BaseException:
            writer.close()
            keys.close()
            raise

    def register_job_kind(self, kind: str, runner: JobRunner) -> None:
        """Let the job queue run jobs of ``kind`` (e.g. ``highlight``) with ``runner``, in
        the same worker, table and status model as ingest."""
        if kind == "ingest":
            raise ValueError("'ingest' is the built-in job kind")
        self.job_kinds[kind] = runner

    def start(self) -> int:
        """Open the search side (the encoders, loaded now when ``warm_models``, so that
        ready means "a search will not stall"), then start the job worker; returns how
        many unfinished jobs of an earlier run were queued again."""
        s = self.settings
        replica_cpus = s.shard_groups * s.replicas if s.replicas > 0 else 0  # one CPU slot a replica
        if s.ray_ingest:
            from engine.cluster import LOCAL, connect

            # a local instance: a slot per core for the analyses, plus one per search replica
            local = s.ray_address in (None, "", LOCAL)
            self._ray_connected = connect(s.ray_address, num_cpus=(os.cpu_count() or 1) + replica_cpus
                                          if local else None)
        if s.replicas > 0:  # vector shards on Ray replicas; this process routes
            from query.shards import ShardedSearcher

            self.router = ShardedSearcher(self.index_dir, groups=s.shard_groups, replicas=s.replicas,
                                          address=s.ray_address, ranking=self.learning.ranking, warm=s.warm_models)
        else:
            searcher = self.searcher()
            if s.warm_models:
                searcher.warm_up()
        if s.ray_ingest:  # ingest jobs analysed on the cluster, committed here
            from indexer.distributed import AnalysisPool

            try:
                self.ingest_pool = AnalysisPool(max_actors=s.ingest_slots, reserved_cpus=replica_cpus)
            except InputError as e:  # no CPU slot left for an analysis worker
                raise InputError(f"ingest jobs on Ray: {e.message}",
                                 hint="start another node (`ray start --address HEAD:6379`), ask for fewer"
                                      " --replicas, or pass --ingest-slots 0 to run ingest jobs in the server"
                                 ) from None
            self.ingest_pool.start_pump()
            self.jobs.cluster = self.ingest_pool
            log.info("ingest jobs are analysed on the Ray cluster: up to %d at once", self.ingest_pool.slots())
        self.ready = True
        self.learning.start(self.local_searcher)
        return self.jobs.start()

    def close(self) -> None:
        """Stop the jobs (within the shutdown grace) and close every handle."""
        self.ready = False
        with self._lock:
            self._closed = True
        try:
            self.jobs.shutdown(self.settings.shutdown_grace_s)
            if self.webhooks is not None:
                self.webhooks.close()
        finally:
            if self.ingest_pool is not None:  # after the jobs: what they had in flight is abandoned now
                self.ingest_pool.close()
                self.ingest_pool = None
            self.idempotency.close()
            with self._lock:
                if self.cover_service is not None:
                    self.cover_service.close()
                    self.cover_service = None
                if self.reader is not None:
                    self.reader.close()
                    self.reader = None
                self._searcher = None
                if self.router is not None:
                    self.router.close()
                    self.router = None
            if self._ray_connected:
                import ray

                ray.shutdown()
                self._ray_connected = False
            self.learning.close()
            self.writer.close()
            self.keys.close()

    # -- access ----------------------------------------------------------------------------
    @property
    def local_mode(self) -> bool:
        """No keys and a loopback bind: requests without a key act as tenant "default".
        Creating the first key while the server runs ends local mode at once (a key
        means "require keys"); the server logs the switch, and ``python -m api.keys
        create`` says so when it sees a running server."""
        now = self.loopback and self.keys.active_count() == 0
        was, self._was_local = self._was_local, now
        if was is not None and was != now:
            log.warning("local single-user mode %s: %s", "ON" if now else "OFF",
                        "no active API keys remain; requests without a key act as tenant 'default'" if now else
                        "an API key now exists, so every /v1 request needs a key (Authorization: Bearer)")
        return now

    def is_owner(self, token: str) -> bool:
        """Whether ``token`` is this server's owner token (``api.discovery``)."""
        import hmac

        return hmac.compare_digest(token.encode(), self.owner_token.encode())

    def rate(self) -> float:
        """Requests a second each caller may make now (<= 0: no limit); it follows the
        mode, which changes when the first key is created while the server runs."""
        return self.settings.rate_for(self.local_mode)

    @property
    def index_open(self) -> bool:
        """An index handle serves reads: the writer (``search_on_writer``) or the reader."""
        return (self.settings.search_on_writer and self.writer.is_open) or self.reader is not None

    @property
    def models_loaded(self) -> bool:
        return self._searcher is not None or self.router is not None

    def index(self):
        """The handle reads and searches use (an ``engine.index.VideoIndex``): the
        writer when ``search_on_writer`` and it is open (always current: every commit
        syncs it), else the read-only handle, opened on the first call."""
        w = self.writer.index
        if self.settings.search_on_writer and w is not None:
            return w
        with self._lock:
            if self._closed:
                raise ApiError("shutting_down", "the service is stopping; retry shortly")
            if self.reader is None:
                from engine.index import VideoIndex

                self.reader = VideoIndex.open(self.index_dir)
            return self.reader

    def searcher(self):
        """What searches go to: the Ray replicas' router (``vidseek serve --ray``: each
        replica syncs with the op log before a search), else ``local_searcher()``."""
        if self.router is not None:
            return self.router
        return self.local_searcher()

    def local_searcher(self):
        """The query planner (``query.planner.Searcher``) over ``index()``, after
        ``sync()`` on that handle: the state refreshes the index it searches, so a
        search sees every video committed before it (by this process or another)."""
        from query.planner import Searcher

        index = self.index()
        with self._lock:
            if self._searcher is None or self._searcher.index is not index:
                self._searcher = Searcher(index, ranking=self.learning.ranking)
            searcher = self._searcher
        index.sync()
        return searcher

    def image_encoder(self):
        """The index's image encoder (covers live in its space)."""
        from engine.models.registry import get_image_encoder

        cfg = self.index().config
        return get_image_encoder(cfg.image_encoder, **cfg.image_options)

    def covers(self):
        """The cover service (``indexer.covers.service.CoverService``), made on first use
        over a writable catalog connection of its own."""
        with self._lock:
            if self._closed:
                raise ApiError("shutting_down", "the service is stopping; retry shortly")
            if self.cover_service is None:
                from indexer.covers.service import CoverService

                self.cover_service = CoverService(
                    self.index_dir, vector_source=lambda ids, mods: self.index().modality_vectors(ids, mods))
            return self.cover_service
