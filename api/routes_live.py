"""HTTP routes of live ingest (``indexer.live``) and live highlight reels, and the page
that follows them (``GET /live``).

```
POST   /v1/live                 {"source": "/streams/match.m3u8", "highlight": {"duration": 30}}  -> 202
GET    /v1/live                 the tenant's live jobs
GET    /v1/live/{live_id}       one job: status, windows, committed seconds, recent events, its reel
DELETE /v1/live/{live_id}       stop it (resumable: POST the same source again)
GET    /v1/live/{live_id}/reel  the reel so far (MP4, HTTP Range); /edl its edit decision list
```

A live job runs in a thread of its own (a stream lasts as long as it lasts; it must
not hold up the ingest queue) and commits each window through the service's shared
writer, under its lock, like an ingest job. Its SOURCE is a path inside the tenant's
allowed roots, as for path ingest. With ``highlight`` a second thread keeps the reel
(``api.live_highlights``) in ``DIR/highlights/<tenant>/live-<live_id>.mp4``.

Jobs are kept in the service database (``live_jobs``: the request, status, video,
windows): a service that stops or dies while a stream runs resumes it at its next start,
under the same ``live_id``, from its last committed window (``resumed`` in its events).
A job stopped with DELETE, finalised or failed stays as it is. ``Idempotency-Key`` on
POST returns the first job for a retried request.
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import allowed_real_path, require, service
from api.errors import ApiError
from api.ranged import RangeFileResponse
from engine.errors import IndexLockedError, NotFoundError

__all__ = ["install", "LiveBody", "LiveJobs"]

STATIC = Path(__file__).parent / "static"


class LiveHighlightBody(BaseModel):
    duration: float = Field(30.0, gt=0, le=600, description="target reel length in seconds")
    every: float = Field(10.0, ge=1, le=3600, description="rebuild the reel at most this often (seconds)")
    order: Literal["story", "score"] = "story"


class LiveBody(BaseModel):
    """POST /v1/live: a stream to index as it is written."""

    source: str = Field(..., max_length=4096, examples=["/streams/match/live.m3u8"],
                        description="growing .ts/.mp4 file, local .m3u8 playlist or folder of chunks (absolute)")
    min_window: float = Field(4.0, gt=0, le=600)
    segment_max: float = Field(10.0, gt=0, le=600, description="longest segment while live (seconds): shorter is"
                               " fresher but loses more words at window seams (docs/live.md)")
    end_after: float = Field(60.0, ge=0, le=86400, description="quiet seconds that end the stream (0: never)")
    stall_after: float = Field(10.0, gt=0, le=86400)
    finalise: Literal["reanalyse", "keep"] = "reanalyse"
    speech: bool = True
    ocr: bool = True
    highlight: LiveHighlightBody | None = None


class _ServiceWriter:
    """The service's shared writer for a live thread: refuses once the service has
    closed it (a stopped service must not be reopened by a thread it left behind)."""

    def __init__(self, writer) -> None:
        self.writer = writer

    def locked(self):
        if not self.writer.is_open:
            raise IndexLockedError("the service's index writer is closed (stopping, or another process writes)")
        return self.writer.locked()


@dataclass
class LiveJob:
    live_id: str
    tenant: str
    source: str
    video_id: str | None = None
    status: str = "starting"  # starting | running | finalised | stopped | failed
    windows: int = 0
    committed: float = 0.0
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    events: deque = field(default_factory=lambda: deque(maxlen=50))
    stop: threading.Event = field(default_factory=threading.Event)
    reel: dict | None = None
    body: dict = field(default_factory=dict)  # the POST body, to resume the job after a restart
    thread: threading.Thread | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {"live_id": self.live_id, "source": self.source, "video_id": self.video_id, "status": self.status,
                "windows": self.windows, "committed_seconds": round(self.committed, 3), "error": self.error,
                "created_at": self.created_at, "events": list(self.events), "reel": self.reel,
                "reel_url": f"/v1/live/{self.live_id}/reel" if self.reel else None,
                "edl_url": f"/v1/live/{self.live_id}/edl" if self.reel else None}


_LIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_jobs (
    live_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    video_id TEXT,
    windows INTEGER NOT NULL DEFAULT 0,
    committed REAL NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL
);
"""
_ACTIVE = ("starting", "running")


class LiveJobs:
    """The live jobs of one service: in memory while they run, and in the service
    database (``attach``) so that a restart resumes the ones that were running."""

    def __init__(self) -> None:
        self.jobs: dict[str, LiveJob] = {}
        self.lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._closing = False

    # -- persistence ------------------------------------------------------------------
    def attach(self, db_path: str | Path) -> list[LiveJob]:
        """Load the jobs of ``db_path`` (the service database); returns the ones that
        were running when the service stopped, for ``resume``."""
        self._db = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_LIVE_SCHEMA)
        self._closing = False
        pending = []
        with self.lock:
            for r in self._db.execute("SELECT live_id, tenant, source, body, status, video_id, windows, committed,"
                                      " error, created_at FROM live_jobs ORDER BY created_at"):
                job = LiveJob(r[0], r[1], r[2], video_id=r[5], status=r[4], windows=int(r[6]), committed=float(r[7]),
                              error=r[8], created_at=float(r[9]), body=json.loads(r[3]))
                self.jobs[job.live_id] = job
                if job.status in _ACTIVE:
                    pending.append(job)
        return pending

    def _save(self, job: LiveJob) -> None:
        with self.lock:  # also orders it against close(): never a write on a closed connection
            if self._db is None or self._closing:
                return  # a job stopped by the service's shutdown stays 'running' in the database: it resumes
            self._db.execute(
                "INSERT INTO live_jobs VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(live_id) DO UPDATE SET"
                " status = excluded.status, video_id = excluded.video_id, windows = excluded.windows,"
                " committed = excluded.committed, error = excluded.error",
                (job.live_id, job.tenant, job.source, json.dumps(job.body), job.status, job.video_id, job.windows,
                 job.committed, job.error, job.created_at))

    def resume(self, svc, jobs: list[LiveJob]) -> int:
        """Start again the jobs that ``attach`` found running; each continues from its
        last committed window. A job whose source is no longer allowed or present fails
        with the reason."""
        n = 0
        for job in jobs:
            job.events.append({"kind": "resumed", "t": time.time(), "message": "the service restarted"})
            try:
                body = LiveBody.model_validate(job.body)
                _source(svc, job.tenant, body.source)
                self._launch(svc, job, body)
                n += 1
            except Exception as e:
                job.status, job.error = "failed", f"not resumed after a restart: {e}"
                self._save(job)
        return n

    def close(self, wait: float = 10.0) -> None:
        """Stop the running jobs for a service shutdown (they stay 'running' in the
        database and resume at the next start) and close the database."""
        with self.lock:
            self._closing = True
        running = [j for j in self.jobs.values() if j.status in _ACTIVE]
        for j in running:
            j.stop.set()
        deadline = time.monotonic() + wait
        for j in running:
            t = j.thread
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- jobs ---------------------------------------------------------------------------
    def get(self, live_id: str, tenant: str) -> LiveJob:
        job = self.jobs.get(live_id)
        if job is None or job.tenant != tenant:
            raise NotFoundError(f"no live job {live_id}", hint="GET /v1/live lists them")
        return job

    def start(self, svc, tenant: str, body: LiveBody, source: str) -> LiveJob:
        with self.lock:
            for j in self.jobs.values():
                if j.source == source and j.status in _ACTIVE:
                    raise ApiError("live_running", f"{body.source} is already being indexed live ({j.live_id})",
                                   status=409)
            job = LiveJob("l" + secrets.token_hex(8), tenant, source, body=body.model_dump())
            self.jobs[job.live_id] = job
        self._save(job)
        self._launch(svc, job, body)
        return job

    def _launch(self, svc, job: LiveJob, body: LiveBody) -> None:
        from indexer.live import LiveOptions, LiveRun
        from indexer.options import IndexOptions

        live = LiveOptions(min_window=body.min_window, end_after=body.end_after, stall_after=body.stall_after,
                           finalise=body.finalise, segment_max=body.segment_max)
        options = IndexOptions(tenant=job.tenant, speech=body.speech, ocr=body.ocr)

        def on_event(ev) -> None:
            job.events.append(ev.as_dict())
            if ev.kind == "window":
                job.windows, job.committed = ev.data["window"], ev.data["end"]
                self._save(job)

        writer = _ServiceWriter(svc.writer)
        with svc.writer.locked() as index:
            config = index.config
        job.stop = threading.Event()
        run = LiveRun(job.source, writer, svc.index_dir, config, options, live, on_event=on_event, stop=job.stop)
        job.video_id = run.spool.meta.get("video_id") or job.video_id
        job.status = "starting"
        self._save(job)

        def main() -> None:
            job.status = "running"
            self._save(job)
            try:
                rep = run.run()
                job.status, job.video_id = rep.status, rep.video_id
            except Exception as e:  # the job's row says why; the windows before stay committed
                job.status, job.error = "failed", f"{type(e).__name__}: {e}"
            self._save(job)

        job.thread = threading.Thread(target=main, name=f"live-{job.live_id}", daemon=True)
        job.thread.start()
        if body.highlight is not None:
            self._follow(svc, job, run, body.highlight)

    def _follow(self, svc, job: LiveJob, run, h: LiveHighlightBody) -> None:
        from api.live_highlights import follow_live_reel

        folder = Path(svc.index_dir) / "highlights" / job.tenant
        folder.mkdir(parents=True, exist_ok=True)
        reel, edl = folder / f"live-{job.live_id}.mp4", folder / f"live-{job.live_id}.json"
        job.reel = {"state": "waiting", "updates": 0}

        def on_update(st) -> None:
            job.reel = {k: v for k, v in st.as_dict().items() if k not in ("reel", "edl")}

        def main() -> None:
            while run.report.video_id is None and not job.stop.is_set():
                time.sleep(0.5)
            try:
                follow_live_reel(svc.index_dir, run.report.video_id or job.video_id, reel, edl=edl,
                                 duration=h.duration, order=h.order, tenant=job.tenant, every=h.every,
                                 stop=job.stop, on_update=on_update, limits=svc.clip_limits,
                                 wait_for_video=max(120.0, 10 * h.every))
            except Exception as e:
                job.reel = {**(job.reel or {}), "state": "failed", "error": f"{type(e).__name__}: {e}"}

        threading.Thread(target=main, name=f"live-reel-{job.live_id}", daemon=True).start()

    def reel_paths(self, svc, job: LiveJob) -> tuple[Path, Path]:
        folder = Path(svc.index_dir) / "highlights" / job.tenant
        return folder / f"live-{job.live_id}.mp4", folder / f"live-{job.live_id}.json"


def _jobs(request: Request) -> LiveJobs:
    return request.app.state.live_jobs


def _source(svc, tenant: str, path: str) -> str:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON: no file has that name
        raise ApiError("bad_input", "source is not valid UTF-8 text") from None
    real = allowed_real_path(svc, tenant, path, name="source",
                             off=f"live ingest reads a path on the server, which is off for tenant {tenant!r}"
                                 f" (start the server with --allow-root {tenant}=DIR)")
    if not os.path.exists(real) and not os.path.isdir(os.path.dirname(real)):
        raise NotFoundError("neither the source nor its folder exists", hint="start the writer first")
    return real


router = APIRouter(prefix="/v1")


@router.post("/live", status_code=202, summary="Index a growing file, HLS playlist or chunk folder as it is written",
             description="Send `Idempotency-Key` to make a retried request return the first job.",
             openapi_extra={"parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                            "schema": {"type": "string", "maxLength": 255}}]})
def post_live(request: Request, body: LiveBody, p: Principal = Depends(require("ingest"))) -> Any:
    svc = service(request)
    idem = request.headers.get("idempotency-key")
    if idem is not None:
        svc.idempotency.check_key(idem)
    if not svc.writer.is_open and not svc.writer.try_open():
        raise IndexLockedError("another process holds the index's writer lock", hint="stop it, then retry")
    source = _source(svc, p.tenant, body.source)
    jobs = _jobs(request)
    headers: dict[str, str] = {}
    if idem is None:
        job = jobs.start(svc, p.tenant, body, source)
    else:
        fp = svc.idempotency.fingerprint("live", body.model_dump())
        live_id, replayed = svc.idempotency.once(p.tenant, idem, fp,
                                                 lambda: jobs.start(svc, p.tenant, body, source).live_id)
        job = jobs.get(live_id, p.tenant)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"live_id": job.live_id, "video_id": job.video_id, "status": job.status},
                        status_code=202, headers={"Location": f"/v1/live/{job.live_id}", **headers})


@router.get("/live", summary="The tenant's live jobs")
def list_live(request: Request, p: Principal = Depends(require("ingest"))) -> Any:
    jobs = [j.as_dict() for j in _jobs(request).jobs.values() if j.tenant == p.tenant]
    return {"jobs": sorted(jobs, key=lambda j: -j["created_at"])}


@router.get("/live/{live_id}", summary="One live job")
def get_live(request: Request, live_id: str, p: Principal = Depends(require("ingest"))) -> Any:
    return _jobs(request).get(live_id, p.tenant).as_dict()


@router.delete("/live/{live_id}", summary="Stop a live job (resumable: POST the source again)")
def stop_live(request: Request, live_id: str, p: Principal = Depends(require("ingest"))) -> Any:
    job = _jobs(request).get(live_id, p.tenant)
    job.stop.set()
    return {"live_id": live_id, "status": "stopping" if job.status in ("starting", "running") else job.status}


def _reel(request: Request, live_id: str, p: Principal) -> tuple[Path, Path]:
    jobs = _jobs(request)
    job = jobs.get(live_id, p.tenant)
    reel, edl = jobs.reel_paths(service(request), job)
    if job.reel is None:
        raise NotFoundError(f"live job {live_id} keeps no reel", hint='POST /v1/live with "highlight": {...}')
    if not reel.is_file() or not edl.is_file():
        raise ApiError("job_not_done", f"the reel of live job {live_id} is not made yet; retry shortly", status=409)
    return reel, edl


@router.get("/live/{live_id}/reel", summary="The live reel so far (MP4, with HTTP Range)",
            responses={200: {"content": {"video/mp4": {}}}}, response_class=FileResponse)
def live_reel(request: Request, live_id: str, p: Principal = Depends(require("ingest"))) -> Any:
    reel, _ = _reel(request, live_id, p)
    return RangeFileResponse(reel, media_type="video/mp4", headers={"Cache-Control": "no-store"})


@router.get("/live/{live_id}/edl", summary="The live reel's edit decision list (JSON)")
def live_edl(request: Request, live_id: str, p: Principal = Depends(require("ingest"))) -> Any:
    _, edl = _reel(request, live_id, p)
    return JSONResponse(json.loads(edl.read_text(encoding="utf-8")), headers={"Cache-Control": "no-store"})


page = APIRouter()


@page.get("/live", include_in_schema=False)
def live_page() -> FileResponse:
    return FileResponse(STATIC / "live.html", media_type="text/html")


def install(app: FastAPI) -> None:
    """Add the live routes and page to ``app``, with its registry of live jobs."""
    app.state.live_jobs = LiveJobs()
    app.include_router(router)
    app.include_router(page)


def on_start(app: FastAPI, svc) -> int:
    """At service start: load the live jobs of the service database and resume the ones
    that were running when it stopped. Returns how many were resumed."""
    from api.auth import service_db_path

    jobs: LiveJobs = app.state.live_jobs
    pending = jobs.attach(service_db_path(svc.index_dir))
    return jobs.resume(svc, pending) if pending else 0


def on_stop(app: FastAPI) -> None:
    """At service shutdown, before the writer closes: stop the running jobs (they resume
    at the next start)."""
    app.state.live_jobs.close()
