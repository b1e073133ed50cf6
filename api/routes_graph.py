"""HTTP routes: knowledge graph (entities, their videos and neighbours, related videos).

Same rules as ``api.routes``: every route needs the ``search`` scope and sees only
the caller's tenant; another tenant's entity or video answers 404 exactly like a
missing one. The routes read the catalog through the service state's index handle.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.auth import Principal
from api.conventions import decode_cursor, page_info
from api.deps import INT64_MAX, links, require, service
from engine.graph.store import ENTITY_TYPES, GraphStore

__all__ = ["install", "EntityOut", "EntityListOut", "EntityDetailOut", "RelatedOut"]

router = APIRouter(prefix="/v1", tags=["graph"])


class EntityOut(BaseModel):
    entity_id: int = Field(examples=[12])
    type: str = Field(examples=["person"])
    name: str = Field(examples=["Jackie Chan"])
    aliases: list[str] = Field(examples=[["Jackie Chan", "成龙"]])
    num_videos: int = 0


class EntityListOut(BaseModel):
    query: str
    entities: list[EntityOut]
    total: int = Field(description="entities that match, over all pages")
    offset: int
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class EntityVideoOut(BaseModel):
    video_id: str
    title: str | None
    source: str
    relations: list[str]
    confidence: float
    modalities: list[str]
    moments: list[dict[str, Any]] = Field(description="segments with evidence: segment_id, start, end")
    media_url: str | None = None


class NeighbourOut(BaseModel):
    entity_id: int
    type: str
    name: str
    weight: float
    shared_videos: int
    relations: list[str]


class EntityDetailOut(EntityOut):
    alias_details: list[dict[str, Any]] = []
    videos: list[EntityVideoOut]
    neighbours: list[NeighbourOut]
    graph_png_url: str


class RelatedVideoOut(BaseModel):
    video_id: str
    title: str | None
    source: str
    score: float
    shared_entities: list[dict[str, Any]]
    reused_footage: list[dict[str, Any]] = Field(description="ranges: this (in the asked video), other, confidence")
    media_url: str | None = None


class RelatedOut(BaseModel):
    video_id: str
    entities: list[dict[str, Any]]
    related: list[RelatedVideoOut]


def _entity_out(e) -> dict:
    return {"entity_id": e.id, "type": e.type, "name": e.name, "aliases": [a.surface for a in e.aliases],
            "num_videos": e.num_videos}


@router.get("/entities", response_model=EntityListOut, summary="Find entities by name or alias",
            description="Best first (exact alias, then prefix, then substring; more videos first), with the"
                        " total and a cursor for the next page.")
def list_entities(request: Request, q: str = Query(..., min_length=1, max_length=200, examples=["成龙"]),
                  type: str | None = Query(None, description=f"one of {', '.join(ENTITY_TYPES)}"),
                  limit: int = Query(20, ge=1, le=200),
                  offset: int = Query(0, ge=0, le=INT64_MAX),
                  cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
                  p: Principal = Depends(require("search"))) -> dict:
    from engine.errors import UnknownNameError

    if type is not None and type not in ENTITY_TYPES:
        raise UnknownNameError("entity type", type, ENTITY_TYPES)
    offset = decode_cursor(cursor) or offset
    store = GraphStore(service(request).index().catalog)
    ents, total = store.search_entities_page(q, tenant=p.tenant, limit=limit, offset=offset,
                                             types=[type] if type else None)
    return {"query": q, "entities": [_entity_out(e) for e in ents], **page_info(total, offset, len(ents))}


@router.get("/entities/{entity_id}", response_model=EntityDetailOut,
            summary="One entity with its videos (and the moments with evidence) and neighbours")
def get_entity(request: Request, entity_id: int = Path(ge=0, le=INT64_MAX), videos: int = Query(50, ge=1, le=500),
               neighbours: int = Query(25, ge=1, le=200), p: Principal = Depends(require("search"))) -> dict:
    svc = service(request)
    cat = svc.index().catalog
    store = GraphStore(cat)
    e = store.get_entity(entity_id, tenant=p.tenant)
    evs = store.entity_videos(e.id, limit=videos)
    recs = cat.videos_by_keys([v.video_key for v in evs])
    segs = cat.get_segments([s for v in evs for s in v.segments[:20]])
    out_v = []
    for v in evs:
        rec = recs.get(v.video_key)
        if rec is None or rec.tenant != p.tenant:
            continue
        moments = [{"segment_id": s, "start": segs[s].start, "end": segs[s].end} for s in v.segments[:20] if s in segs]
        out_v.append({"video_id": rec.video_id, "title": rec.title, "source": rec.source,
                      "relations": list(v.relations), "confidence": v.confidence, "modalities": list(v.modalities),
                      "moments": moments, "media_url": links(svc, p.tenant, rec.video_id, None)["media_url"]})
    neigh = [{"entity_id": n.entity.id, "type": n.entity.type, "name": n.entity.name, "weight": round(n.weight, 4),
              "shared_videos": n.shared_videos, "relations": list(n.relations)}
             for n in store.neighbours(e.id, limit=neighbours)]
    return {**_entity_out(e), "alias_details": [a.__dict__ for a in e.aliases], "videos": out_v,
            "neighbours": neigh, "graph_png_url": f"/v1/entities/{e.id}/graph.png"}


@router.get("/entities/{entity_id}/graph.png", summary="A picture of the entity's neighbourhood",
            responses={200: {"content": {"image/png": {}}}}, response_class=Response)
def entity_png(request: Request, entity_id: int = Path(ge=0, le=INT64_MAX), p: Principal = Depends(require("search"))) -> Response:
    from engine.graph.algorithms import draw_png, neighbourhood

    cat = service(request).index().catalog
    e = GraphStore(cat).get_entity(entity_id, tenant=p.tenant)
    g = neighbourhood(cat, e.id, tenant=p.tenant)
    png = draw_png(g, title=f"{e.label()} ({e.type})")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


@router.get("/videos/{video_id}/related", response_model=RelatedOut,
            summary="Videos related through shared entities and reused footage")
def related(request: Request, video_id: str, limit: int = Query(20, ge=1, le=200),
            p: Principal = Depends(require("search"))) -> dict:
    svc = service(request)
    cat = svc.index().catalog
    rec = cat.get_video(video_id, tenant=p.tenant)
    store = GraphStore(cat)
    rel = store.related_videos(rec.key, limit=limit)
    recs = cat.videos_by_keys([r.video_key for r in rel])
    out = []
    for r in rel:
        o = recs.get(r.video_key)
        if o is None or o.tenant != p.tenant:
            continue
        out.append({"video_id": o.video_id, "title": o.title, "source": o.source, "score": r.score,
                    "shared_entities": [{"entity_id": i, "type": t, "name": n} for i, t, n in r.shared],
                    "reused_footage": list(r.reuse),
                    "media_url": links(svc, p.tenant, o.video_id, None)["media_url"]})
    ents = [{**_entity_out(e), "relations": list(rels), "confidence": c} for e, rels, c in store.video_entities(rec.key)]
    return {"video_id": rec.video_id, "entities": ents, "related": out}


def install(app: FastAPI) -> None:
    """Add the graph routes to ``app``."""
    app.include_router(router)
