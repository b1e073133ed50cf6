"""HTTP routes: covers and feedback.

- ``GET /v1/videos/{id}/cover``: the chosen cover (JPEG) for this request; the
  variant id, the impression id and the policy come back in the ``X-Cover-Variant``,
  ``X-Cover-Impression`` and ``X-Cover-Policy`` headers, and the impression is
  logged. ``context`` (a text, e.g. the user's query or recent searches) turns on the
  contextual bandit: its embedding in the covers' visual space is the feature vector.
- ``GET /v1/videos/{id}/covers``: every variant with scores, reasons and bandit stats.
- ``POST /v1/feedback``: a click on an impression (or on a variant's latest one).

Covers are computed on the first request for a video (or by ``vidseek covers``).
Same tenancy as the other routes: another tenant's video or impression is a 404.
Like thumbnails, the cover and feedback accept a signed link ``t`` from a search hit,
because an ``<img>`` cannot send a key.
"""
from __future__ import annotations

import json
import threading
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.auth import Principal
from api.routes import _authenticate, _svc, _token, _video_reader_principal, require
from engine.errors import InputError, NotFoundError

__all__ = ["install", "FeedbackBody"]

_POLICIES = ("auto", "thompson", "linucb", "random", "best_quality")
_ASPECT_PATTERN = r"^[0-9]{1,3}:[0-9]{1,3}$"


class FeedbackBody(BaseModel):
    """A click. Name the impression (from ``X-Cover-Impression``), or the video and
    the variant (the click attaches to that variant's latest unclicked impression).
    ``t`` is a search hit's signed link, for pages without a key."""

    impression: str | None = Field(None, max_length=64, examples=["i3c838316b8fb50216b4441e2"])
    video_id: str | None = Field(None, max_length=64)
    variant_id: int | None = Field(None, ge=1, le=2**62)
    t: str | None = Field(None, max_length=64)


def _covers(request: Request):
    """The app's CoverService, made on first use for the current service state."""
    from indexer.covers.service import CoverService

    svc = _svc(request)
    app = request.app
    lock = app.state.covers_lock
    with lock:
        cur = getattr(app.state, "covers", None)
        if cur is None or getattr(app.state, "covers_svc", None) is not svc:
            if cur is not None:
                cur.close()
            cur = CoverService(svc.index_dir)
            app.state.covers = cur
            app.state.covers_svc = svc
        return cur


def _image_encoder(svc):
    from engine.models.registry import get_image_encoder

    cfg = svc.reader.config
    return get_image_encoder(cfg.image_encoder, **cfg.image_options)


_ctx_cache: dict[tuple[str, str], np.ndarray] = {}
_ctx_lock = threading.Lock()


def _context_vector(svc, text: str) -> np.ndarray:
    """The context text in the covers' space (the image encoder's text side), cached."""
    enc = _image_encoder(svc)
    key = (enc.info.name + ":" + enc.info.version, text)
    with _ctx_lock:
        hit = _ctx_cache.get(key)
    if hit is not None:
        return hit
    vec = np.asarray(enc.encode_text([text])[0], dtype=np.float32)
    with _ctx_lock:
        if len(_ctx_cache) > 1024:
            _ctx_cache.clear()
        _ctx_cache[key] = vec
    return vec


def get_cover(
    request: Request,
    video_id: str,
    aspect: str = Query("16:9", pattern=_ASPECT_PATTERN, description="W:H, e.g. 16:9, 4:3, 3:4, 1:1"),
    context: str | None = Query(None, max_length=2000,
                                description="audience or user context text (e.g. recent searches): "
                                            "turns on the contextual bandit"),
    user: str | None = Query(None, max_length=128, description="user id, logged with the impression"),
    policy: str = Query("auto", description="auto (LinUCB with context, else Thompson), thompson, linucb, "
                                            "random or best_quality"),
    t: str | None = Query(None, description="signed link from a search hit"),
) -> Response:
    from api.app import ApiError

    if policy not in _POLICIES:
        raise ApiError("bad_input", f"unknown policy {policy!r}; valid: {list(_POLICIES)}")
    p = _video_reader_principal(request, video_id, t)
    svc = _svc(request)
    rec = svc.reader.catalog.get_video(video_id, tenant=p.tenant)
    ctx = _context_vector(svc, context) if context and context.strip() else None
    served = _covers(request).serve(rec, svc.reader.config, aspect=aspect, context=ctx, policy=policy,
                                    tenant=p.tenant, user=user, image_encoder=_image_encoder(svc))
    headers = {
        "X-Cover-Variant": str(served.variant.id),
        "X-Cover-Impression": served.impression.token,
        "X-Cover-Policy": served.choice.policy,
        # Personalised and counted: every display must come back here.
        "Cache-Control": "no-store",
    }
    return Response(served.path.read_bytes(), media_type="image/jpeg", headers=headers)


def list_covers(request: Request, video_id: str,
                compute: bool = Query(True, description="compute the covers now if there are none"),
                p: Principal = Depends(require("search"))) -> dict:
    svc = _svc(request)
    rec = svc.reader.catalog.get_video(video_id, tenant=p.tenant)
    cs = _covers(request)
    variants = cs.variants(rec, svc.reader.config, compute=compute, image_encoder=_image_encoder(svc))
    arms = cs.store.arm_states(variants)
    th = cs.thompson
    out = []
    for v, arm in zip(variants, arms):
        d = v.as_dict()
        d.pop("files", None)
        a = (th.base_ctr * (0.5 + v.score)) * th.prior_strength + v.clicks
        b = (1 - th.base_ctr * (0.5 + v.score)) * th.prior_strength + max(0, v.impressions - v.clicks)
        d["bandit"] = {"posterior_mean_ctr": a / (a + b), "alpha": a, "beta": b,
                       "linucb_updates": int(arm.a is not None)}
        out.append(d)
    return {"video_id": video_id, "variants": out,
            "policy": {"default": "thompson", "with_context": "linucb", "prior_strength": th.prior_strength,
                       "base_ctr": th.base_ctr, "linucb_alpha": cs.linucb.alpha}}


async def feedback(request: Request) -> dict:
    from starlette.concurrency import run_in_threadpool

    from api.app import ApiError

    try:
        body = FeedbackBody.model_validate(json.loads(await request.body() or b"null"))
    except (ValueError, TypeError) as e:
        raise InputError(f"the JSON body is invalid: {e}") from None
    if not body.impression and not (body.video_id and body.variant_id):
        raise ApiError("bad_input", "send {\"impression\": ...} or {\"video_id\": ..., \"variant_id\": ...}")
    if body.t and not _token(request):
        if not body.video_id:
            raise ApiError("bad_input", "a signed link 't' needs the 'video_id' it was issued for")
        p = _video_reader_principal(request, body.video_id, body.t)
    else:
        p = _authenticate(request, "search")
    return await run_in_threadpool(_record_click, request, p, body)


def _record_click(request: Request, p: Principal, body: FeedbackBody) -> dict:
    svc = _svc(request)
    cs = _covers(request)
    rec = svc.reader.catalog.get_video(body.video_id, tenant=p.tenant) if body.video_id else None
    if rec is not None and body.impression:
        # A signed link grants one video: the impression must be of that video.
        imp = cs.store.get_impression(body.impression, tenant=p.tenant)
        if imp.video != rec.key:
            raise NotFoundError(f"no impression {body.impression!r} of video {body.video_id}")
    res = cs.click(tenant=p.tenant, impression=body.impression, video=rec, variant_id=body.variant_id)
    v = cs.store.variant(res.impression.cover)
    return {"recorded": res.recorded, "impression": res.impression.token, "variant_id": v.id,
            "clicks": v.clicks, "impressions": v.impressions}


def install(app: FastAPI) -> None:
    """Add the cover and feedback routes to ``app`` and close their catalog
    connection when the app shuts down."""
    app.state.covers_lock = threading.Lock()
    app.add_api_route(
        "/v1/videos/{video_id}/cover", get_cover, methods=["GET"], response_class=Response,
        summary="The cover chosen for this request (JPEG); logs an impression",
        responses={200: {"content": {"image/jpeg": {}}, "headers": {
            "X-Cover-Variant": {"description": "variant id", "schema": {"type": "string"}},
            "X-Cover-Impression": {"description": "impression id for POST /v1/feedback",
                                   "schema": {"type": "string"}},
            "X-Cover-Policy": {"description": "the policy that chose it", "schema": {"type": "string"}}}}},
    )
    app.add_api_route("/v1/videos/{video_id}/covers", list_covers, methods=["GET"],
                      summary="A video's cover variants: scores, reasons, bandit stats")
    app.add_api_route("/v1/feedback", feedback, methods=["POST"], summary="Record a click on a cover",
                      openapi_extra={"requestBody": {"required": True, "content": {
                          "application/json": {"schema": FeedbackBody.model_json_schema(),
                                               "example": {"impression": "i3c838316b8fb50216b4441e2"}}}}})

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> Any:
        async with inner(a) as state:
            try:
                yield state
            finally:
                with a.state.covers_lock:
                    cur = getattr(a.state, "covers", None)
                    if cur is not None:
                        cur.close()
                    a.state.covers = None
                    a.state.covers_svc = None

    app.router.lifespan_context = lifespan
