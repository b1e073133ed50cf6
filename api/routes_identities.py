"""Face identities over HTTP (docs/identities.md): list, show, name, merge, split,
delete, the privacy switch, and a face image as a query. Reads need the ``search``
scope, edits ``ingest``; everything is the caller's tenant's (another tenant's
identity answers 404 like a missing one)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, File, Path, Query, Request, UploadFile
from pydantic import Field

from api.auth import Principal
from api.deps import INT64_MAX, require, service
from engine.identities import IdentityStore

router = APIRouter(prefix="/v1", tags=["identities"])

AnId = Annotated[int, Field(ge=0, le=INT64_MAX)]


def _ident(store: IdentityStore, iid: int, tenant: str, appearances: int = 50) -> dict:
    ident = store.get(iid, tenant=tenant)
    apps = store.appearances([iid])
    return {**ident.to_dict(), "appearances": [a.to_dict() for a in apps[:appearances]]}


@router.get("/identities", summary="The people seen in the library, most on screen first")
def list_identities(request: Request, named: bool | None = Query(None, description="only named (true) or unnamed"),
                    limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0, le=INT64_MAX),
                    p: Principal = Depends(require("search"))) -> dict:
    store = IdentityStore(service(request).index().catalog)
    return {**store.counts(p.tenant),
            "items": [i.to_dict() for i in store.list(tenant=p.tenant, named=named, limit=limit, offset=offset)]}


@router.get("/identities/settings", summary="Whether face identity is on for this index")
def get_settings(request: Request, p: Principal = Depends(require("search"))) -> dict:
    return {"enabled": IdentityStore(service(request).index().catalog).enabled()}


@router.put("/identities/settings", summary="Turn face identity on or off (off deletes every face descriptor)")
def put_settings(request: Request, enabled: bool = Body(..., embed=True),
                 p: Principal = Depends(require("admin"))) -> dict:
    with service(request).writer.locked() as w:
        return IdentityStore(w.catalog).set_enabled(enabled)


@router.get("/identities/{identity_id}", summary="One identity: its name, the name's evidence, its appearances")
def get_identity(request: Request, identity_id: int = Path(ge=0, le=INT64_MAX),
                 appearances: int = Query(50, ge=1, le=1000), p: Principal = Depends(require("search"))) -> dict:
    return _ident(IdentityStore(service(request).index().catalog), identity_id, p.tenant, appearances)


@router.put("/identities/{identity_id}/name", summary="Name or rename an identity (empty: back to the evidence)")
def rename(request: Request, identity_id: int = Path(ge=0, le=INT64_MAX),
           name: str = Body(..., embed=True, max_length=200), p: Principal = Depends(require("ingest"))) -> dict:
    with service(request).writer.locked() as w:
        store = IdentityStore(w.catalog)
        store.rename(identity_id, name, tenant=p.tenant)
        return _ident(store, identity_id, p.tenant)


@router.post("/identities/merge", summary="Merge identities into the first one")
def merge(request: Request, ids: list[AnId] = Body(..., embed=True, min_length=2, max_length=100),
          p: Principal = Depends(require("ingest"))) -> dict:
    with service(request).writer.locked() as w:
        store = IdentityStore(w.catalog)
        kept = store.merge(ids, tenant=p.tenant)
        return _ident(store, kept.id, p.tenant)


@router.post("/identities/{identity_id}/split", summary="Move some tracks (or videos) into a new identity")
def split(request: Request, identity_id: int = Path(ge=0, le=INT64_MAX),
          tracks: list[AnId] = Body([], embed=True, max_length=10_000),
          video_ids: list[str] = Body([], embed=True, max_length=10_000),
          name: str | None = Body(None, embed=True, max_length=200), p: Principal = Depends(require("ingest"))) -> dict:
    with service(request).writer.locked() as w:
        store = IdentityStore(w.catalog)
        rest, new = store.split(identity_id, tracks=tracks, video_ids=video_ids, name=name, tenant=p.tenant)
        return {"identity": _ident(store, rest.id, p.tenant), "new": _ident(store, new.id, p.tenant)}


@router.delete("/identities/{identity_id}", summary="Delete an identity, its tracks and its face descriptors")
def delete(request: Request, identity_id: int = Path(ge=0, le=INT64_MAX),
           p: Principal = Depends(require("ingest"))) -> dict:
    with service(request).writer.locked() as w:
        return IdentityStore(w.catalog).delete(identity_id, tenant=p.tenant)


@router.post("/identities/search", summary="A face image as a query: the moments where that person is on screen")
def face_search(request: Request, image: UploadFile = File(...), k: int = Query(10, ge=1, le=100),
                p: Principal = Depends(require("search"))) -> dict:
    from api.routes import load_query_image
    from query.people import face_query

    svc = service(request)
    rgb = load_query_image(svc, image)
    hits, considered = face_query(svc.index(), rgb, k=k, tenant=p.tenant)
    return {"hits": [h.to_dict() for h in hits], "identities": considered}


def install(app: FastAPI) -> None:
    """Add the identity routes to ``app``."""
    app.include_router(router)
