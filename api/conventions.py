"""API conventions that every B2B client relies on, in one place:

- rate-limit headers on every response (``install_rate_headers``): ``X-RateLimit-Limit``
  (the burst), ``X-RateLimit-Remaining`` (requests left now), ``X-RateLimit-Reset``
  (seconds until the bucket is full again), or ``X-RateLimit-Policy: none`` where no
  limit applies (local single-user mode, ``--rate 0``);
- cursor pagination for list endpoints (``encode_cursor``/``decode_cursor``): an opaque
  string that carries the next offset, so a client pages with ``?cursor=`` and never
  computes offsets; every list answers ``total`` and ``next_cursor`` (null at the end);
- ``Idempotency-Key`` on job-creating POSTs (``IdempotencyStore``): the same key from
  the same tenant returns the first job (``Idempotent-Replayed: true``) instead of a
  second one; the same key with a different body is refused (409 ``idempotency_conflict``).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import threading
import time
from pathlib import Path

from fastapi import FastAPI, Request

from api.errors import ApiError

__all__ = ["install_rate_headers", "encode_cursor", "decode_cursor", "page_info", "IdempotencyStore",
           "IDEMPOTENCY_TTL_S"]

_KEY_ID = re.compile(r"^vsk_([0-9a-f]{12})_")


def _bucket_key(request: Request) -> str:
    """The bucket a request counts against: its key's id, else the local/anonymous one
    (the same names ``api.deps.authenticate`` uses)."""
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return principal.key_id or "local"
    auth = request.headers.get("authorization", "")
    tok = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    m = _KEY_ID.match(tok or "")
    return m.group(1) if m else "local"


async def _rate_headers(request: Request, call_next):
    response = await call_next(request)
    svc = getattr(request.app.state, "svc", None)
    if svc is None:
        return response
    st = svc.limiter.state(_bucket_key(request), rate=svc.rate())
    if st is None:
        response.headers["X-RateLimit-Policy"] = "none"
    else:
        response.headers["X-RateLimit-Limit"] = str(int(st["limit"]))
        response.headers["X-RateLimit-Remaining"] = str(int(st["remaining"]))
        response.headers["X-RateLimit-Reset"] = str(int(st["reset"] + 0.999))
        response.headers["X-RateLimit-Policy"] = f"{int(st['limit'])};burst;{st['rate']:g}/s"
    return response


def install_rate_headers(app: FastAPI) -> None:
    """Add the rate-limit headers to every response of ``app``."""
    app.middleware("http")(_rate_headers)


# -- cursors ----------------------------------------------------------------------------
def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": int(offset)}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor stands for (0 for none); a cursor this server did not make is
    a 400 naming it."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = int(json.loads(raw)["o"])
        if not 0 <= offset < 2**63:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError("bad_input", f"cursor {cursor[:40]!r} is not one this server made",
                       ) from None


def page_info(total: int, offset: int, returned: int) -> dict:
    """The paging fields of a list response."""
    nxt = offset + returned
    return {"total": total, "offset": offset, "next_cursor": encode_cursor(nxt) if returned and nxt < total else None}


# -- idempotency ------------------------------------------------------------------------
IDEMPOTENCY_TTL_S = 24 * 3600.0  # a key is remembered this long (Stripe's window)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
"""


class IdempotencyStore:
    """``Idempotency-Key`` -> the job it created, per tenant, in the service database
    (so a retry after a server restart still finds its job)."""

    def __init__(self, db_path: str | Path) -> None:
        self._conn = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @staticmethod
    def check_key(key: str) -> str:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise ApiError("bad_input", "Idempotency-Key must be 1-255 printable characters")
        return key

    @staticmethod
    def fingerprint(*parts: object) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def once(self, tenant: str, key: str, request_hash: str, create) -> tuple[str, bool]:
        """(job id, replayed): the job an earlier request with this key made, or the one
        ``create()`` makes now and that the key then names. A different request under the
        same key is refused (409). Serialised, so two concurrent retries make one job."""
        with self._lock:
            self._conn.execute("DELETE FROM idempotency WHERE created_at < ?", (time.time() - IDEMPOTENCY_TTL_S,))
            row = self._conn.execute("SELECT request_hash, job_id FROM idempotency WHERE tenant = ? AND key = ?",
                                     (tenant, key)).fetchone()
            if row is not None:
                if row[0] != request_hash:
                    raise ApiError("idempotency_conflict", "this Idempotency-Key was used for a different"
                                   " request; use a new key for a new request", status=409)
                return row[1], True
            job_id = create()
            self._conn.execute("INSERT INTO idempotency VALUES (?,?,?,?,?)",
                               (tenant, key, request_hash, job_id, time.time()))
            return job_id, False
