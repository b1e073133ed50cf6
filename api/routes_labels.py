"""The label timeline of a video: ``GET /v1/videos/{video_id}/labels``."""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from api.auth import Principal
from api.deps import require, service
from engine.catalog.schema_labels import LABEL_KINDS
from engine.errors import InputError

router = APIRouter(prefix="/v1", tags=["labels"])


@router.get("/videos/{video_id}/labels", summary="What the frame labellers saw, as a timeline")
def video_labels(request: Request, video_id: str,
                 kind: list[str] | None = Query(None, description=f"only these kinds: {', '.join(LABEL_KINDS)}"),
                 min_score: float | None = Query(None, ge=0.0, le=1.0,
                                                 description="keep labels at this score or more (default: what "
                                                             "search shows, per kind)"),
                 faces: bool = Query(True, description="include each detected face (box, gender, age, expression)"),
                 p: Principal = Depends(require("search"))) -> dict:
    from query.label_timeline import label_timeline

    bad = sorted(set(kind or ()) - set(LABEL_KINDS))
    if bad:
        raise InputError(f"unknown label kind {bad[0]!r}", hint=f"use one of {', '.join(LABEL_KINDS)}")
    svc = service(request)
    idx = svc.index()
    rec = idx.catalog.get_video(video_id, tenant=p.tenant)
    return label_timeline(idx, rec, kinds=kind, min_score=min_score, faces=faces)


def install(app: FastAPI) -> None:
    """Add the label routes to ``app``."""
    app.include_router(router)
