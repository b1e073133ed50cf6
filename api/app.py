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

from engine.errors import InputError

from api import (routes, routes_covers, routes_feedback, routes_graph, routes_labels, routes_live, routes_media,
                 routes_production)
from api import routes_identities
from api import routes_batch  # noqa: E402  (POST /v1/search/batch)
from api.conventions import install_rate_headers
from api.discovery import advertise, withdraw
from api.errors import STATUS_BY_CODE, ApiError, ErrorBody, install_error_handlers
from api.metrics import Metrics, install_access_log
from api.docs import install_docs
from api.settings import Settings, parse_allow_roots
from api.state import ServiceState
from vidseek.version import __version__

__all__ = ["Settings", "ServiceState", "ApiError", "Metrics", "create_app", "run", "settings_from_args",
           "STATUS_BY_CODE"]

log = logging.getLogger("vidseek.api")

# The route modules, installed in this order; each has install(app).
ROUTE_MODULES = (routes, routes_covers, routes_graph, routes_production, routes_feedback, routes_labels,
                 routes_media, routes_live, routes_identities, routes_batch)


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
            resumed = routes_live.on_start(app, state)
            if resumed:
                log.warning("resumed %d live jobs that were running when the service stopped", resumed)
            if settings.advertise:  # `vidseek search|index` on this index now come through us
                advertise(index_dir, settings.host, settings.port, state.owner_token)
            yield
        finally:
            if settings.advertise:
                withdraw(index_dir)
            routes_live.on_stop(app)
            state.close()

    return lifespan


def create_app(index_dir: str | Path, settings: Settings | None = None) -> FastAPI:
    """The service for one index directory (created with default settings if absent)."""
    settings = settings or Settings()
    app = FastAPI(
        title="vidseek",
        version=__version__,
        description="Multimodal semantic search over video libraries: ranked, timestamped moments. "
                    "Authenticate with `Authorization: Bearer <key>` (or `X-API-Key`); key scopes: `search`"
                    " (read), `ingest` (write: ingest, jobs, delete, metadata) and `admin` (both, plus"
                    " `/metrics`). Every error is "
                    '`{"error": {"code": ..., "message": ...}}`. Lists answer `total` and `next_cursor`;'
                    " every response carries `X-RateLimit-*` headers; `POST /v1/ingest`, `/v1/highlights`"
                    " and `/v1/live` honour `Idempotency-Key`.",
        lifespan=_lifespan(Path(index_dir), settings),
        responses={"4XX": {"model": ErrorBody}, "5XX": {"model": ErrorBody}},
        docs_url=None,  # served below from the packaged Swagger UI: /docs works offline
    )
    install_error_handlers(app)
    install_access_log(app)
    install_rate_headers(app)
    for module in ROUTE_MODULES:
        module.install(app)
    install_docs(app)
    return app


def settings_from_args(args) -> Settings:
    """The ``Settings`` of ``vidseek serve``'s flags (``--rate 0`` is no limit; no
    ``--rate`` is none in local mode and the default per key otherwise)."""
    roots, tenant_roots = parse_allow_roots(getattr(args, "allow_root", None) or [])
    webhook, secret = None, None
    if getattr(args, "webhook", None):
        from api.webhooks import WebhookConfig

        try:
            webhook = WebhookConfig(args.webhook)
        except ValueError as e:
            raise InputError(f"--webhook: {e}", hint="e.g. --webhook https://example.com/hooks/vidseek") from None
        if getattr(args, "webhook_secret_file", None):
            try:
                secret = Path(args.webhook_secret_file).read_bytes().strip()
            except OSError as e:
                raise InputError(f"--webhook-secret-file {args.webhook_secret_file}: {e.strerror}") from None
            if len(secret) < 16:
                raise InputError(f"--webhook-secret-file {args.webhook_secret_file} holds under 16 bytes",
                                 hint="use a long random secret, e.g. `openssl rand -hex 32`")
    rate = getattr(args, "rate", None)
    on_ray = getattr(args, "ray", None) is not None
    slots = getattr(args, "ingest_slots", None)
    if slots is not None and slots < 0:
        raise InputError(f"--ingest-slots must be >= 0, got {slots}", hint="0 keeps ingest jobs in this process")
    settings = Settings(
        host=args.host, port=args.port, allowed_roots=roots, tenant_roots=tenant_roots,
        max_upload_bytes=getattr(args, "max_upload_bytes", None) or Settings.max_upload_bytes,
        rate=rate,  # None: no limit in local mode, DEFAULT_RATE with keys; 0: off
        webhook=webhook, webhook_secret=secret, advertise=True,
        ray_address=getattr(args, "ray", None),
        replicas=(getattr(args, "replicas", 2) or 0) if on_ray else 0,
        shard_groups=getattr(args, "shard_groups", 1) or 1,
        ray_ingest=on_ray and slots != 0, ingest_slots=slots or None,
    )
    return settings


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
    if getattr(args, "device", None) is not None:
        from engine import accel

        # The ingest jobs analyse in this process: their models follow this setting.
        # Checked now, so that `--device cuda` without a usable GPU fails at start-up.
        accel.set_device(args.device)
        logging.getLogger("vidseek.api").info("models of ingest jobs: %s", accel.plan())
    settings = settings_from_args(args)
    app = create_app(args.index, settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False,
                timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 10)
    return 0
