"""Ingest jobs for the service: a persisted job table, one worker thread, one shared writer.

The service process holds the index's single writer handle (``SharedWriter``) for
its lifetime, shared by ingest jobs and deletes under one lock: a job analyses a video
outside the lock, so searches keep running meanwhile, and the writer lock is never
fought over inside the process. A job goes through the same steps as ``vidseek
index`` (``indexer.ingest.decide``, ``indexer.mapper.analyse_file``,
``indexer.ingest.commit``): the whole video in one catalog transaction, so a search
sees the old or the new state, never half a video.

Jobs are rows in ``DIR/service.sqlite`` (status, stage, progress, error). On
shutdown the worker finishes its job within a grace period; past it the job is
stopped at its next progress point and marked ``abandoned`` before anything is
committed. On start, ``queued``, ``running`` (a crash) and ``abandoned`` jobs are
queued again.

On a Ray cluster (``vidseek serve --ray``: ``JobQueue.cluster`` is an
``indexer.distributed.AnalysisPool``), ingest jobs run in a lane of their own, one
thread per CPU slot of the cluster: each thread hashes and decides its file here,
sends the analysis to the pool (the same actors as ``vidseek index --ray``; a call
whose worker dies is sent again, ``worker_crash`` once the retries run out), shows
the worker's stage and progress on the job row, and commits here under the writer
lock, deciding again first, since another job may have committed the same file
meanwhile. Other job kinds stay on the one local worker thread.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from api.errors import redact_paths
from engine.errors import IndexLockedError, NotFoundError, UnknownNameError, VidseekError
from engine.index import VideoIndex

__all__ = ["JOB_STATES", "Job", "JobRequest", "SharedWriter", "JobQueue", "ingest_file", "open_or_create_writer",
           "JobRunner", "AnalyseFn", "AnalysisFailed"]

log = logging.getLogger("vidseek.api.jobs")

JOB_STATES = ("queued", "running", "done", "failed", "abandoned")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    path TEXT NOT NULL,
    title TEXT,
    speech INTEGER NOT NULL,
    ocr INTEGER NOT NULL,
    visual INTEGER NOT NULL,
    owns_file INTEGER NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    result TEXT,
    video_id TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""
# Columns added after the first release: ALTERed into an existing service.sqlite.
# ``kind``: ingest or another kind the queue was given (see JobQueue); ``params``: JSON.
# ``metadata``: JSON of the video's metadata (indexer.metadata.VideoMetadata.as_dict()).
# ``worker``: where the analysis runs ("<Ray node id prefix>/<pid>"; NULL in this process);
# ``attempt``: the analysis attempt (above 1 after a Ray worker died and it was sent again).
_ADDED_COLUMNS = (("kind", "TEXT NOT NULL DEFAULT 'ingest'"), ("params", "TEXT"), ("metadata", "TEXT"),
                  ("worker", "TEXT"), ("attempt", "INTEGER NOT NULL DEFAULT 0"))


@dataclass(frozen=True)
class JobRequest:
    """What to ingest: a file the service may read, for one tenant. ``owns_file``: the
    file is an upload the service saved, removed again if the job fails."""

    tenant: str
    path: str
    title: str | None = None
    speech: bool = True
    ocr: bool = True
    visual: bool = True
    owns_file: bool = False
    kind: str = "ingest"
    params: str | None = None  # JSON for job kinds other than ingest
    metadata: str | None = None  # JSON: title, description, tags, people, extra (None: the title only)


@dataclass(frozen=True)
class Job:
    """A job's row. ``result``: indexed | replaced | unchanged | duplicate (when done)."""

    job_id: str
    tenant: str
    status: str
    stage: str | None
    progress: float
    result: str | None
    video_id: str | None
    error_code: str | None
    error_message: str | None
    created_at: float
    updated_at: float
    source_name: str
    kind: str = "ingest"
    worker: str | None = None  # "<Ray node id prefix>/<pid>" of the analysis (None: this process)
    attempt: int = 0  # 1 once it runs; more after a Ray worker died mid-analysis and it was sent again

    def as_dict(self) -> dict:
        d = asdict(self)
        d["error"] = {"code": self.error_code, "message": self.error_message} if self.error_code else None
        del d["error_code"], d["error_message"]
        return d


class _Abandoned(Exception):
    """Raised inside a job's progress callback when the service stops past its grace."""


class AnalysisFailed(VidseekError):
    """An analysis that failed on the Ray cluster, with the code and message its worker
    gave (``bad_media``, ..., or ``worker_crash`` when every attempt's worker died)."""

    def __init__(self, code: str | None, message: str | None) -> None:
        super().__init__(message or "the analysis failed")
        self.code = code or "internal_error"


def open_or_create_writer(index_dir: str | Path) -> VideoIndex:
    """The writer handle, creating the index with default settings when it does not exist
    (as ``vidseek index`` would). Raises IndexLockedError if another process writes."""
    from indexer.ingest import open_writer

    return open_writer(index_dir)


class SharedWriter:
    """The one writer handle of the service process, opened lazily and shared by jobs and
    deletes under ``lock``. While another process holds the index's writer lock, calls
    raise IndexLockedError (HTTP 409) and the next call tries again."""

    def __init__(self, index_dir: str | Path) -> None:
        self.index_dir = Path(index_dir)
        self.lock = threading.RLock()
        self._index: VideoIndex | None = None

    @property
    def index(self) -> VideoIndex | None:
        """The open writer handle (None while another process holds the lock)."""
        return self._index

    @property
    def is_open(self) -> bool:
        return self._index is not None

    def try_open(self) -> bool:
        with self.lock:
            try:
                self._get()
                return True
            except IndexLockedError as e:
                log.warning("index writer unavailable: %s; ingest and delete answer 409 until it is free", e)
                return False

    def _get(self) -> VideoIndex:
        if self._index is None:
            self._index = open_or_create_writer(self.index_dir)
        return self._index

    @contextmanager
    def locked(self) -> Iterator[VideoIndex]:
        """The writer, held exclusively for the block."""
        with self.lock:
            yield self._get()

    def close(self) -> None:
        with self.lock:
            if self._index is not None:
                self._index.close()
                self._index = None


ProgressFn = Callable[[str, float], None]
# (path, content hash, config, options, metadata) -> indexer.mapper.Analysis, a failure as a value
AnalyseFn = Callable[..., Any]


def ingest_file(writer: SharedWriter, req: JobRequest, progress: ProgressFn,
                should_commit: Callable[[], bool] = lambda: True, analyse: AnalyseFn | None = None
                ) -> tuple[str, str]:
    """Analyse one file outside the writer lock and commit it whole under it, through the
    same ``decide`` and ``commit`` as ``vidseek index``. ``analyse``: where the analysis
    runs (None: here, ``analyse_file``; the Ray lane: the cluster's pool, after which
    the file is decided again under the lock, as jobs then run side by side).

    Returns (result, video_id): ``unchanged`` (same source and bytes already indexed),
    ``duplicate`` (the same bytes under another source), ``replaced`` or ``indexed``.
    A failed commit raises (after putting it on the catalog's failure list); a failed
    optional step after it (the knowledge graph) is logged and the job still succeeds.
    """
    from indexer.ingest import commit, decide, file_hash
    from indexer.mapper import analyse_file
    from indexer.metadata import VideoMetadata
    from indexer.options import IndexOptions

    progress("hash", 0.0)
    h = file_hash(req.path)
    # Metadata the request gave replaces what is stored (an unchanged file whose stored
    # metadata differs is re-analysed with it); a request without any keeps the stored
    # metadata, and a new video gets the title alone (an upload's file name).
    given = VideoMetadata.from_dict(json.loads(req.metadata), where="the job's metadata") if req.metadata else None
    meta = given or (VideoMetadata(title=req.title) if req.title else None)
    with writer.locked() as idx:
        decision = decide(idx.catalog, req.path, h, tenant=req.tenant, meta=given)
        config = idx.config
    if not decision.needs_analysis:
        return decision.action, decision.video_id
    options = IndexOptions(tenant=req.tenant, speech=req.speech, ocr=req.ocr, visual=req.visual)
    if analyse is None:
        analysis = analyse_file(req.path, h, config, options, meta, progress, catch=False)
    else:
        analysis = analyse(req.path, h, config, options, meta)
        if not analysis.ok:
            raise AnalysisFailed(analysis.code, analysis.reason)
    with writer.locked() as idx:
        if not should_commit():
            raise _Abandoned()
        if analyse is not None:  # another job may have committed this file, or these bytes, since
            decision = decide(idx.catalog, req.path, h, tenant=req.tenant, meta=given)
            if not decision.needs_analysis:
                return decision.action, decision.video_id
        res = commit(idx, decision, analysis, options, reraise=True)
    return res.status, res.video_id


# A job kind other than ingest: run(writer, job_id, request, progress, should_commit)
# -> (result, video_id or None). It raises VidseekError for a failure the user can act on.
JobRunner = Callable[[SharedWriter, str, JobRequest, ProgressFn, Callable[[], bool]], tuple[str, str | None]]


class JobQueue:
    """Persisted jobs run one at a time by a background thread: ``ingest`` (built in) and
    the kinds of ``kinds`` (kind -> runner; the mapping is read at each job, so its
    owner, the service state, may add kinds after the queue is made).

    ``cluster`` (set before ``start``; None: every job in this process, one at a time):
    an ``indexer.distributed.AnalysisPool``; ingest jobs then run on threads of their
    own, as many at once as the pool has slots (more threads start when nodes join),
    each analysing on the cluster and committing here."""

    def __init__(self, db_path: str | Path, writer: SharedWriter,
                 kinds: Mapping[str, JobRunner] | None = None,
                 on_finish: Callable[[Job], None] | None = None) -> None:
        self.db_path = Path(db_path)
        self.writer = writer
        # called with each job that ends done or failed (the service's webhooks)
        self.on_finish = on_finish
        self.kinds: Mapping[str, JobRunner] = kinds if kinds is not None else {}
        self._conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.row_factory = sqlite3.Row
        self._db_lock = threading.Lock()
        with self._db_lock:
            self._conn.executescript(_SCHEMA)
            have = {r[1] for r in self._conn.execute("PRAGMA table_info(jobs)")}
            for name, decl in _ADDED_COLUMNS:
                if name not in have:
                    self._conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self.cluster: Any = None  # indexer.distributed.AnalysisPool: ingest jobs analysed on Ray
        self._cluster_queue: queue.Queue[str | None] = queue.Queue()
        self._cluster_threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._running: set[str] = set()  # the jobs a thread runs now

    # -- rows ------------------------------------------------------------------------
    def _row(self, job_id: str) -> sqlite3.Row | None:
        with self._db_lock:
            return self._conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()

    def _update(self, job_id: str, **cols) -> None:
        cols["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in cols)
        with self._db_lock:
            self._conn.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*cols.values(), job_id))

    @staticmethod
    def _job(r: sqlite3.Row) -> Job:
        return Job(r["job_id"], r["tenant"], r["status"], r["stage"], float(r["progress"]), r["result"],
                   r["video_id"], r["error_code"], r["error_message"], r["created_at"], r["updated_at"],
                   r["title"] or os.path.basename(r["path"]), r["kind"], r["worker"], int(r["attempt"] or 0))

    def get(self, job_id: str, *, tenant: str) -> Job:
        """A tenant's job; another tenant's id is simply not found."""
        r = self._row(job_id)
        if r is None or r["tenant"] != tenant:
            raise NotFoundError(f"no job with id {job_id!r}", hint="use the job_id that POST /v1/ingest returned")
        return self._job(r)

    def list(self, *, tenant: str, status: str | None = None, kind: str | None = None, limit: int = 100,
             offset: int = 0) -> tuple[list[Job], int]:
        """A tenant's jobs, newest first, and how many there are in all (with the filters)."""
        where, args = "tenant = ?", [tenant]
        if status is not None:
            if status not in JOB_STATES:
                raise UnknownNameError("job status", status, list(JOB_STATES))
            where, args = where + " AND status = ?", args + [status]
        if kind is not None:
            where, args = where + " AND kind = ?", args + [kind]
        with self._db_lock:
            total = int(self._conn.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", args).fetchone()[0])
            rows = self._conn.execute(f"SELECT * FROM jobs WHERE {where} ORDER BY created_at DESC, job_id"
                                      " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return [self._job(r) for r in rows], total

    def queue_length(self) -> int:
        with self._db_lock:
            return int(self._conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0])

    def counts(self) -> dict[str, int]:
        with self._db_lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in JOB_STATES} | {r[0]: int(r[1]) for r in rows}

    # -- lifecycle ---------------------------------------------------------------------
    def submit(self, req: JobRequest) -> Job:
        if self._stop.is_set():
            raise VidseekError("the service is shutting down and takes no new jobs", hint="retry after restart")
        if req.kind != "ingest" and req.kind not in self.kinds:
            raise UnknownNameError("job kind", req.kind, ["ingest", *self.kinds])
        job_id = "j" + secrets.token_hex(8)
        now = time.time()
        with self._db_lock:
            self._conn.execute(
                "INSERT INTO jobs (job_id, tenant, path, title, speech, ocr, visual, owns_file, status, progress,"
                " created_at, updated_at, kind, params, metadata) VALUES (?,?,?,?,?,?,?,?,'queued',0,?,?,?,?,?)",
                (job_id, req.tenant, req.path, req.title, int(req.speech), int(req.ocr), int(req.visual),
                 int(req.owns_file), now, now, req.kind, req.params, req.metadata),
            )
        self._lane(req.kind).put(job_id)
        return self.get(job_id, tenant=req.tenant)

    def _lane(self, kind: str) -> queue.Queue[str | None]:
        """The queue a job of ``kind`` waits in: ingest goes to the cluster's lane when there is one."""
        return self._cluster_queue if self.cluster is not None and kind == "ingest" else self._queue

    def start(self) -> int:
        """Requeue unfinished jobs of an earlier run and start the worker; returns how many."""
        with self._db_lock:
            rows = self._conn.execute(
                "SELECT job_id, kind FROM jobs WHERE status IN ('queued', 'running', 'abandoned') ORDER BY created_at"
            ).fetchall()
            self._conn.execute("UPDATE jobs SET status = 'queued', stage = NULL, progress = 0, worker = NULL,"
                               " attempt = 0 WHERE status IN ('running', 'abandoned')")
        for job_id, kind in rows:
            self._lane(kind).put(job_id)
        self._thread = threading.Thread(target=self._loop, args=(self._queue,), name="vidseek-ingest", daemon=True)
        self._thread.start()
        self._grow()
        return len(rows)

    def _grow(self) -> None:
        """One thread of the cluster's lane per slot of the pool: at start, and after each
        job of the lane (so nodes that joined add threads as jobs finish)."""
        if self.cluster is None or self._thread is None or self._stop.is_set():
            return
        try:
            want = max(1, self.cluster.slots())
        except Exception:  # the cluster does not answer now: the threads there keep working
            want = 1
        with self._threads_lock:
            while len(self._cluster_threads) < want:
                t = threading.Thread(target=self._loop, args=(self._cluster_queue,), daemon=True,
                                     name=f"vidseek-ingest-ray-{len(self._cluster_threads)}")
                self._cluster_threads.append(t)
                t.start()

    def shutdown(self, grace_s: float = 30.0) -> None:
        """Finish the running jobs within ``grace_s``, else abandon them (nothing committed)."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is None:
            return
        with self._threads_lock:
            threads = [self._thread, *self._cluster_threads]
            for _ in self._cluster_threads:
                self._cluster_queue.put(None)
        deadline = time.monotonic() + grace_s
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            self._abort.set()
            for t in threads:
                t.join(5.0)
        for current in list(self._running):  # still in a stage without progress points: leave it for a restart
            self._update(current, status="abandoned", stage=None)
            log.warning("ingest job %s abandoned at shutdown; it is requeued on the next start", current)
        with self._db_lock:
            self._conn.close()

    def _loop(self, lane: queue.Queue[str | None]) -> None:
        while not self._stop.is_set():
            job_id = lane.get()
            if job_id is None or self._stop.is_set():
                break
            self._run(job_id)
            if lane is self._cluster_queue:
                self._grow()

    def _run(self, job_id: str) -> None:
        r = self._row(job_id)
        if r is None or r["status"] != "queued":
            return
        req = JobRequest(r["tenant"], r["path"], r["title"], bool(r["speech"]), bool(r["ocr"]), bool(r["visual"]),
                         bool(r["owns_file"]), r["kind"], r["params"], r["metadata"])
        self._running.add(job_id)
        self._update(job_id, status="running", stage="start", progress=0.0, attempt=1)
        last = [0.0]

        def progress(stage: str, frac: float) -> None:
            if self._abort.is_set():
                raise _Abandoned()
            now = time.monotonic()
            if now - last[0] > 0.2 or frac >= 1.0:  # throttle row updates
                last[0] = now
                self._update(job_id, stage=stage, progress=round(float(frac), 3))

        t0 = time.perf_counter()
        try:
            if req.kind == "ingest":
                on_cluster = self._on_cluster(job_id) if self.cluster is not None else None
                result, video_id = ingest_file(self.writer, req, progress, lambda: not self._abort.is_set(),
                                               on_cluster)
            elif req.kind in self.kinds:
                result, video_id = self.kinds[req.kind](self.writer, job_id, req, progress,
                                                        lambda: not self._abort.is_set())
            else:  # a kind queued by a build that had it registered
                raise UnknownNameError("job kind", req.kind, ["ingest", *self.kinds])
        except _Abandoned:
            self._update(job_id, status="abandoned", stage=None)
            log.warning("ingest job %s abandoned at shutdown", job_id)
        except VidseekError as e:
            self._fail(job_id, req, e.code, str(e))
        except Exception as e:  # a decoder or model failure fails this job, never the worker
            log.exception("ingest job %s failed unexpectedly", job_id)
            self._fail(job_id, req, "internal_error", f"{type(e).__name__}: {e}")
        else:
            self._update(job_id, status="done", stage="done", progress=1.0, result=result, video_id=video_id)
            if result == "duplicate" and req.owns_file:  # the same bytes are indexed from another file
                Path(req.path).unlink(missing_ok=True)
            log.info("ingest job %s %s %s in %.1f s", job_id, result, video_id, time.perf_counter() - t0)
        finally:
            self._running.discard(job_id)
        self._finished(job_id)

    def _on_cluster(self, job_id: str) -> AnalyseFn:
        """The analysis step of an ingest job on the cluster: the video goes to the pool,
        the worker's stage events and retries go to the job's row, and the job thread
        waits (and gives up at an abort past the shutdown grace: abandoned, requeued at
        the next start)."""
        last = [0.0]

        def on_stage(stage: str, frac: float, worker: int, label: str) -> None:  # on the pool's thread
            now = time.monotonic()
            if job_id in self._running and (now - last[0] > 0.2 or frac >= 1.0):  # throttle row updates
                last[0] = now
                try:
                    self._update(job_id, stage=stage, progress=round(float(frac), 3), worker=label)
                except sqlite3.ProgrammingError:  # the queue closed meanwhile (shutdown)
                    pass

        def on_retry(attempt: int, why: str) -> None:
            log.warning("ingest job %s: its Ray worker died (%s); analysis attempt %d", job_id, why, attempt)
            self._update(job_id, stage="retrying", progress=0.0, attempt=attempt)

        def analyse(path: str, content_hash: str, config, options, meta):
            self._update(job_id, stage="dispatched", progress=0.0)  # waiting for a free worker
            call = self.cluster.submit(path, content_hash, config, options, meta, on_stage=on_stage,
                                       on_retry=on_retry)
            analysis = call.wait(self._abort.is_set)
            if analysis is None or analysis.code == "cancelled":  # stopping: nothing is committed
                self.cluster.cancel(call)
                raise _Abandoned()
            return analysis

        return analyse

    def _finished(self, job_id: str) -> None:
        if self.on_finish is None:
            return
        r = self._row(job_id)
        if r is not None and r["status"] in ("done", "failed"):
            try:
                self.on_finish(self._job(r))
            except Exception:  # a notification never fails the worker
                log.exception("job %s: the completion hook failed", job_id)

    def _fail(self, job_id: str, req: JobRequest, code: str, message: str) -> None:
        # The job row is what clients read: no paths inside the index folder (the upload's
        # stored copy, temporary files). The catalog's failure list keeps the full message.
        public = redact_paths(message, [self.db_path.parent])
        self._update(job_id, status="failed", error_code=code, error_message=public)
        if req.kind != "ingest":  # the catalog's failures list files that failed to index
            return
        try:
            with self.writer.locked() as idx:
                idx.catalog.record_failure(req.path, code, message, tenant=req.tenant)
        except VidseekError as e:
            log.warning("could not record the failure of job %s in the catalog: %s", job_id, e)
        if req.owns_file:
            Path(req.path).unlink(missing_ok=True)
