"""HTTP routes: what a result card shows and plays.

- ``GET /v1/videos/{id}/segments/{seg}/thumbnail``: the segment's moment thumbnail, a
  JPEG of its best keyframe made at ingest (``indexer.thumbs``), served from the index
  folder; a video indexed before thumbnails existed (or another ``size``) gets the frame
  decoded from the media, cached in memory.
- ``GET /v1/videos/{id}/preview``: a browser-playable version of the video (HTTP
  Range): the original when a browser plays it as it is, else an H.264/AAC MP4 made
  on the first request and kept within the preview budget (``indexer.previews``).
  ``X-Preview: original|transcoded`` says which. The original stays at ``/media``.

Both accept an API key or the signed link ``t`` that each search hit carries (an
``<img>`` or ``<video>`` cannot send headers); another tenant's video is a 404.
"""
from __future__ import annotations

import io
import os

from fastapi import APIRouter, FastAPI, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, Response

from api.deps import INT64_MAX, service, video_reader_principal
from api.ranged import RangeFileResponse
from engine.errors import NotFoundError

__all__ = ["install", "DEFAULT_THUMB_SIZE"]

DEFAULT_THUMB_SIZE = 320  # indexer.thumbs.THUMB_SIDE: the size stored at ingest
_CACHE = {"Cache-Control": "private, max-age=3600"}

router = APIRouter(prefix="/v1")


@router.get("/videos/{video_id}/segments/{segment_id}/thumbnail", summary="A moment's frame as JPEG",
            responses={200: {"content": {"image/jpeg": {}}}}, response_class=Response)
def thumbnail(request: Request, video_id: str, segment_id: int = PathParam(ge=0, le=INT64_MAX),
              t: str | None = Query(None),
              size: int = Query(DEFAULT_THUMB_SIZE, ge=32, le=1280)) -> Response:
    from indexer.thumbs import ThumbStore

    p = video_reader_principal(request, video_id, t)
    svc = service(request)
    cat = svc.index().catalog
    rec = cat.get_video(video_id, tenant=p.tenant)
    seg = next((s for s in cat.segments_of(rec.key) if s.id == segment_id), None)
    if seg is None:
        raise NotFoundError(f"video {video_id} has no segment {segment_id}",
                            hint=f"GET /v1/videos/{video_id}/segments lists them")
    stored = ThumbStore(svc.index_dir).get(video_id, segment_id) if size == DEFAULT_THUMB_SIZE else None
    if stored is not None:
        return Response(stored.read_bytes(), media_type="image/jpeg", headers={**_CACHE, "X-Thumbnail": "stored"})
    if not os.path.isfile(rec.source):
        raise NotFoundError(f"the media of video {video_id} is no longer on the server")
    at = seg.keyframe_times[0] if seg.keyframe_times else (seg.start + seg.end) / 2

    def make() -> bytes:
        from PIL import Image

        from indexer.media import frames_at

        frames = list(frames_at(rec.source, [at], size=size))
        buf = io.BytesIO()
        Image.fromarray(frames[0][1]).save(buf, format="JPEG", quality=82)
        return buf.getvalue()

    data = svc.thumbs.get((rec.source, rec.content_hash, at, size), make)
    return Response(data, media_type="image/jpeg", headers={**_CACHE, "X-Thumbnail": "decoded"})


@router.get("/videos/{video_id}/preview", summary="The video in a form every browser plays, with HTTP Range",
            responses={200: {"content": {"video/mp4": {}, "video/webm": {}}},
                       206: {"description": "Partial content (Range)"}},
            response_class=FileResponse)
def preview(request: Request, video_id: str, t: str | None = Query(None)) -> RangeFileResponse:
    from indexer.previews import media_type_of, plays_in_browser

    p = video_reader_principal(request, video_id, t)
    svc = service(request)
    rec = svc.index().catalog.get_video(video_id, tenant=p.tenant)
    if plays_in_browser(rec.container, rec.video_codec, rec.audio_codec):
        if not os.path.isfile(rec.source):
            raise NotFoundError(f"the media of video {video_id} is no longer on the server")
        return RangeFileResponse(rec.source, media_type=media_type_of(rec.container),
                                 headers={**_CACHE, "X-Preview": "original"})
    if svc.previews.cached(rec.content_hash) is None and not os.path.isfile(rec.source):
        raise NotFoundError(f"the media of video {video_id} is no longer on the server")
    # made on the first request (the request waits), served from the cache after
    path = svc.previews.get(rec.source, rec.content_hash, rec.duration, rec.has_audio)
    return RangeFileResponse(path, media_type="video/mp4", headers={**_CACHE, "X-Preview": "transcoded"})


def install(app: FastAPI) -> None:
    """Add the thumbnail and preview routes to ``app``."""
    app.include_router(router)
