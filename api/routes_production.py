"""HTTP routes: clip export and highlight reels.

``GET /v1/videos/{id}/clip?start=&end=`` exports the range (``indexer.export``) and
streams the MP4 in chunks from a temporary file that is deleted once sent (why a
file and not a pipe: see ``indexer.export``). Access is as for ``/media``: a key
with the ``search`` scope or a signed link (``t``) from a search result; another
tenant's video answers 404 like a missing one.

``POST /v1/highlights`` queues a highlight job in the ingest job queue (kind
``highlight``); ``GET /v1/jobs/{job_id}`` reports its status and progress, and
``GET /v1/highlights/{job_id}/video`` and ``/edl`` serve the result. The reel and
its EDL are kept in ``DIR/highlights/<tenant>/<job_id>.{mp4,json}``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.auth import Principal
from api.jobs import JobRequest, SharedWriter, register_job_kind
from api.routes import _svc, _video_reader_principal, require
from engine.errors import NotFoundError

__all__ = ["install", "HighlightBody", "CLIP_LIMITS", "highlight_paths"]

log = logging.getLogger("vidseek.api.production")

HIGHLIGHT_KIND = "highlight"


def _default_limits():
    from indexer.export import ExportLimits

    return ExportLimits()


CLIP_LIMITS = _default_limits()
"""Limits of clips and reels made over HTTP; set ``app.state.clip_limits`` to change them."""


class HighlightBody(BaseModel):
    """POST /v1/highlights: a reel of one video (``video_id``) or of a query's best moments."""

    video_id: str | None = Field(None, max_length=64, examples=["v3f2a9c1d0e4b5a6"])
    query: str | None = Field(None, max_length=4000, examples=["goal celebration"])
    duration: float = Field(30.0, gt=0, le=600, description="target length in seconds (never exceeded)")
    order: Literal["story", "score"] = "story"
    fade: float = Field(0.5, ge=0, le=2, description="cross-fade between pieces in seconds")


def highlight_paths(index_dir: Path, tenant: str, job_id: str) -> tuple[Path, Path]:
    """Where a highlight job writes its reel and its EDL."""
    folder = Path(index_dir) / "highlights" / tenant
    return folder / f"{job_id}.mp4", folder / f"{job_id}.json"


def _run_highlight(writer: SharedWriter, job_id: str, req: JobRequest, progress,
                   should_commit) -> tuple[str, str | None]:
    """The job runner: build the reel with the service's writer handle (always current),
    or a reader while another process holds the writer lock. Nothing is committed, so
    ``should_commit`` has nothing to guard; a shutdown stops the job through
    ``progress`` (which raises), and the renderer kills FFmpeg and removes its file."""
    from api.cli_production import HighlightRequest, build_highlight
    from engine.index import VideoIndex

    hreq = HighlightRequest.from_dict({**json.loads(req.params or "{}"), "tenant": req.tenant})
    video, edl = highlight_paths(writer.index_dir, req.tenant, job_id)
    video.parent.mkdir(parents=True, exist_ok=True)
    own = None if writer.try_open() else VideoIndex.open(writer.index_dir)
    try:
        build_highlight(own or writer.index, hreq, video, edl_path=edl, limits=CLIP_LIMITS, progress=progress)
    finally:
        if own is not None:
            own.close()
    return "rendered", hreq.video_id


router = APIRouter(prefix="/v1")


@router.get(
    "/videos/{video_id}/clip", summary="A time range of a video as MP4 (H.264/AAC), frame-accurate",
    responses={200: {"content": {"video/mp4": {}}, "description": "The clip, streamed"},
               400: {"description": "Invalid range"}, 404: {"description": "Unknown video"},
               413: {"description": "Over the duration or size limit"}},
    response_class=StreamingResponse,
)
def clip(
    request: Request,
    video_id: str,
    start: float = Query(..., description="seconds from the start", examples=[12.0]),
    end: float = Query(..., description="seconds from the start, exclusive", examples=[19.5]),
    copy: Literal["auto", "never", "always"] = Query("auto", description="stream copy when keyframe-aligned"),
    t: str | None = Query(None, description="signed link token from a search result"),
) -> StreamingResponse:
    from api.cli_production import resolve_video
    from indexer.export import export_to_temp, iter_file

    p = _video_reader_principal(request, video_id, t)
    svc = _svc(request)
    rec = resolve_video(svc.reader, video_id, p.tenant)
    limits = getattr(request.app.state, "clip_limits", CLIP_LIMITS)
    res = export_to_temp(rec.source, start, end, copy=copy, limits=limits, tmp_dir=svc.index_dir / "tmp")
    plan = res.plan
    headers = {
        "Content-Length": str(res.size_bytes),
        "Content-Disposition": f'attachment; filename="{video_id}_{plan.start:.3f}-{plan.end:.3f}.mp4"',
        "X-Clip-Start": f"{plan.start:.6f}",
        "X-Clip-End": f"{plan.end:.6f}",
        "X-Clip-Mode": plan.mode,
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(iter_file(res.path), media_type="video/mp4", headers=headers)


@router.post("/highlights", status_code=202, summary="Queue a highlight reel of a video or of a query",
             responses={202: {"content": {"application/json": {"example": {
                 "job_id": "j5c1e0d7a9b2f4e86", "status": "queued",
                 "video_url": "/v1/highlights/j5c1e0d7a9b2f4e86/video",
                 "edl_url": "/v1/highlights/j5c1e0d7a9b2f4e86/edl"}}}}})
def post_highlight(request: Request, body: HighlightBody, p: Principal = Depends(require("ingest"))) -> Any:
    from api.cli_production import HighlightRequest

    svc = _svc(request)
    hreq = HighlightRequest(video_id=body.video_id, query=body.query, duration=body.duration, order=body.order,
                            fade=body.fade, tenant=p.tenant)
    if hreq.video_id is not None:
        svc.reader.catalog.get_video(hreq.video_id, tenant=p.tenant)  # 404 now, not a failed job later
    params = {k: v for k, v in hreq.as_dict().items() if k != "tenant"}
    title = f"highlight of {hreq.video_id}" if hreq.video_id else f"highlight: {hreq.query}"
    job = svc.jobs.submit(JobRequest(p.tenant, "", title[:200], kind=HIGHLIGHT_KIND, params=json.dumps(params)))
    return JSONResponse(
        {"job_id": job.job_id, "status": job.status, "video_url": f"/v1/highlights/{job.job_id}/video",
         "edl_url": f"/v1/highlights/{job.job_id}/edl"},
        status_code=202, headers={"Location": f"/v1/jobs/{job.job_id}"},
    )


def _done_job(request: Request, job_id: str, p: Principal) -> tuple[Path, Path]:
    from api.app import ApiError

    svc = _svc(request)
    job = svc.jobs.get(job_id, tenant=p.tenant)
    if job.kind != HIGHLIGHT_KIND:
        raise NotFoundError(f"job {job_id} is not a highlight job",
                            hint="use the job_id that POST /v1/highlights returned")
    if job.status == "failed":
        raise ApiError("job_failed", f"highlight job {job_id} failed: {job.error_message}", status=409)
    if job.status != "done":
        raise ApiError("job_not_done", f"highlight job {job_id} is {job.status} ({100 * job.progress:.0f}%);"
                       f" poll /v1/jobs/{job_id} until it is done", status=409)
    video, edl = highlight_paths(svc.index_dir, p.tenant, job_id)
    if not video.is_file() or not edl.is_file():
        raise NotFoundError(f"the result of highlight job {job_id} is no longer on the server",
                            hint="POST /v1/highlights again")
    return video, edl


@router.get("/highlights/{job_id}/video", summary="A finished highlight reel (MP4, with HTTP Range)",
            responses={200: {"content": {"video/mp4": {}}}}, response_class=FileResponse)
def highlight_video(request: Request, job_id: str, p: Principal = Depends(require("ingest"))) -> FileResponse:
    video, _ = _done_job(request, job_id, p)
    return FileResponse(video, media_type="video/mp4", filename=f"highlight-{job_id}.mp4",
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get("/highlights/{job_id}/edl", summary="A finished highlight reel's edit decision list (JSON)")
def highlight_edl(request: Request, job_id: str, p: Principal = Depends(require("ingest"))) -> JSONResponse:
    _, edl = _done_job(request, job_id, p)
    return JSONResponse(json.loads(edl.read_text(encoding="utf-8")))


def install(app: FastAPI) -> None:
    """Add the clip and highlight routes to ``app`` and the highlight job kind to the queue."""
    register_job_kind(HIGHLIGHT_KIND, _run_highlight)
    app.include_router(router)
