"""HTTP routes: thin translation from requests to ``query``/``indexer``/``engine`` calls.

Tenancy: every read, search, thumbnail, media, job and delete is scoped to the
caller's tenant; another tenant's id answers 404 exactly like a missing one. The
service state, the caller and its signed links come from ``api.deps``; reads and
searches go to the state's index handle (``ServiceState.index()`` / ``searcher()``).
"""
from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import INT64_MAX, allowed_real_path, authenticate, links, require, service, video_reader_principal
from api.errors import ApiError, ErrorBody, ErrorDetail
from api.jobs import JobRequest
from api.ranged import RangeFileResponse, RangeStaticFiles
from engine.errors import InputError, MediaError, NotFoundError
from api.conventions import decode_cursor, encode_cursor, page_info
from indexer.thumbs import ThumbStore
from query.levels import DEFAULT_MIN_CONFIDENCE
from query.parse import MAX_QUERY_CHARS

# The deepest a search pages: offset + k. Past a thousand moments a ranking is noise.
MAX_SEARCH_DEPTH = 1000

__all__ = ["install", "ErrorBody", "SearchBody", "IngestPathBody", "MetadataFields", "MAX_SEARCH_DEPTH"]

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
    seen: str = Field("", description="what the frame labellers saw in the moment (docs/labels.md)",
                      examples=["2 people, woman, happy, dog"])
    thumbnail_url: str | None = Field(None, examples=["/v1/videos/v3f2a9c1d0e4b5a6/segments/17/thumbnail?t=..."])
    media_url: str | None = Field(None, examples=["/v1/videos/v3f2a9c1d0e4b5a6/media?t=..."])
    preview_url: str | None = Field(None, description="plays in every browser (the original, or an H.264/AAC"
                                    " preview made for it)", examples=["/v1/videos/v3f2a9c1d0e4b5a6/preview?t=..."])
    highlights: list[list[int]] = Field([], description="[start, end) offsets of the query's words in snippet")
    thumbnail_segment: int | None = None
    confidence: str | None = Field(None, description="high, medium or low (calibrated; docs/results.md)",
                                   examples=["high"])
    confidence_score: float | None = Field(None, description="calibrated probability that the moment answers"
                                           " the query", examples=[0.83])
    live: bool = Field(False, description="the video is still being indexed from a live stream (vidseek live)")
    on_screen: list[dict] = Field([], description="face identities on screen in the moment: identity, name (null:"
                                  " unnamed), start, end (docs/identities.md)",
                                  examples=[[{"identity": 3, "name": "Grace Hopper", "start": 0.0, "end": 4.0}]])


class SearchOut(BaseModel):
    query: str = Field(examples=["red boat leaving the harbour dur:>5s"])
    intent: dict[str, Any]
    took_ms: float
    hits: list[HitOut]
    parsed: dict[str, Any] = {}
    search_id: str = Field("", description="names this search in POST /v1/search/feedback events")
    ranker: dict[str, Any] = Field({}, description="the ranking model that ordered the hits",
                                   examples=[{"version": "default"}])
    offset: int = Field(0, description="how many moments of the ranking come before these")
    next_cursor: str | None = Field(None, description="pass as cursor (or offset+k as offset) for the next page;"
                                    " null when the ranking has no more moments")
    min_confidence: str = "medium"
    hidden: int = Field(0, description="moments found below min_confidence")
    no_good_match: bool = Field(False, description="no moment reaches min_confidence")


class SearchBody(BaseModel):
    """POST /v1/search as JSON (send multipart with the same fields plus ``image`` for an image query)."""

    q: str = Field("", max_length=MAX_QUERY_CHARS, examples=["aerial shot of a harbour at dusk res:4k dur:>=10s"])
    k: int = Field(10, ge=1, le=1000)
    per_video: int = Field(1, ge=1, le=100)
    fusion: str = Field("auto", examples=["auto"])
    rerank: bool = False
    offset: int = Field(0, ge=0, le=MAX_SEARCH_DEPTH, description="skip this many moments (paging)")
    cursor: str | None = Field(None, description="next_cursor of the previous page (instead of offset)")
    min_confidence: Literal["low", "medium", "high"] = Field(DEFAULT_MIN_CONFIDENCE, description="hide moments"
                                                             " below this calibrated confidence")


class MetadataFields(BaseModel):
    """A video's catalogue metadata, as a sidecar line has it (``vidseek index --metadata``)."""

    title: str | None = Field(None, max_length=500, examples=["Harbour at dusk"])
    description: str | None = Field(None, max_length=20000, examples=["Fishing boats leave the harbour"])
    tags: list[str] | None = Field(None, max_length=200, examples=[["harbour", "drone"]])
    people: list[str] | None = Field(None, max_length=200, examples=[["Ada Lovelace"]])
    extra: dict[str, Any] | None = Field(None, description="free fields, kept verbatim",
                                         examples=[{"license": "CC-BY", "shot_on": "2024-05-01"}])


class IngestPathBody(MetadataFields):
    """POST /v1/ingest as JSON: a file on the server inside an allowed root, with its metadata."""

    path: str = Field(min_length=1, max_length=4096, examples=["/srv/footage/harbour.mp4"])
    speech: bool | None = None
    ocr: bool | None = None


class JobOut(BaseModel):
    job_id: str = Field(examples=["j5c1e0d7a9b2f4e86"])
    tenant: str
    status: str = Field(examples=["running"])
    stage: str | None = Field(None, examples=["visual"],
                              description="the step running now: `hash`, then the analysis stages (`shots`, `visual`,"
                                          " `speech`, ...) as the worker reports them; with Ray ingest also"
                                          " `dispatched` (waiting for a free worker) and `retrying` (its worker died)")
    progress: float = Field(examples=[0.3])
    result: str | None = Field(None, examples=["indexed"])
    video_id: str | None = None
    error: ErrorDetail | None = Field(None, description="why it failed: e.g. `bad_media`, or `worker_crash` when"
                                                        " every Ray worker that analysed it died (nothing committed)")
    created_at: float
    updated_at: float
    source_name: str
    kind: str = Field("ingest", examples=["ingest", "highlight"])
    worker: str | None = Field(None, examples=["3f9a02c1/48213"],
                               description="where the analysis runs: Ray node id prefix / process id (`vidseek serve"
                                           " --ray`); null in the server's own process")
    attempt: int = Field(0, examples=[1], description="analysis attempt: 1 once running, more after a Ray worker"
                                                      " died mid-video and the video was sent to another")


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
            image=None, offset: int = 0, min_confidence: str = DEFAULT_MIN_CONFIDENCE) -> dict:
    from query.planner import SearchOptions

    if not 1 <= k <= svc.settings.max_k:
        raise ApiError("bad_input", f"k must be in 1..{svc.settings.max_k}, got {k}")
    if offset + k > MAX_SEARCH_DEPTH:
        raise ApiError("bad_input", f"offset + k must be at most {MAX_SEARCH_DEPTH}, got {offset + k}",)
    # One ranking, cut into pages: ask for the moments up to this page's end plus one
    # (is there a next page?), so page n is the same ranking's slice whatever k was before.
    opts = SearchOptions(k=min(offset + k + 1, MAX_SEARCH_DEPTH), per_video=per_video, fusion=fusion, rerank=rerank,
                         tenant=p.tenant, min_confidence=min_confidence)
    resp = svc.searcher().search(q, image=image, options=opts).to_dict()
    more = len(resp["hits"]) > offset + k
    resp["hits"] = resp["hits"][offset:offset + k]
    resp["offset"] = offset
    resp["next_cursor"] = encode_cursor(offset + k) if more and offset + k < MAX_SEARCH_DEPTH else None
    for h in resp["hits"]:  # the card shows the frame of the moment itself
        h.update(links(svc, p.tenant, h["video_id"], h.get("thumbnail_segment", (h.get("segment_ids") or [None])[0])))
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


load_query_image = _load_query_image  # public: the identity routes take a query image the same way


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
                               "min_confidence": {"type": "string", "enum": ["low", "medium", "high"]},
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
    offset: int = Query(0, ge=0, le=MAX_SEARCH_DEPTH, description="skip this many moments (paging)"),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    min_confidence: Literal["low", "medium", "high"] = Query(
        DEFAULT_MIN_CONFIDENCE,
        description="hide moments below this calibrated confidence: low (show all), medium, high"),
    p: Principal = Depends(require("search")),
) -> dict:
    return _search(service(request), p, q, k, per_video, fusion, rerank, offset=decode_cursor(cursor) or offset,
                   min_confidence=min_confidence)


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
        offset = decode_cursor(str(form.get("cursor") or "")) or _int_field(form, "offset", 0, 0, MAX_SEARCH_DEPTH)
        min_conf = str(form.get("min_confidence") or DEFAULT_MIN_CONFIDENCE)
        upload = form.get("image")
        if upload is not None and not isinstance(upload, str):
            image = await run_in_threadpool(_load_query_image, svc, upload)
    elif ctype.startswith("application/json"):
        try:
            body = SearchBody.model_validate(json.loads(await request.body() or b"null"))
        except (ValueError, TypeError) as e:
            raise InputError(f"the JSON body is invalid: {e}") from None
        q, k, per_video, fusion, rerank = body.q, body.k, body.per_video, body.fusion, body.rerank
        offset = decode_cursor(body.cursor) or body.offset
        min_conf = body.min_confidence
    else:
        raise ApiError("unsupported_content_type", "send application/json or multipart/form-data")
    if not q.strip() and image is None:
        raise ApiError("bad_input", "give a query text 'q' or an 'image'")
    return await run_in_threadpool(_search, svc, p, q, k, per_video, fusion, rerank, image, offset, min_conf)


_INGEST_FORM = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary"}, "title": {"type": "string"},
    "description": {"type": "string"},
    "tags": {"type": "string", "description": "a JSON list, or comma-separated"},
    "people": {"type": "string", "description": "a JSON list, or comma-separated"},
    "extra": {"type": "string", "description": "a JSON object of free fields"},
    "speech": {"type": "boolean"}, "ocr": {"type": "boolean"}}}


@v1.post("/ingest", status_code=202, summary="Ingest an uploaded video or a server-side path, with its metadata",
         description="Queues an ingest job. The metadata (title, description, tags, people, free fields in"
                     " `extra`) is what a `--metadata` sidecar line gives: a file already indexed with other"
                     " metadata is re-analysed with the new one. Send `Idempotency-Key` to make a retry return"
                     " the first job instead of a second one.",
         openapi_extra={"requestBody": {"required": True, "content": {
             "multipart/form-data": {"schema": _INGEST_FORM},
             "application/json": {"schema": IngestPathBody.model_json_schema(),
                                  "example": {"path": "/srv/footage/harbour.mp4", "title": "Harbour at dusk",
                                              "tags": ["harbour", "dusk"], "extra": {"license": "CC-BY"}}},
         }}, "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                             "schema": {"type": "string", "maxLength": 255}}]},
         responses={202: {"content": {"application/json": {"example": {"job_id": "j5c1e0d7a9b2f4e86",
                                                                         "status": "queued"}}}}})
async def ingest(request: Request, p: Principal = Depends(require("ingest"))) -> Any:
    from starlette.concurrency import run_in_threadpool

    svc = service(request)
    s = svc.settings
    idem = request.headers.get("idempotency-key")
    if idem is not None:
        svc.idempotency.check_key(idem)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > s.max_upload_bytes + 64 * 1024:
            raise ApiError("too_large", f"the upload is over the limit of {s.max_upload_bytes} bytes")
        form = await request.form(max_files=1, max_fields=20)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError("bad_input", "multipart ingest needs a 'file' part with the video")
        _, meta, title = _form_metadata(form, default_title=upload.filename or None)
        req = await run_in_threadpool(
            _save_upload, svc, p.tenant, upload, title, meta,
            _bool_field(form.get("speech"), s.ingest_speech), _bool_field(form.get("ocr"), s.ingest_ocr))
    elif ctype.startswith("application/json"):
        try:
            body = IngestPathBody.model_validate(json.loads(await request.body() or b"null"))
        except (ValueError, TypeError) as e:
            raise InputError(f"the JSON body is invalid: {e}") from None
        req = await run_in_threadpool(_path_request, svc, p, body)
    else:
        raise ApiError("unsupported_content_type", "send multipart/form-data with a 'file', or JSON {\"path\": ...}")
    if idem is None:
        job = svc.jobs.submit(req)
        replayed = False
    else:
        fp = svc.idempotency.fingerprint("ingest", req.path, req.metadata, req.speech, req.ocr, req.visual)
        job_id, replayed = svc.idempotency.once(p.tenant, idem, fp, lambda: svc.jobs.submit(req).job_id)
        job = svc.jobs.get(job_id, tenant=p.tenant)
    headers = {"Location": f"/v1/jobs/{job.job_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"job_id": job.job_id, "status": job.status}, status_code=202, headers=headers)


def _list_field(v: Any, name: str) -> list[str] | None:
    """A multipart list field: a JSON list, or comma-separated text."""
    if v is None or v == "":
        return None
    text = str(v).strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise InputError(f"{name} is not a valid JSON list", hint='send ["a", "b"] or a,b') from None
        if not isinstance(items, list) or not all(isinstance(i, (str, int, float)) for i in items):
            raise InputError(f"{name} must be a list of strings")
        return [str(i) for i in items]
    return [t.strip() for t in text.split(",") if t.strip()]


def _form_metadata(form, *, default_title: str | None) -> tuple[MetadataFields, str | None, str | None]:
    """The metadata fields of a multipart ingest: (validated fields, the job's metadata
    JSON or None when none was given, the title: given, else the file name)."""
    extra = form.get("extra")
    if extra not in (None, ""):
        try:
            extra = json.loads(str(extra))
        except ValueError:
            raise InputError("extra is not valid JSON", hint='send a JSON object, e.g. {"license": "CC-BY"}') from None
    given = {"title": form.get("title") or None, "description": form.get("description") or None,
             "tags": _list_field(form.get("tags"), "tags"), "people": _list_field(form.get("people"), "people"),
             "extra": extra or None}
    try:
        m = MetadataFields.model_validate({k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        raise InputError(f"the metadata is invalid: {e}") from None
    if m.model_fields_set and not m.title and default_title:  # an upload's title defaults to its file name
        m = MetadataFields.model_validate({**m.model_dump(exclude_unset=True), "title": default_title[:500]})
    return m, _metadata_json(m), (m.title or default_title)


_META_FIELDS = ("title", "description", "tags", "people", "extra")


def _metadata_json(m: MetadataFields) -> str | None:
    """The metadata a job carries, as JSON: every field, the ones not given as empty (it
    replaces what is stored, as a sidecar line does); None when no field was given
    (the stored metadata is kept)."""
    from indexer.metadata import VideoMetadata

    if not set(m.model_fields_set) & set(_META_FIELDS):
        return None
    return json.dumps(VideoMetadata.from_dict({"title": m.title, "description": m.description, "tags": m.tags or [],
                                               "people": m.people or [], "extra": m.extra or {}}).as_dict())


def _save_upload(svc, tenant: str, upload, title: str | None, meta: str | None, speech: bool, ocr: bool
                 ) -> JobRequest:
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
    return JobRequest(tenant, str(dest), title, speech, ocr, True, owns, metadata=meta)


def _path_request(svc, p: Principal, body: IngestPathBody) -> JobRequest:
    from indexer.media import probe

    tenant = p.tenant
    if p.owner:  # the index's own user (server.json's token): any file the server can read
        return _owner_path_request(svc, p, body)
    real = allowed_real_path(svc, tenant, body.path, name="path",
                             off=f"path ingest is off for tenant {tenant!r}: the server allows it no folders"
                                 f" (start it with --allow-root {tenant}=DIR), so upload the file instead")
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
                      s.ingest_ocr if body.ocr is None else body.ocr, True, False,
                      metadata=_metadata_json(body))


def _owner_path_request(svc, p: Principal, body: IngestPathBody) -> JobRequest:
    """Path ingest handed over by ``vidseek index`` while the server runs: the path is
    kept as given (the catalog's ``source``, as a local ``vidseek index`` would store it)."""
    from indexer.media import probe

    if "\x00" in body.path or not os.path.isabs(body.path):
        raise ApiError("bad_input", "path must be an absolute path")
    if not os.path.isfile(body.path):
        raise NotFoundError(f"{body.path} is not a regular file", hint="check the path")
    probe(body.path)
    s = svc.settings
    return JobRequest(p.tenant, body.path, body.title, s.ingest_speech if body.speech is None else body.speech,
                      s.ingest_ocr if body.ocr is None else body.ocr, True, False,
                      metadata=_metadata_json(body))


class JobListOut(BaseModel):
    jobs: list[JobOut]
    total: int = Field(description="jobs that match, over every page")
    offset: int
    next_cursor: str | None = Field(None, description="pass as cursor for the next page; null on the last")


@v1.get("/jobs", response_model=JobListOut, summary="The tenant's jobs, newest first")
def list_jobs(request: Request, status: str | None = Query(None, description="queued, running, done, failed, abandoned"),
              kind: str | None = Query(None, max_length=40, examples=["ingest"]),
              limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=INT64_MAX),
              cursor: str | None = Query(None, max_length=200),
              p: Principal = Depends(require("ingest"))) -> dict:
    offset = decode_cursor(cursor) or offset
    jobs, total = service(request).jobs.list(tenant=p.tenant, status=status, kind=kind, limit=limit, offset=offset)
    return {"jobs": [j.as_dict() for j in jobs], **page_info(total, offset, len(jobs))}


@v1.get("/jobs/{job_id}", response_model=JobOut, summary="An ingest job's status and progress",
        description="`stage` and `progress` are reported by the process that analyses the video: the server's own,"
                    " or, under `vidseek serve --ray`, the Ray worker named in `worker` (a worker that dies"
                    " mid-video: the video is sent to another, `attempt` counts up, nothing is half-committed).")
def get_job(request: Request, job_id: str, p: Principal = Depends(require("ingest"))) -> dict:
    return service(request).jobs.get(job_id, tenant=p.tenant).as_dict()


@v1.get("/videos", summary="The tenant's videos, with the total and a cursor for the next page")
def list_videos(request: Request, limit: int = Query(100, ge=1, le=1000),
                offset: int = Query(0, ge=0, le=INT64_MAX),
                cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
                p: Principal = Depends(require("search"))) -> dict:
    svc = service(request)
    offset = decode_cursor(cursor) or offset
    catalog = svc.index().catalog
    vids = catalog.list_videos(tenant=p.tenant, limit=limit, offset=offset)
    return {"videos": [_video_dict(svc, p.tenant, v) for v in vids], "limit": limit,
            **page_info(catalog.count_videos(tenant=p.tenant), offset, len(vids))}


@v1.get("/videos/{video_id}", summary="One video's catalogue record")
def get_video(request: Request, video_id: str, p: Principal = Depends(require("search"))) -> dict:
    svc = service(request)
    return _video_dict(svc, p.tenant, svc.index().catalog.get_video(video_id, tenant=p.tenant))


@v1.patch("/videos/{video_id}", status_code=202, summary="Change a video's metadata",
          description="The fields given replace the stored ones (`extra` is merged key by key; a key set to"
                      " null is removed); the fields left out are kept. The metadata is part of every"
                      " segment's vectors and BM25 text, so the change runs as a job that re-analyses the"
                      " file (202 with the job); nothing changes: 200 with `changed: false`.",
          responses={200: {"content": {"application/json": {"example": {"changed": False}}}},
                     202: {"content": {"application/json": {"example": {"job_id": "j5c1e0d7a9b2f4e86",
                                                                         "status": "queued", "changed": True}}}}})
def patch_video(request: Request, video_id: str, body: MetadataFields,
                p: Principal = Depends(require("ingest"))) -> JSONResponse:
    from indexer.metadata import VideoMetadata

    svc = service(request)
    rec = svc.index().catalog.get_video(video_id, tenant=p.tenant)
    merged = VideoMetadata.of_record(rec).as_dict()
    given = body.model_dump(exclude_unset=True)
    for name in ("title", "description", "tags", "people"):
        if name in given:
            merged[name] = given[name] if given[name] is not None else ([] if name in ("tags", "people") else None)
    if "extra" in given:
        extra = {**merged["extra"], **(given["extra"] or {})}
        merged["extra"] = {k: v for k, v in extra.items() if v is not None}
    meta = VideoMetadata.from_dict(merged)
    if not meta.differs_from(rec):
        return JSONResponse({"changed": False, "video_id": video_id})
    if not os.path.isfile(rec.source):
        raise NotFoundError(f"the media of video {video_id} is no longer on the server, so it cannot be re-analysed",
                            hint="ingest the file again with the new metadata")
    job = svc.jobs.submit(JobRequest(p.tenant, rec.source, meta.title, svc.settings.ingest_speech,
                                     svc.settings.ingest_ocr, True, False, metadata=json.dumps(meta.as_dict())))
    return JSONResponse({"job_id": job.job_id, "status": job.status, "changed": True}, status_code=202,
                        headers={"Location": f"/v1/jobs/{job.job_id}"})


@v1.delete("/videos/{video_id}", summary="Delete a video (and its uploaded file)")
def delete_video(request: Request, video_id: str, p: Principal = Depends(require("ingest"))) -> dict:
    svc = service(request)
    with svc.writer.locked() as w:
        rec = w.delete_video(video_id, tenant=p.tenant)
    uploads = (svc.index_dir / "uploads" / p.tenant).resolve()
    src = Path(rec.source).resolve()
    if src.parent == uploads:  # the service's own copy of an upload goes with the video
        src.unlink(missing_ok=True)
    ThumbStore(svc.index_dir).remove(rec.video_id)
    return {"deleted": rec.video_id, "source": rec.source}


class SegmentListOut(BaseModel):
    video_id: str
    segments: list[SegmentOut]
    limit: int
    total: int = Field(description="the video's segments, over all pages")
    offset: int
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


@v1.get("/videos/{video_id}/segments", response_model=SegmentListOut,
        summary="A video's segments in time order, with the total and a cursor for the next page")
def list_segments(request: Request, video_id: str, limit: int = Query(500, ge=1, le=5000),
                  offset: int = Query(0, ge=0, le=INT64_MAX),
                  cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
                  p: Principal = Depends(require("search"))) -> dict:
    svc = service(request)
    offset = decode_cursor(cursor) or offset
    rec = svc.index().catalog.get_video(video_id, tenant=p.tenant)
    segs = svc.index().catalog.segments_of(rec.key)
    page = segs[offset:offset + limit]
    return {"video_id": video_id, "segments": [_segment_dict(svc, p.tenant, video_id, s) for s in page],
            "limit": limit, **page_info(len(segs), offset, len(page))}


# GET /videos/{video_id}/segments/{segment_id}/thumbnail and /preview: api.routes_media


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
    if svc.ingest_pool is not None:  # vidseek serve --ray: the analyses run on the cluster
        gauges["vidseek_ingest_ray_slots"] = ("Ingest analyses the Ray cluster runs at once.", svc.ingest_pool.slots())
        gauges["vidseek_ingest_ray_workers"] = ("Ray analysis actors started.", svc.ingest_pool.actors)
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
