"""Errors of the service: ``ApiError``, the code -> HTTP status table, the one error body
every failure answers with, and the exception handlers that produce it.

Every error is ``{"error": {"code": ..., "message": ...}}``: an ``ApiError`` (auth,
scope, size, rate) with its own status, a core ``VidseekError`` mapped by its code
(unknown codes are server-side, 500), a request-validation failure (400
``bad_input``), a Starlette HTTP error (404, 405, 413) or anything unexpected (500
``internal_error``, logged with its traceback).

No message shows a client where the server keeps its files: ``redact_paths`` replaces
every path under the index folder (uploads, temporary files, reels) with
``<server path>`` in each error body (the full message stays in the server's log).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import VidseekError

__all__ = ["STATUS_BY_CODE", "ApiError", "ErrorDetail", "ErrorBody", "error_body", "install_error_handlers",
           "redact_paths", "SERVER_PATH"]

log = logging.getLogger("vidseek.api")

# Named core errors -> HTTP status. Codes not listed are server-side (500).
STATUS_BY_CODE: dict[str, int] = {
    "bad_query": 400,
    "bad_input": 400,
    "unknown_name": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "path_not_allowed": 403,
    "not_a_file": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    "index_locked": 409,
    "too_large": 413,
    "bad_media": 415,
    "unsupported_content_type": 415,
    "rate_limited": 429,
    "not_ready": 503,
    "shutting_down": 503,
}


class ApiError(Exception):
    """An HTTP-level failure with a stable code (auth, scope, size, rate)."""

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, 400)
        self.headers = headers


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


SERVER_PATH = "<server path>"


def redact_paths(message: str, private: Iterable[str | Path]) -> str:
    """``message`` with every path inside the ``private`` folders (as given and with
    links resolved) replaced by ``<server path>``."""
    roots = {os.path.normpath(str(r)) for r in private if str(r)} | {os.path.realpath(str(r)) for r in private if str(r)}
    for root in sorted(roots - {os.sep, "."}, key=len, reverse=True):
        # the folder itself or anything under it, up to a space or quote; punctuation
        # that ends the sentence (``path: reason``) stays
        pattern = re.escape(root) + r"(?=$|[/\s'\":,;.)\]])(?:/[^\s'\"]*)?"
        message = re.sub(pattern, lambda m: SERVER_PATH + m.group()[len(m.group().rstrip(":,;.)")):], message)
    return message


def _public(request: Request, message: str) -> str:
    svc = getattr(request.app.state, "svc", None)
    index_dir = getattr(svc, "index_dir", None)
    return redact_paths(message, [index_dir]) if index_dir is not None else message


# -- OpenAPI models ---------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no video with id 'v0123' in this index"])


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


# -- handlers ------------------------------------------------------------------------------
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, _public(request, exc.message)), status_code=exc.status,
                        headers=exc.headers)


async def _core_error(request: Request, exc: VidseekError) -> JSONResponse:
    status = STATUS_BY_CODE.get(exc.code, 500)
    if status >= 500:
        log.error("core error on %s: %s", request.url.path, exc)
    return JSONResponse(error_body(exc.code, _public(request, str(exc))), status_code=status)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {e.get('msg')}")
    return JSONResponse(error_body("bad_input", _public(request, "; ".join(parts) or "invalid request")),
                        status_code=400)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
    msg = str(exc.detail) if exc.detail else "error"
    if exc.status_code == 404:
        msg = f"no route {request.method} {request.url.path}"
    return JSONResponse(error_body(code, msg), status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", f"{type(exc).__name__}: the server failed; see its log"),
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure of ``app`` with the JSON error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(VidseekError, _core_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
