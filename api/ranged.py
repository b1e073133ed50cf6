"""File responses whose HTTP Range errors are the service's JSON error body.

Starlette's ``FileResponse`` serves Range requests itself and answers a malformed
Range with a plain-text 400 and an unsatisfiable one with an empty 416. These classes
raise ``ApiError`` instead, before anything is sent, so the app's error handlers answer
``{"error": {"code": "bad_range" | "range_not_satisfiable", "message": ...}}`` like any
other error (and a 416 keeps its ``Content-Range: bytes */SIZE``). Every file the
service streams (media, highlight reels, the web page's static files) goes through them.
"""
from __future__ import annotations

import os

from starlette.datastructures import Headers
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from api.errors import ApiError

__all__ = ["RangeFileResponse", "RangeStaticFiles"]


class RangeFileResponse(FileResponse):
    """``FileResponse`` with JSON Range errors (see the module docstring)."""

    # Starlette parses Range in this classmethod and turns its two exceptions into plain
    # text; overriding it keeps Starlette's parsing (single and multi-range) and changes
    # only the answer. tests/test_api.py::test_media_full_and_range notices if a Starlette
    # release stops calling it.
    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader as e:
            raise ApiError("bad_range", f"malformed Range header {http_range[:200]!r} ({e.content});"
                           " use bytes=START-END", status=400) from None
        except RangeNotSatisfiable as e:
            raise ApiError("range_not_satisfiable",
                           f"Range {http_range[:200]!r} starts past the end of the file ({e.max_size} bytes)",
                           status=416, headers={"Content-Range": f"bytes */{e.max_size}"}) from None


class RangeStaticFiles(StaticFiles):
    """``StaticFiles`` that serves through ``RangeFileResponse``."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        # StaticFiles.file_response with RangeFileResponse in place of FileResponse
        response = RangeFileResponse(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
