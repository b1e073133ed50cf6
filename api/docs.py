"""``/docs``: Swagger UI served from a package, so it works with no network, and the
OpenAPI document's security schemes, so the page has an Authorize button
(``Authorization: Bearer <key>`` or ``X-API-Key``).

The files come from ``fastapi-offline`` (MIT; Swagger UI 5.32.6): only its ``static``
folder is read, never imported. ``swagger-ui-bundle`` 1.1.0 was tried first: its
Swagger UI 4.15.5 cannot render the OpenAPI 3.1 documents FastAPI writes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["install_docs", "SECURITY_SCHEMES"]

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "vsk_<key_id>_<secret>",
               "description": "An API key from `python -m api.keys create` (scopes: search, ingest, admin)."},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "The same key in a header, for clients that cannot send Authorization."},
}


SWAGGER_PIN = "fastapi-offline==1.7.7"


def _swagger_assets() -> Path | None:
    """The folder of the packaged Swagger UI files, or None when the package is missing."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` (offline Swagger UI) and the security schemes to ``app``'s OpenAPI."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            # a key in either header; {} = none, for local single-user mode and the signed links
            schema["security"] = [{"bearer": []}, {"apiKeyHeader": []}, {}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    assets = _swagger_assets()
    if assets is not None:
        app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(
                "<!doctype html><title>vidseek API docs</title><p>The interactive docs need the"
                f" <code>fastapi-offline</code> package (<code>pip install {SWAGGER_PIN}</code>)."
                ' The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p>', status_code=503)
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="vidseek API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png",
                                   swagger_ui_parameters={"persistAuthorization": True})
