"""HTTP routes: covers and feedback.

- ``GET /v1/videos/{id}/cover``: the chosen cover (JPEG) for this request; the
  variant id, the impression id and the policy come back in the ``X-Cover-Variant``,
  ``X-Cover-Impression`` and ``X-Cover-Policy`` headers, and the impression is
  logged. ``context`` (a text, e.g. the user's query or recent searches) turns on the
  contextual bandit: its embedding in the covers' visual space is the feature vector.
- ``GET /v1/videos/{id}/covers``: every variant with scores, reasons and bandit stats.
- ``POST /v1/feedback``: a click on an impression (or on a variant's latest one).

Covers are computed on the first request for a video (or by ``vidseek covers``). The
cover service and the context-vector cache belong to the service state
(``ServiceState.covers()``, ``context_vectors``); the bandit figures of ``/covers`` are
the ones the policy samples with (``engine.covers.beta_params``).
Same tenancy as the other routes: another tenant's video or impression is a 404.
Like thumbnails, the cover and feedback accept a signed link ``t`` from a search hit,
because an ``<img>`` cannot send a key.
"""
from __future__ import annotations

import json

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import authenticate, require, service, token, video_reader_principal
from api.errors import ApiError
from api.state import ServiceState
from engine.covers import beta_params
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


def _context_vector(svc: ServiceState, text: str) -> np.ndarray:
    """The context text in the covers' space (the image encoder's text side), cached."""
    enc = svc.image_encoder()
    key = (enc.info.name + ":" + enc.info.version, text)
    return svc.context_vectors.get(key, lambda: np.asarray(enc.encode_text([text])[0], dtype=np.float32))


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
    if policy not in _POLICIES:
        raise ApiError("bad_input", f"unknown policy {policy!r}; valid: {list(_POLICIES)}")
    p = video_reader_principal(request, video_id, t)
    svc = service(request)
    index = svc.index()
    rec = index.catalog.get_video(video_id, tenant=p.tenant)
    ctx = _context_vector(svc, context) if context and context.strip() else None
    served = svc.covers().serve(rec, index.config, aspect=aspect, context=ctx, policy=policy,
                                tenant=p.tenant, user=user, image_encoder=svc.image_encoder())
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
    svc = service(request)
    index = svc.index()
    rec = index.catalog.get_video(video_id, tenant=p.tenant)
    cs = svc.covers()
    variants = cs.variants(rec, index.config, compute=compute, image_encoder=svc.image_encoder())
    arms = cs.store.arm_states(variants)
    th = cs.thompson
    out = []
    for v, arm in zip(variants, arms):
        d = v.as_dict()
        d.pop("files", None)
        # The Beta posterior Thompson sampling draws from (with its clamps), not a copy.
        a, b = beta_params(arm, th.prior_strength, th.base_ctr)
        d["bandit"] = {"posterior_mean_ctr": a / (a + b), "alpha": a, "beta": b,
                       "linucb_updates": int(arm.a is not None)}
        out.append(d)
    return {"video_id": video_id, "variants": out,
            "policy": {"default": "thompson", "with_context": "linucb", "prior_strength": th.prior_strength,
                       "base_ctr": th.base_ctr, "linucb_alpha": cs.linucb.alpha}}


async def feedback(request: Request) -> dict:
    from starlette.concurrency import run_in_threadpool

    try:
        body = FeedbackBody.model_validate(json.loads(await request.body() or b"null"))
    except (ValueError, TypeError) as e:
        raise InputError(f"the JSON body is invalid: {e}") from None
    if not body.impression and not (body.video_id and body.variant_id):
        raise ApiError("bad_input", "send {\"impression\": ...} or {\"video_id\": ..., \"variant_id\": ...}")
    if body.t and not token(request):
        if not body.video_id:
            raise ApiError("bad_input", "a signed link 't' needs the 'video_id' it was issued for")
        p = video_reader_principal(request, body.video_id, body.t)
    else:
        p = authenticate(request, "search")
    return await run_in_threadpool(_record_click, request, p, body)


def _record_click(request: Request, p: Principal, body: FeedbackBody) -> dict:
    svc = service(request)
    cs = svc.covers()
    rec = svc.index().catalog.get_video(body.video_id, tenant=p.tenant) if body.video_id else None
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
    """Add the cover and feedback routes to ``app`` (the state closes the cover service)."""
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
