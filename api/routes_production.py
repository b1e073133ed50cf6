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

The clip and highlight logic is ``api.production`` (shared with the CLI); the limits of
clips and reels are the service state's ``clip_limits``; ``job_kinds(state)`` gives the
``highlight`` runner that the app registers with the state's job queue.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import require, service, video_reader_principal
from api.errors import ApiError
from api.jobs import JobRequest, JobRunner
from api.production import HIGHLIGHT_KIND, HighlightRequest, highlight_paths, resolve_video, run_highlight_job
from api.ranged import RangeFileResponse
from api.state import ServiceState
from engine.errors import NotFoundError
from query.parse import MAX_QUERY_CHARS

__all__ = ["install", "job_kinds", "HighlightBody", "highlight_paths"]


class HighlightBody(BaseModel):
    """POST /v1/highlights: a reel of one video (``video_id``) or of a query's best moments."""

    video_id: str | None = Field(None, max_length=64, examples=["v3f2a9c1d0e4b5a6"])
    query: str | None = Field(None, max_length=MAX_QUERY_CHARS, examples=["goal celebration"])
    duration: float = Field(30.0, gt=0, le=600, description="target length in seconds (never exceeded)")
    order: Literal["story", "score"] = "story"
    fade: float = Field(0.5, ge=0, le=2, description="cross-fade between pieces in seconds")


def job_kinds(svc: ServiceState) -> dict[str, JobRunner]:
    """The job kinds of these routes: ``highlight``, made with ``svc``'s clip limits."""
    def run(writer, job_id, req, progress, should_commit):
        return run_highlight_job(writer, job_id, req, progress, should_commit, limits=svc.clip_limits)

    return {HIGHLIGHT_KIND: run}


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
    from indexer.export import export_to_temp, iter_file

    p = video_reader_principal(request, video_id, t)
    svc = service(request)
    rec = resolve_video(svc.index(), video_id, p.tenant)
    res = export_to_temp(rec.source, start, end, copy=copy, limits=svc.clip_limits, tmp_dir=svc.index_dir / "tmp")
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
             description="Send `Idempotency-Key` to make a retried request return the first job.",
             openapi_extra={"parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                            "schema": {"type": "string", "maxLength": 255}}]},
             responses={202: {"content": {"application/json": {"example": {
                 "job_id": "j5c1e0d7a9b2f4e86", "status": "queued",
                 "video_url": "/v1/highlights/j5c1e0d7a9b2f4e86/video",
                 "edl_url": "/v1/highlights/j5c1e0d7a9b2f4e86/edl"}}}}})
def post_highlight(request: Request, body: HighlightBody, p: Principal = Depends(require("ingest"))) -> Any:
    svc = service(request)
    idem = request.headers.get("idempotency-key")
    if idem is not None:
        svc.idempotency.check_key(idem)
    hreq = HighlightRequest(video_id=body.video_id, query=body.query, duration=body.duration, order=body.order,
                            fade=body.fade, tenant=p.tenant)
    if hreq.video_id is not None:
        svc.index().catalog.get_video(hreq.video_id, tenant=p.tenant)  # 404 now, not a failed job later
    params = {k: v for k, v in hreq.as_dict().items() if k != "tenant"}
    title = f"highlight of {hreq.video_id}" if hreq.video_id else f"highlight: {hreq.query}"

    made = []

    def submit() -> str:
        made.append(svc.jobs.submit(JobRequest(p.tenant, "", title[:200], kind=HIGHLIGHT_KIND,
                                               params=json.dumps(params))))
        return made[0].job_id

    headers = {}
    if idem is None:
        submit()
    else:
        job_id, replayed = svc.idempotency.once(p.tenant, idem, svc.idempotency.fingerprint("highlight", params),
                                                submit)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
            made.append(svc.jobs.get(job_id, tenant=p.tenant))
    job = made[0]  # as submitted ('queued'), or the first request's job now
    return JSONResponse(
        {"job_id": job.job_id, "status": job.status, "video_url": f"/v1/highlights/{job.job_id}/video",
         "edl_url": f"/v1/highlights/{job.job_id}/edl"},
        status_code=202, headers={"Location": f"/v1/jobs/{job.job_id}", **headers},
    )


def _done_job(request: Request, job_id: str, p: Principal) -> tuple[Path, Path]:
    svc = service(request)
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
    return RangeFileResponse(video, media_type="video/mp4", filename=f"highlight-{job_id}.mp4",
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get("/highlights/{job_id}/edl", summary="A finished highlight reel's edit decision list (JSON)")
def highlight_edl(request: Request, job_id: str, p: Principal = Depends(require("ingest"))) -> JSONResponse:
    _, edl = _done_job(request, job_id, p)
    return JSONResponse(json.loads(edl.read_text(encoding="utf-8")))


def install(app: FastAPI) -> None:
    """Add the clip and highlight routes to ``app`` (their job kinds: ``job_kinds``)."""
    app.include_router(router)
