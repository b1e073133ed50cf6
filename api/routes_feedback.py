"""HTTP routes: feedback on search results, and the learned ranking's controls.

- ``POST /v1/search/feedback`` (scope ``search``; ``/v1/feedback`` is the cover
  bandit's): one event, or ``{"events": [...]}`` (up to 100, each stored in its own
  transaction). An event names the ``search_id`` of
  a search this tenant made (the service logged its impression when it answered);
  another tenant's or an unknown search id answers 404. Kinds: click, play, dwell
  (``value``: seconds watched), skip, not_relevant (each with the result's 0-based
  ``position``), reformulation (``next_search_id`` and/or ``query``: what the user
  searched instead). ``event_id`` makes a retried post idempotent. ``user`` is stored
  as a keyed hash unless the index's learn config says otherwise.
- ``GET /v1/learn`` (scope ``admin``): the live model, the freeze switch, the
  challenger, the event counts of the caller's tenant, interleaving tallies, the last retrain.
- ``POST /v1/learn/retrain`` (``admin``): retrain now (``query.learn.retrain``).
- ``POST /v1/learn/freeze`` (``admin``): ``{"frozen": true|false}``.

The logic is ``query.learn``'s; this module only translates.
"""
from __future__ import annotations

from typing import Any, Union

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import require, service
from api.errors import ApiError
from query.learn.store import EVENT_KINDS, Event

__all__ = ["install", "FeedbackEventIn", "FeedbackBatchIn"]

router = APIRouter(prefix="/v1", tags=["feedback"])
MAX_EVENTS = 100


class FeedbackEventIn(BaseModel):
    kind: str = Field(description=f"one of {', '.join(EVENT_KINDS[1:])}", examples=["click"])
    search_id: str = Field(min_length=1, max_length=64, description="the search_id of the search response")
    position: int | None = Field(None, ge=0, le=999, description="0-based position of the result in the list")
    video_id: str | None = Field(None, max_length=200)
    value: float | None = Field(None, description="dwell: seconds watched", examples=[12.5])
    query: str | None = Field(None, max_length=2000, description="reformulation: the new query")
    next_search_id: str | None = Field(None, max_length=64, description="reformulation: the search that followed")
    user: str | None = Field(None, max_length=200, description="a user or session id (stored hashed)")
    event_id: str | None = Field(None, min_length=8, max_length=64, description="makes a retried post idempotent")


class FeedbackBatchIn(BaseModel):
    events: list[FeedbackEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class FreezeIn(BaseModel):
    frozen: bool


@router.post("/search/feedback", summary="Record what the user did with search results")
def post_feedback(body: Union[FeedbackBatchIn, FeedbackEventIn], request: Request,
                  p: Principal = Depends(require("search"))) -> dict[str, Any]:
    svc = service(request)
    store = svc.learning.store
    events = body.events if isinstance(body, FeedbackBatchIn) else [body]
    parsed = []
    for e in events:
        if e.kind == "impression":
            raise ApiError("bad_input", "impressions are recorded by the service when it answers a search")
        payload = {"next_search_id": e.next_search_id} if e.next_search_id else {}
        parsed.append(Event(e.kind, e.search_id, e.position, e.video_id, e.value, e.query, e.user, e.event_id,
                            payload))
    for ev in parsed:  # all checked before any is stored
        if not store.has_search(p.tenant, ev.search_id):
            raise ApiError("not_found", f"no search {ev.search_id!r} of this tenant was logged")
    ids, dup = [], 0
    for ev in parsed:
        eid, stored = store.record(p.tenant, ev)
        ids.append(eid)
        dup += not stored
    return {"stored": len(ids) - dup, "duplicates": dup, "event_ids": ids}


@router.get("/learn", summary="The learned ranking: live model, freeze switch, feedback counts")
def learn_status(request: Request, p: Principal = Depends(require("admin"))) -> dict[str, Any]:
    svc = service(request)
    out = svc.learning.status()
    out["events"] = svc.learning.store.count(p.tenant)  # the caller's tenant only
    out["interleaving"] = {k: t.to_dict() for k, t in svc.learning.store.interleaving(p.tenant).items()}
    return out


@router.post("/learn/retrain", summary="Retrain the ranker from feedback now (it goes live only past the gate)")
def learn_retrain(request: Request, p: Principal = Depends(require("admin"))) -> dict[str, Any]:
    svc = service(request)
    return svc.learning.retrain(svc.local_searcher())


@router.post("/learn/freeze", summary="Freeze (or resume) learning: no new model goes live while frozen")
def learn_freeze(body: FreezeIn, request: Request, p: Principal = Depends(require("admin"))) -> dict[str, Any]:
    svc = service(request)
    svc.learning.models.freeze(body.frozen)
    return {"frozen": svc.learning.models.frozen, "live": svc.learning.ranking.version}


def install(app: FastAPI) -> None:
    """Add the feedback and learning routes to ``app``."""
    app.include_router(router)
