"""The FastAPI service: ``create_app(index_dir, settings)`` and ``run(args)`` for ``vidseek serve``.

The app holds one reader handle (searches; ``sync()`` before each search picks up
commits), one shared writer handle (ingest jobs and deletes, serialised), the key
store and the job queue, all opened in the lifespan hook and closed on shutdown.
Routers live in ``api.routes``; this module wires state, errors, access logs and
metrics.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import KeyStore, LinkSigner, RateLimiter, service_db_path
from api.jobs import JobQueue, SharedWriter
from engine.errors import VidseekError

__all__ = ["Settings", "ServiceState", "ApiError", "Metrics", "create_app", "run", "STATUS_BY_CODE"]

log = logging.getLogger("vidseek.api")
access_log = logging.getLogger("vidseek.access")

# Named core errors -> HTTP status. Codes not listed are server-side (500).
STATUS_BY_CODE: dict[str, int] = {
    "bad_query": 400,
    "bad_input": 400,
    "unknown_name": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "path_not_allowed": 403,
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


@dataclass(frozen=True)
class Settings:
    """Service settings. ``allowed_roots``: folders that path ingest may read (empty:
    path ingest is off). ``rate``/``burst``: token bucket per key (rate <= 0: off).
    ``ingest_speech``/``ingest_ocr``: defaults for jobs that do not say."""

    host: str = "127.0.0.1"
    port: int = 8000
    allowed_roots: tuple[str, ...] = ()
    max_upload_bytes: int = 2 * 1024**3
    max_image_bytes: int = 20 * 1024**2
    rate: float = 20.0
    burst: float = 40.0
    max_k: int = 100
    ingest_speech: bool = True
    ingest_ocr: bool = True
    shutdown_grace_s: float = 30.0
    link_ttl_s: float = 3600.0
    warm_models: bool = True
    # Search on the writer handle (always current: add_video syncs it) rather than on a
    # second, read-only handle that replays commits with sync(): one copy of the FAISS
    # shards in memory instead of two. The read-only handle serves when another process
    # holds the writer lock.
    search_on_writer: bool = True

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_image_bytes < 1:
            raise ValueError("upload limits must be positive")
        if not 1 <= self.max_k <= 1000:
            raise ValueError(f"max_k must be in 1..1000, got {self.max_k}")


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


_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request counts and latency histograms by route, in the Prometheus text format.

    Written by hand: prometheus_client is not a dependency. Routes are the path
    templates (``/v1/videos/{video_id}``), so the label set stays bounded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, int], int] = {}
        self.hist: dict[tuple[str, str], list[float]] = {}  # bucket counts + [sum, count]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            k = (method, route, status)
            self.counts[k] = self.counts.get(k, 0) + 1
            h = self.hist.setdefault((method, route), [0.0] * (len(_BUCKETS) + 2))
            for i, b in enumerate(_BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        def esc(v: str) -> str:
            return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        out = ["# HELP vidseek_http_requests_total HTTP requests by method, route and status.",
               "# TYPE vidseek_http_requests_total counter"]
        with self._lock:
            for (m, r, s), n in sorted(self.counts.items()):
                out.append(f'vidseek_http_requests_total{{method="{m}",route="{esc(r)}",status="{s}"}} {n}')
            out += ["# HELP vidseek_http_request_seconds Request latency by method and route.",
                    "# TYPE vidseek_http_request_seconds histogram"]
            for (m, r), h in sorted(self.hist.items()):
                lab = f'method="{m}",route="{esc(r)}"'
                for b, n in zip(_BUCKETS, h):
                    out.append(f'vidseek_http_request_seconds_bucket{{{lab},le="{b}"}} {int(n)}')
                out.append(f'vidseek_http_request_seconds_bucket{{{lab},le="+Inf"}} {int(h[-1])}')
                out.append(f"vidseek_http_request_seconds_sum{{{lab}}} {h[-2]:.6f}")
                out.append(f"vidseek_http_request_seconds_count{{{lab}}} {int(h[-1])}")
        for name, (help_text, value) in sorted(gauges.items()):
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(out) + "\n"


@dataclass
class ServiceState:
    """Everything the routes use, built in the lifespan hook."""

    index_dir: Path
    settings: Settings
    keys: KeyStore
    signer: LinkSigner
    limiter: RateLimiter
    writer: SharedWriter
    jobs: JobQueue
    metrics: Metrics
    reader: Any = None  # engine.index.VideoIndex
    searcher: Any = None  # query.planner.Searcher
    ready: bool = False
    loopback: bool = True
    started_at: float = field(default_factory=time.time)

    @property
    def local_mode(self) -> bool:
        """No keys and a loopback bind: requests without a key act as tenant "default"."""
        return self.loopback and self.keys.active_count() == 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _open_reader(index_dir: Path):
    from engine.index import VideoIndex

    return VideoIndex.open(index_dir)


def create_app(index_dir: str | Path, settings: Settings | None = None) -> FastAPI:
    """The service for one index directory (created with default settings if absent)."""
    from api import routes

    settings = settings or Settings()
    index_dir = Path(index_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        index_dir.mkdir(parents=True, exist_ok=True)
        keys = KeyStore(service_db_path(index_dir))
        writer = SharedWriter(index_dir)
        # The writer first: it creates the index when the folder is new.
        writer.try_open()
        state = ServiceState(
            index_dir=index_dir, settings=settings, keys=keys,
            signer=LinkSigner(keys.secret("link_signing"), settings.link_ttl_s),
            limiter=RateLimiter(settings.rate, settings.burst), writer=writer,
            jobs=JobQueue(service_db_path(index_dir), writer), metrics=Metrics(),
            loopback=_is_loopback(settings.host),
        )
        app.state.svc = state
        try:
            from query.planner import Searcher

            state.reader = _open_reader(index_dir)
            on_writer = settings.search_on_writer and writer.is_open
            state.searcher = Searcher(writer.index if on_writer else state.reader)
            if settings.warm_models:
                # Load the query encoders now, so /readyz means "a search will not stall".
                state.searcher.warm_up()
            state.ready = True
            requeued = state.jobs.start()
            if requeued:
                log.warning("requeued %d unfinished ingest jobs from an earlier run", requeued)
            if state.local_mode:
                log.warning("LOCAL MODE: no API keys exist and the server binds loopback (%s); requests without a"
                            " key act as tenant 'default' with all scopes. Create a key with `python -m api.keys"
                            " create --index %s --tenant T --scopes search` to require keys.", settings.host, index_dir)
            elif state.keys.active_count() == 0:
                log.warning("no API keys exist and the server binds %s (not loopback): every /v1 request is refused"
                            " until a key is created with `python -m api.keys create`", settings.host)
            else:
                log.info("API keys required (%d active)", state.keys.active_count())
            yield
        finally:
            state.ready = False
            state.jobs.shutdown(settings.shutdown_grace_s)
            if state.reader is not None:
                state.reader.close()
            writer.close()
            keys.close()

    app = FastAPI(
        title="vidseek",
        version="0.1.0",
        description="Multimodal semantic search over video libraries: ranked, timestamped moments. "
                    "Authenticate with `Authorization: Bearer <key>` (or `X-API-Key`). Every error is "
                    '`{"error": {"code": ..., "message": ...}}`.',
        lifespan=lifespan,
        responses={"4XX": {"model": routes.ErrorBody}, "5XX": {"model": routes.ErrorBody}},
    )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(VidseekError)
    async def _core_error(request: Request, exc: VidseekError) -> JSONResponse:
        status = STATUS_BY_CODE.get(exc.code, 500)
        if status >= 500:
            log.error("core error on %s: %s", request.url.path, exc)
        return JSONResponse(error_body(exc.code, str(exc)), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
            parts.append(f"{loc or 'request'}: {e.get('msg')}")
        return JSONResponse(error_body("bad_input", "; ".join(parts) or "invalid request"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        msg = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            msg = f"no route {request.method} {request.url.path}"
        return JSONResponse(error_body(code, msg), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", f"{type(exc).__name__}: the server failed; see its log"),
                            status_code=500)

    @app.middleware("http")
    async def _access(request: Request, call_next):
        t0 = time.perf_counter()
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        request.state.request_id = rid
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            dt = time.perf_counter() - t0
            route = getattr(request.scope.get("route"), "path", None) or "unmatched"
            svc = getattr(request.app.state, "svc", None)
            if svc is not None:
                svc.metrics.observe(request.method, route, status, dt)
            principal = getattr(request.state, "principal", None)
            # One JSON line per request; the query string is left out (it may carry a signed link).
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "request_id": rid, "method": request.method,
                "path": request.url.path, "route": route, "status": status, "ms": round(dt * 1000, 2),
                "tenant": getattr(principal, "tenant", None), "key_id": getattr(principal, "key_id", None),
                "client": request.client.host if request.client else None,
            }))

    routes.install(app)
    return app


def run(args) -> int:
    """``vidseek serve --index DIR [--host H] [--port P]`` (optional ``--allow-root DIR``
    repeated, ``--max-upload-bytes N``, ``--rate R``, when the CLI defines them)."""
    import uvicorn

    # `vidseek` configures the root logger at WARNING; the service's own logs (start-up
    # mode, one JSON access line per request) go to stderr at INFO regardless.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("vidseek.access", "vidseek.api"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
        lg.propagate = False
    roots = tuple(os.path.realpath(r) for r in (getattr(args, "allow_root", None) or []))
    settings = Settings(
        host=args.host, port=args.port, allowed_roots=roots,
        max_upload_bytes=getattr(args, "max_upload_bytes", None) or Settings.max_upload_bytes,
        rate=getattr(args, "rate", None) or Settings.rate,
    )
    app = create_app(args.index, settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False,
                timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 10)
    return 0
