"""Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from the console build's ``vendor/`` copy of
their bundles (``console/scripts/vendor-docs.mjs``), not a CDN: the docs work offline and
behind a proxy that blocks CDNs."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

__all__ = ["REDOC_JS", "SWAGGER_CSS", "SWAGGER_JS", "router"]

SWAGGER_JS: Final = "/console/vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS: Final = "/console/vendor/swagger-ui/swagger-ui.css"
REDOC_JS: Final = "/console/vendor/redoc/redoc.standalone.js"
_FAVICON: Final = "/console/favicon.svg"
_OAUTH2_REDIRECT: Final = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} API",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=_FAVICON,
        oauth2_redirect_url=_OAUTH2_REDIRECT,
    )


@router.get(_OAUTH2_REDIRECT)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} API",
        redoc_js_url=REDOC_JS,
        redoc_favicon_url=_FAVICON,
        with_google_fonts=False,
    )
