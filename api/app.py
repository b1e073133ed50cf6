"""The FastAPI service: ``create_app(index_dir, settings)`` and ``run(args)`` for ``vidseek serve``.

This module only assembles the app. Its state (``api.state.ServiceState``: the index
handles, the key store, the job queue and its job kinds, the caches) is opened in
the lifespan hook and closed on shutdown; errors and their JSON bodies are
``api.errors``; the access log and metrics ``api.metrics``; what every route depends
on (state, caller, scopes, signed links) ``api.deps``; the routes ``api.routes`` and
the feature modules (covers, graph, clips and highlights).
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from api import routes, routes_covers, routes_graph, routes_live, routes_production
from api.errors import STATUS_BY_CODE, ApiError, ErrorBody, install_error_handlers
from api.metrics import Metrics, install_access_log
from api.settings import Settings, parse_allow_roots
from api.state import ServiceState

__all__ = ["Settings", "ServiceState", "ApiError", "Metrics", "create_app", "run", "STATUS_BY_CODE"]

log = logging.getLogger("vidseek.api")

# The route modules, installed in this order; each has install(app).
ROUTE_MODULES = (routes, routes_covers, routes_graph, routes_production, routes_live)


def _log_start(state: ServiceState, requeued: int) -> None:
    """Say at start-up how requests are authenticated (and what was requeued)."""
    settings = state.settings
    if requeued:
        log.warning("requeued %d unfinished ingest jobs from an earlier run", requeued)
    if state.local_mode:
        log.warning("LOCAL MODE: no API keys exist and the server binds loopback (%s); requests without a"
                    " key act as tenant 'default' with all scopes. Create a key with `python -m api.keys"
                    " create --index %s --tenant T --scopes search` to require keys.", settings.host,
                    state.index_dir)
    elif state.keys.active_count() == 0:
        log.warning("no API keys exist and the server binds %s (not loopback): every /v1 request is refused"
                    " until a key is created with `python -m api.keys create`", settings.host)
    else:
        log.info("API keys required (%d active)", state.keys.active_count())


def _lifespan(index_dir: Path, settings: Settings):
    """The lifespan hook: open the service state (with the job kinds of the routes),
    start it, and close it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = ServiceState.open(index_dir, settings)
        app.state.svc = state
        try:
            for kind, runner in routes_production.job_kinds(state).items():
                state.register_job_kind(kind, runner)
            _log_start(state, state.start())
            yield
        finally:
            state.close()

    return lifespan


def create_app(index_dir: str | Path, settings: Settings | None = None) -> FastAPI:
    """The service for one index directory (created with default settings if absent)."""
    settings = settings or Settings()
    app = FastAPI(
        title="vidseek",
        version="0.1.0",
        description="Multimodal semantic search over video libraries: ranked, timestamped moments. "
                    "Authenticate with `Authorization: Bearer <key>` (or `X-API-Key`). Every error is "
                    '`{"error": {"code": ..., "message": ...}}`.',
        lifespan=_lifespan(Path(index_dir), settings),
        responses={"4XX": {"model": ErrorBody}, "5XX": {"model": ErrorBody}},
    )
    install_error_handlers(app)
    install_access_log(app)
    for module in ROUTE_MODULES:
        module.install(app)
    return app


def run(args) -> int:
    """``vidseek serve --index DIR [--host H] [--port P]`` (optional ``--allow-root
    [TENANT=]DIR`` repeated, ``--max-upload-bytes N``, ``--rate R``, when the CLI defines them)."""
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
    roots, tenant_roots = parse_allow_roots(getattr(args, "allow_root", None) or [])
    settings = Settings(
        host=args.host, port=args.port, allowed_roots=roots, tenant_roots=tenant_roots,
        max_upload_bytes=getattr(args, "max_upload_bytes", None) or Settings.max_upload_bytes,
        rate=getattr(args, "rate", None) or Settings.rate,
    )
    app = create_app(args.index, settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False,
                timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 10)
    return 0
