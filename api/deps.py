"""What a route needs before it does anything: the service state, who is calling (API
key, local mode or a signed link) with which scopes, and the signed links it hands out.

- ``service(request)``: the ``ServiceState`` (503 ``not_ready`` while starting or stopping);
- ``token(request)``: the API key of ``Authorization: Bearer`` or ``X-API-Key``;
- ``authenticate(request, scope)``: the ``Principal`` with that scope, rate-limited;
- ``require(scope)``: the same as a FastAPI dependency;
- ``video_reader_principal(request, video_id, t)``: a key, or a signed link ``t`` from
  a search result (``<img>`` and ``<video>`` cannot send headers);
- ``links(state, tenant, video_id, segment_id)``: signed thumbnail, media and preview URLs.
"""
from __future__ import annotations

import os
import re
from typing import Callable

from fastapi import Request

from api.auth import Principal, validate_tenant
from api.discovery import OWNER_HEADER, TENANT_HEADER
from api.errors import ApiError
from api.state import ServiceState
from engine.errors import NotFoundError

__all__ = ["service", "token", "authenticate", "require", "video_reader_principal", "links", "LINK_TOKEN",
           "INT64_MAX"]

# The largest integer id or offset a route accepts: SQLite binds 64-bit signed integers,
# so a larger one would raise OverflowError (a 500). Integer path and query parameters
# are bounded by it at the edge (a 400 naming the parameter).
INT64_MAX = 2**63 - 1

# The shape LinkSigner.sign makes: EXPIRY.MAC, ASCII digits and 32 hex digits. Anything
# else is refused before verify(): int() of a long or non-ASCII digit string and
# compare_digest() of non-ASCII text raise instead of returning False.
LINK_TOKEN = re.compile(r"[0-9]{1,15}\.[0-9a-f]{32}", re.ASCII)


def service(request: Request) -> ServiceState:
    """The app's service state, ready to serve."""
    svc = getattr(request.app.state, "svc", None)
    if svc is None or not svc.ready:
        raise ApiError("not_ready", "the service is starting or stopping; retry shortly")
    return svc


def token(request: Request) -> str | None:
    """The API key the request carries, if any."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def authenticate(request: Request, scope: str) -> Principal:
    """The caller, who must hold ``scope``; also the rate limit of its key."""
    svc = service(request)
    tok = token(request)
    owner = request.headers.get(OWNER_HEADER)
    if owner and not tok:
        if not svc.is_owner(owner):
            raise ApiError("unauthorized", "the owner token is not this server's (it changes at each start;"
                           " read it again from the index folder's server.json)")
        p = Principal(validate_tenant(request.headers.get(TENANT_HEADER) or "default"), key_id=None, owner=True)
        request.state.principal = p
        return p  # the index's own user: every scope, no rate limit
    if tok:
        key = svc.keys.verify(tok)
        if key is None:
            raise ApiError("unauthorized", "the API key is invalid or revoked",
                           headers={"WWW-Authenticate": "Bearer"})
        p = Principal(key.tenant, frozenset(key.scopes), key.key_id)
    elif svc.local_mode:
        p = Principal("default", key_id=None)
    else:
        raise ApiError("unauthorized", "an API key is required: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = p
    if not p.has(scope):
        raise ApiError("forbidden", f"this key lacks the {scope!r} scope")
    ok, wait = svc.limiter.allow(p.key_id or "local", rate=svc.rate())
    if not ok:
        raise ApiError("rate_limited", f"too many requests for this key; retry in {wait:.2f} s",
                       headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    return p


def require(scope: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller, who must hold ``scope``."""
    def dep(request: Request) -> Principal:
        return authenticate(request, scope)

    dep.__name__ = f"require_{scope}"
    return dep


def video_reader_principal(request: Request, video_id: str, t: str | None) -> Principal:
    """Thumbnails, media, clips and covers accept a key, or a signed link (``t``) from a
    search result, because <img> and <video> elements cannot send headers."""
    if t and not token(request):
        svc = service(request)
        try:
            owner = svc.index().catalog.get_video(video_id).tenant
        except NotFoundError:
            owner = None
        if owner is None or not LINK_TOKEN.fullmatch(t) or not svc.signer.verify(t, video_id, owner):
            raise ApiError("unauthorized", "the link is invalid or expired; search again for a fresh one")
        p = Principal(owner, frozenset({"search"}), None)
        request.state.principal = p
        return p
    return authenticate(request, "search")


def links(svc: ServiceState, tenant: str, video_id: str, segment_id: int | None) -> dict[str, str | None]:
    """Signed ``thumbnail_url`` (None without a segment), ``media_url`` (the original)
    and ``preview_url`` (a version every browser plays, api.routes_media) of a video."""
    t = svc.signer.sign(tenant, video_id)
    thumb = f"/v1/videos/{video_id}/segments/{segment_id}/thumbnail?t={t}" if segment_id is not None else None
    return {"thumbnail_url": thumb, "media_url": f"/v1/videos/{video_id}/media?t={t}",
            "preview_url": f"/v1/videos/{video_id}/preview?t={t}"}


def path_inside(path: str, roots: tuple[str, ...]) -> bool:
    """Whether the resolved ``path`` lies in one of ``roots`` (each resolved too)."""
    for r in roots:
        root = os.path.realpath(r)
        if os.path.commonpath([path, root]) == root:
            return True
    return False


def allowed_real_path(svc: ServiceState, tenant: str, path: str, *, name: str, off: str) -> str:
    """``path`` resolved (``..`` and every symlink, so a link out of a root is refused),
    after checking that ``tenant`` may read it: the server allows the tenant folders
    (``off``: the message when it allows none), ``path`` is absolute, and it lies in
    one of them and not in the index folder, which holds every tenant's uploads.
    ``name`` is what the client called it (path, source)."""
    roots = svc.settings.roots_for(tenant)  # each tenant its own: never another tenant's files
    if not roots:
        raise ApiError("path_not_allowed", off)
    if "\x00" in path or not os.path.isabs(path):
        raise ApiError("bad_input", f"{name} must be an absolute path on the server")
    real = os.path.realpath(path)
    if not path_inside(real, roots) or path_inside(real, (str(svc.index_dir),)):
        raise ApiError("path_not_allowed", f"the {name} is outside the folders tenant {tenant!r} may ingest from")
    return real
