"""Batched search: ``POST /v1/search/batch`` answers several queries in one request.

The queries are planned one by one (encoding, intent), their dense runs go to the
vector store as one batch (``Searcher.search_many``: one vector search for the batch),
and each is finished as ``POST /v1/search`` would; result i is what that route returns
for query i (first page, same options). A node holding its shards on a GPU answers a
batch in about the time of one query (docs/gpu.md); the CPU path serves it too.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import links, require, service
from api.errors import ApiError
from query.levels import DEFAULT_MIN_CONFIDENCE
from query.parse import MAX_QUERY_CHARS

router = APIRouter(prefix="/v1", tags=["search"])

MAX_BATCH = 64


class BatchSearchBody(BaseModel):
    queries: list[str] = Field(min_length=1, max_length=MAX_BATCH,
                               examples=[["red boat leaving the harbour", "someone says thank you has:speech"]])
    k: int = Field(10, ge=1, le=1000)
    per_video: int = Field(1, ge=1, le=100)
    fusion: str = Field("auto", examples=["auto"])
    rerank: bool = False
    min_confidence: Literal["low", "medium", "high"] = Field(DEFAULT_MIN_CONFIDENCE)


@router.post("/search/batch", summary="Several searches in one request (one vector search for the batch)",
             description=f"Up to {MAX_BATCH} queries with the same options; `results[i]` is what POST /v1/search"
                         " returns for `queries[i]` (its first page).")
def search_batch(request: Request, body: BatchSearchBody, p: Principal = Depends(require("search"))) -> dict:
    from query.planner import SearchOptions

    svc = service(request)
    if body.k > svc.settings.max_k:
        raise ApiError("bad_input", f"k must be in 1..{svc.settings.max_k}, got {body.k}")
    for i, q in enumerate(body.queries):
        if not q.strip():
            raise ApiError("bad_input", f"queries[{i}] is empty", )
        if len(q) > MAX_QUERY_CHARS:
            raise ApiError("bad_input", f"queries[{i}] is longer than {MAX_QUERY_CHARS} characters")
    # As POST /v1/search: one more moment than asked says whether a next page exists.
    opts = SearchOptions(k=body.k + 1, per_video=body.per_video, fusion=body.fusion, rerank=body.rerank,
                         tenant=p.tenant, min_confidence=body.min_confidence)
    results = []
    for resp in svc.searcher().search_many(list(body.queries), options=opts):
        out = resp.to_dict()
        more = len(out["hits"]) > body.k
        out["hits"] = out["hits"][: body.k]
        out["offset"] = 0
        out["has_more"] = more
        for h in out["hits"]:
            h.update(links(svc, p.tenant, h["video_id"],
                           h.get("thumbnail_segment", (h.get("segment_ids") or [None])[0])))
        results.append(out)
    return {"results": results}


def install(app: FastAPI) -> None:
    """Add the batch search route to ``app``."""
    app.include_router(router)
