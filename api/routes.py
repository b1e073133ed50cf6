"""HTTP routes: thin translation from requests to ``query``/``indexer``/``engine`` calls.

Tenancy: every read, search, thumbnail, media, job and delete is scoped to the
caller's tenant; another tenant's id answers 404 exactly like a missing one. The
service state, the caller and its signed links come from ``api.deps``; reads and
searches go to the state's index handle (``ServiceState.index()`` / ``searcher()``).
"""
from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import INT64_MAX, authenticate, links, require, service, video_reader_principal
from api.errors import ApiError, ErrorBody, ErrorDetail
from api.jobs import JobRequest
from api.ranged import RangeFileResponse, RangeStaticFiles
from engine.errors import InputError, MediaError, NotFoundError
from query.parse import MAX_QUERY_CHARS

__all__ = ["install", "ErrorBody", "SearchBody", "IngestPathBody"]

STATIC = Path(__file__).parent / "static"
_CHUNK = 1 << 20


# -- OpenAPI models (ErrorBody and ErrorDetail: api.errors) -----------------------------
class HitOut(BaseModel):
    video_id: str = Field(examples=["v3f2a9c1d0e4b5a6"])
    source: str = Field(examples=["/media/harbour.mp4"])
    start: float = Field(examples=[12.0])
    end: float = Field(examples=[19.5])
    score: float = Field(examples=[0.71])
    matched: dict[str, float] = Field(examples=[{"speech": 0.62, "visual": 0.31}])
    snippet: str = Field(examples=["the red boat leaves the harbour at seven"])
    title: str | None = None
    segment_ids: list[int] = []
    range_from: str = Field("segments", description="what set start/end: words (spoken phrases), text (an "
                            "on-screen text span), visual (a run of frames), shot, or segments (the matched "
                            "segments' range)", examples=["words"])
    segments_start: float | None = Field(None, description="start of the matched segments' range", examples=[10.0])
    segments_end: float | None = Field(None, description="end of the matched segments' range", examples=[20.0])
    thumbnail_url: str | None = Field(None, examples=["/v1/videos/v3f2a9c1d0e4b5a6/segments/17/thumbnail?t=..."])
    media_url: str | None = Field(None, examples=["/v1/videos/v3f2a9c1d0e4b5a6/media?t=..."])
    live: bool = Field(False, description="the video is still being indexed from a live stream (vidseek live)")


class SearchOut(BaseModel):
    query: str = Field(examples=["red boat leaving the harbour dur:>5s"])
    intent: dict[str, Any]
    took_ms: float
    hits: list[HitOut]
    parsed: dict[str, Any] = {}


class SearchBody(BaseModel):
    """POST /v1/search as JSON (send multipart with the same fields plus ``image`` for an image query)."""

    q: str = Field("", max_length=MAX_QUERY_CHARS, examples=["aerial shot of a harbour at dusk res:4k dur:>=10s"])
    k: int = Field(10, ge=1, le=1000)
    per_video: int = Field(1, ge=1, le=100)
    fusion: str = Field("auto", examples=["auto"])
    rerank: bool = False


class IngestPathBody(BaseModel):
    """POST /v1/ingest as JSON: a file on the server inside an allowed root."""

    path: str = Field(min_length=1, max_length=4096, examples=["/srv/footage/harbour.mp4"])
    title: str | None = Field(None, max_length=500)
    speech: bool | None = None
    ocr: bool | None = None


class JobOut(BaseModel):
    job_id: str = Field(examples=["j5c1e0d7a9b2f4e86"])
    tenant: str
    status: str = Field(examples=["running"])
    stage: str | None = Field(None, examples=["visual"])
    progress: float = Field(examples=[0.3])
    result: str | None = Field(None, examples=["indexed"])
    video_id: str | None = None
    error: ErrorDetail | None = None
    created_at: float
    updated_at: float
    source_name: str
    kind: str = Field("ingest", examples=["ingest", "highlight"])


class SegmentOut(BaseModel):
    segment_id: int
    index: int
    start: float
    end: float
    transcript: str
    ocr_text: str
    labels: list
    keyframe_times: list[float]
    thumbnail_url: str


# -- helpers -----------------------------------------------------------------------------
def _search(svc, p: Principal, q: str, k: int, per_video: int, fusion: str, rerank: bool,
            image=None) -> dict:
    from query.planner import SearchOptions

    if not 1 <= k <= svc.settings.max_k:
        raise ApiError("bad_input", f"k must be in 1..{svc.settings.max_k}, got {k}")
    opts = SearchOptions(k=k, per_video=per_video, fusion=fusion, rerank=rerank, tenant=p.tenant)
    resp = svc.searcher().search(q, image=image, options=opts).to_dict()
    for h in resp["hits"]:
        h.update(links(svc, p.tenant, h["video_id"], (h.get("segment_ids") or [None])[0]))
    return resp


def _read_limited(f, limit: int, what: str, out) -> int:
    n = 0
    while chunk := f.read(_CHUNK):
        n += len(chunk)
        if n > limit:
            raise ApiError("too_large", f"the {what} is over the limit of {limit} bytes")
        out(chunk)
    return n


def _load_query_image(svc, upload) -> Any:
    from indexer.media import load_image

    with tempfile.NamedTemporaryFile(suffix=".img") as tmp:
        _read_limited(upload.file, svc.settings.max_image_bytes, "image", tmp.write)
        tmp.flush()
        try:
            return load_image(tmp.name, max_side=1024)
        except MediaError as e:  # its message names the temporary file: never show it
            why = e.message.replace(tmp.name + ": ", "").replace(tmp.name, "the image")
            raise MediaError(f"the uploaded image cannot be read: {why}",
                             hint="send a JPEG, PNG or WebP picture") from e


def _bool_field(v: Any, default: bool) -> bool:
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise InputError(f"expected a boolean, got {v!r}", hint="send true or false")


def _int_field(form, name: str, default: int, lo: int, hi: int) -> int:
    v = form.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an integer, got {str(v)[:40]!r}") from None
    if not lo <= n <= hi:
        raise InputError(f"{name} must be in {lo}..{hi}, got {n}")
    return n


def _client_name(filename: str | None) -> str:
    """The upload's own file name for a message (quoted, bounded)."""
    return repr(os.path.basename(filename or "")[:100]) if filename else "(no file name)"


def _safe_ext(filename: str | None) -> str:
    ext = os.path.splitext(filename or "")[1].lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ".bin"


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    for r in roots:
        root = os.path.realpath(r)
        if os.path.commonpath([path, root]) == root:
            return True
    return False


def _segment_dict(svc, tenant: str, video_id: str, s) -> dict:
    return {"segment_id": s.id, "index": s.idx, "start": s.start, "end": s.end, "transcript": s.transcript,
            "ocr_text": s.ocr_text, "labels": s.labels, "keyframe_times": list(s.keyframe_times),
            "thumbnail_url": links(svc, tenant, video_id, s.id)["thumbnail_url"]}


def _video_dict(svc, tenant: str, rec) -> dict:
    d = rec.as_dict()
    d.pop("tenant", None)
    # 'damaged': indexed as far as it decodes; damage says why and how much decodes
    d["damage"] = (rec.stats or {}).get("damage") if rec.status == "damaged" else None
    d["media_url"] = links(svc, tenant, rec.video_id, None)["media_url"]
    return d


# -- routers -------------------------------------------------------------------------------
v1 = APIRouter(prefix="/v1")
ops = APIRouter()

_SEARCH_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchBody.model_json_schema(),
                                 "example": {"q": "red boat leaving the harbour", "k": 10, "per_video": 1}},
            "multipart/form-data": {"schema": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "k": {"type": "integer"}, "per_video": {"type": "integer"},
                               "image": {"type": "string", "format": "binary"}},
            }},
        },
    }
}


@v1.get("/search", response_model=SearchOut, summary="Search with query parameters (search box)")
def search_get(
    request: Request,
    q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="query text with optional filters",
                   examples=["red boat harbour dur:>5s has:speech"]),
    k: int = Query(10, ge=1, le=1000, description="number of moments (1..100 by default)"),
    per_video: int = Query(1, ge=1, le=100),
    fusion: str = Query("auto"),
    rerank: bool = Query(False),
    p: Principal = Depends(require("search")),
) -> dict:
    return _search(service(request), p, q, k, per_video, fusion, rerank)


@v1.post("/search", response_model=SearchOut, summary="Search with a JSON body or a multipart image query",
         openapi_extra=_SEARCH_BODY_DOC)
async def search_post(request: Request, p: Principal = Depends(require("search"))) -> Any:
    from starlette.concurrency import run_in_threadpool

    svc = service(request)
    ctype = request.headers.get("content-type", "")
    image = None
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=20)
        q = str(form.get("q") or "")
        if len(q) > MAX_QUERY_CHARS:
            raise InputError(f"q is longer than {MAX_QUERY_CHARS} characters", hint="shorten the query")
        k, per_video = _int_field(form, "k", 10, 1, 1000), _int_field(form, "per_video", 1, 1, 100)
        fusion, rerank = str(form.get("fusion") or "auto"), _bool_field(form.get("rerank"), False)
        upload = form.get("image")
        if upload is not None and not isinstance(upload, str):
            image = await run_in_threadpool(_load_query_image, svc, upload)
    elif ctype.startswith("application/json"):
        try:
            body = SearchBody.model_validate(json.loads(await request.body() or b"null"))
        except (ValueError, TypeError) as e:
            raise InputError(f"the JSON body is invalid: {e}") from None
        q, k, per_video, fusion, rerank = body.q, body.k, body.per_video, body.fusion, body.rerank
    else:
        raise ApiError("unsupported_content_type", "send application/json or multipart/form-data")
    if not q.strip() and image is None:
        raise ApiError("bad_input", "give a query text 'q' or an 'image'")
    return await run_in_threadpool(_search, svc, p, q, k, per_video, fusion, rerank, image)


@v1.post("/ingest", status_code=202, summary="Ingest an uploaded video or a server-side path",
         openapi_extra={"requestBody": {"required": True, "content": {
             "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                 "file": {"type": "string", "format": "binary"}, "title": {"type": "string"},
                 "speech": {"type": "boolean"}, "ocr": {"type": "boolean"}}}},
             "application/json": {"schema": IngestPathBody.model_json_schema(),
                                  "example": {"path": "/srv/footage/harbour.mp4", "title": "Harbour at dusk"}},
         }}},
         responses={202: {"content": {"application/json": {"example": {"job_id": "j5c1e0d7a9b2f4e86",
                                                                         "status": "queued"}}}}})
async def ingest(request: Request, p: Principal = Depends(require("ingest"))) -> Any:
    from starlette.concurrency import run_in_threadpool

    svc = service(request)
    s = svc.settings
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > s.max_upload_bytes + 64 * 1024:
            raise ApiError("too_large", f"the upload is over the limit of {s.max_upload_bytes} bytes")
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError("bad_input", "multipart ingest needs a 'file' part with the video")
        title = form.get("title") or upload.filename or None
        req = await run_in_threadpool(
            _save_upload, svc, p.tenant, upload, str(title) if title else None,
            _bool_field(form.get("speech"), s.ingest_speech), _bool_field(form.get("ocr"), s.ingest_ocr))
    elif ctype.startswith("application/json"):
        try:
            body = IngestPathBody.model_validate(json.loads(await request.body() or b"null"))
        except (ValueError, TypeError) as e:
            raise InputError(f"the JSON body is invalid: {e}") from None
        req = await run_in_threadpool(_path_request, svc, p.tenant, body)
    else:
        raise ApiError("unsupported_content_type", "send multipart/form-data with a 'file', or JSON {\"path\": ...}")
    job = svc.jobs.submit(req)
    return JSONResponse({"job_id": job.job_id, "status": job.status}, status_code=202,
                        headers={"Location": f"/v1/jobs/{job.job_id}"})


def _save_upload(svc, tenant: str, upload, title: str | None, speech: bool, ocr: bool) -> JobRequest:
    """Stream the upload into DIR/uploads/<tenant>/ (named by content hash), probing it
    before a job is queued: a non-video is refused by content, not by its name."""
    from indexer.media import probe

    folder = svc.index_dir / "uploads" / tenant
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            def write(chunk: bytes) -> None:
                h.update(chunk)
                out.write(chunk)

            n = _read_limited(upload.file, svc.settings.max_upload_bytes, "upload", write)
        if n == 0:
            raise MediaError("the uploaded file is empty", hint="send a video file")
        try:
            probe(tmp)
        except MediaError as e:  # its message names the temporary file: never show it
            why = e.message.replace(tmp + ": ", "").replace(tmp, "the upload")
            name = _client_name(upload.filename)
            raise MediaError(f"the upload {name} is not a playable video: {why}",
                             hint="send a video file (mp4, mkv, webm, mov, ...)") from e
        dest = folder / (h.hexdigest()[:24] + _safe_ext(upload.filename))
        owns = not dest.exists()
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return JobRequest(tenant, str(dest), title, speech, ocr, True, owns)


def _path_request(svc, tenant: str, body: IngestPathBody) -> JobRequest:
    from indexer.media import probe

    roots = svc.settings.roots_for(tenant)  # each tenant its own: never another tenant's files
    if not roots:
        raise ApiError("path_not_allowed", f"path ingest is off for tenant {tenant!r}: the server allows it no"
                       f" folders (start it with --allow-root {tenant}=DIR), so upload the file instead")
    if "\x00" in body.path or not os.path.isabs(body.path):
        raise ApiError("bad_input", "path must be an absolute path on the server")
    # realpath resolves '..' and every symlink, so a link inside a root that points out of it is refused.
    real = os.path.realpath(body.path)
    # The index folder holds every tenant's uploads: never ingest from it by path.
    if not _inside(real, roots) or _inside(real, (str(svc.index_dir),)):
        raise ApiError("path_not_allowed", f"the path is outside the folders tenant {tenant!r} may ingest from")
    if not os.path.isfile(real):
        if os.path.exists(real):  # a folder, FIFO or device: reading it could block or never end
            raise ApiError("not_a_file", "the path is not a regular file (a folder, pipe or device)")
        raise NotFoundError("no file at that path inside the allowed roots", hint="check the path")
    try:
        probe(real)
    except MediaError as e:  # name the file as the client did, not as resolved on the server
        raise MediaError(e.message.replace(real, body.path), hint=e.hint) from e
    s = svc.settings
    return JobRequest(tenant, real, body.title, s.ingest_speech if body.speech is None else body.speech,
                      s.ingest_ocr if body.ocr is None else body.ocr, True, False)


@v1.get("/jobs/{job_id}", response_model=JobOut, summary="An ingest job's status and progress")
def get_job(request: Request, job_id: str, p: Principal = Depends(require("ingest"))) -> dict:
    return service(request).jobs.get(job_id, tenant=p.tenant).as_dict()


@v1.get("/videos", summary="The tenant's videos")
def list_videos(request: Request, limit: int = Query(100, ge=1, le=1000),
                offset: int = Query(0, ge=0, le=INT64_MAX),
                p: Principal = Depends(require("search"))) -> dict:
    svc = service(request)
    vids = svc.index().catalog.list_videos(tenant=p.tenant, limit=limit, offset=offset)
    return {"videos": [_video_dict(svc, p.tenant, v) for v in vids], "limit": limit, "offset": offset}


@v1.get("/videos/{video_id}", summary="One video's catalogue record")
def get_video(request: Request, video_id: str, p: Principal = Depends(require("search"))) -> dict:
    svc = service(request)
    return _video_dict(svc, p.tenant, svc.index().catalog.get_video(video_id, tenant=p.tenant))


@v1.delete("/videos/{video_id}", summary="Delete a video (and its uploaded file)")
def delete_video(request: Request, video_id: str, p: Principal = Depends(require("ingest"))) -> dict:
    svc = service(request)
    with svc.writer.locked() as w:
        rec = w.delete_video(video_id, tenant=p.tenant)
    uploads = (svc.index_dir / "uploads" / p.tenant).resolve()
    src = Path(rec.source).resolve()
    if src.parent == uploads:  # the service's own copy of an upload goes with the video
        src.unlink(missing_ok=True)
    return {"deleted": rec.video_id, "source": rec.source}


@v1.get("/videos/{video_id}/segments", response_model=list[SegmentOut], summary="A video's segments")
def list_segments(request: Request, video_id: str, p: Principal = Depends(require("search"))) -> list[dict]:
    svc = service(request)
    rec = svc.index().catalog.get_video(video_id, tenant=p.tenant)
    return [_segment_dict(svc, p.tenant, video_id, s) for s in svc.index().catalog.segments_of(rec.key)]


@v1.get("/videos/{video_id}/segments/{segment_id}/thumbnail", summary="A segment's keyframe as JPEG",
        responses={200: {"content": {"image/jpeg": {}}}}, response_class=Response)
def thumbnail(request: Request, video_id: str, segment_id: int = PathParam(ge=0, le=INT64_MAX),
              t: str | None = Query(None),
              size: int = Query(320, ge=32, le=1280)) -> Response:
    from PIL import Image

    from indexer.media import frames_at

    p = video_reader_principal(request, video_id, t)
    svc = service(request)
    rec = svc.index().catalog.get_video(video_id, tenant=p.tenant)
    seg = next((s for s in svc.index().catalog.segments_of(rec.key) if s.id == segment_id), None)
    if seg is None:
        raise NotFoundError(f"video {video_id} has no segment {segment_id}",
                            hint=f"GET /v1/videos/{video_id}/segments lists them")
    at = seg.keyframe_times[0] if seg.keyframe_times else (seg.start + seg.end) / 2
    if not os.path.isfile(rec.source):
        raise NotFoundError(f"the media of video {video_id} is no longer on the server")

    def make() -> bytes:
        frames = list(frames_at(rec.source, [at], size=size))
        buf = io.BytesIO()
        Image.fromarray(frames[0][1]).save(buf, format="JPEG", quality=82)
        return buf.getvalue()

    data = svc.thumbs.get((rec.source, rec.content_hash, at, size), make)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@v1.get("/videos/{video_id}/media", summary="The original media, with HTTP Range for seeking",
        responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "Partial content (Range)"}},
        response_class=FileResponse)
def media(request: Request, video_id: str, t: str | None = Query(None)) -> RangeFileResponse:
    p = video_reader_principal(request, video_id, t)
    svc = service(request)
    rec = svc.index().catalog.get_video(video_id, tenant=p.tenant)
    if not os.path.isfile(rec.source):
        raise NotFoundError(f"the media of video {video_id} is no longer on the server")
    ctype = mimetypes.guess_type(rec.source)[0] or "application/octet-stream"
    # Range errors (malformed, unsatisfiable, single or multi-range) answer the JSON body.
    return RangeFileResponse(rec.source, media_type=ctype, headers={"Cache-Control": "private, max-age=3600"})


@ops.get("/healthz", summary="Liveness")
def healthz() -> dict:
    return {"status": "ok"}


@ops.get("/readyz", summary="Readiness: index open, models loaded")
def readyz(request: Request) -> JSONResponse:
    svc = getattr(request.app.state, "svc", None)
    ready = bool(svc and svc.ready and svc.index_open and svc.models_loaded)
    body = {"ready": ready, "index_open": bool(svc and svc.index_open),
            "models_loaded": bool(svc and svc.models_loaded),
            "writer": bool(svc and svc.writer.is_open), "local_mode": bool(svc and svc.local_mode)}
    if not ready:
        return JSONResponse({**body, **{"error": {"code": "not_ready", "message": "not ready"}}}, status_code=503)
    return JSONResponse(body)


@ops.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    svc = service(request)
    if not svc.local_mode:
        authenticate(request, "admin")
    index = svc.index()
    counts = index.catalog.counts()
    gauges = {
        "vidseek_index_videos": ("Videos in the index (all tenants).", counts["videos"]),
        "vidseek_index_segments": ("Segments in the index.", counts["segments"]),
        "vidseek_index_keyframes": ("Keyframes in the index.", counts["keyframes"]),
        "vidseek_index_vectors": ("Live joint vectors.", float(index.vectors.info().get("count", 0) or 0)),
        "vidseek_ingest_queue_length": ("Ingest jobs queued or running.", svc.jobs.queue_length()),
    }
    for status, n in svc.jobs.counts().items():
        gauges[f"vidseek_ingest_jobs_{status}"] = (f"Ingest jobs now {status}.", n)
    return PlainTextResponse(svc.metrics.render(gauges), media_type="text/plain; version=0.0.4")


@ops.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


def install(app: FastAPI) -> None:
    """Add the search, ingest, video and operations routes and the static files to ``app``
    (the feature routers install themselves: ``api.routes_covers``, ``routes_graph``,
    ``routes_production``)."""
    app.include_router(v1)
    app.include_router(ops)
    app.mount("/static", RangeStaticFiles(directory=STATIC), name="static")
