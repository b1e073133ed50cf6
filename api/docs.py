"""``/docs``: Swagger UI served from a package (``swagger-ui-bundle``), so it works with
no network, and the OpenAPI document's security schemes, so the page has an Authorize
button (``Authorization: Bearer <key>`` or ``X-API-Key``)."""
from __future__ import annotations

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


def _swagger_assets():
    """The folder of the packaged Swagger UI, or None when the package is missing."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return swagger_ui_bundle.swagger_ui_path


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
                " <code>swagger-ui-bundle</code> package (<code>pip install swagger-ui-bundle==1.1.0</code>)."
                ' The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p>', status_code=503)
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="vidseek API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png",
                                   swagger_ui_parameters={"persistAuthorization": True})
