"""One place that turns errors into responses: ``{"error": {"code", "message", ...}}``.

Typed ``ControlPlaneError``s carry their status; request validation becomes 422 with every
field that is wrong; anything else is a 500 that names no internals (the log has the traceback).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from control_plane.errors import ControlPlaneError

__all__ = ["ErrorBody", "error_body", "error_responses", "install_error_handlers"]

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code", "message", ...details}}``."""

    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting error statuses with the error schema."""
    return {code: {"model": ErrorBody} for code in codes}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


async def _control_plane_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ControlPlaneError)
    return JSONResponse(
        {"error": exc.to_json()}, status_code=exc.status_code, headers=exc.headers() or None
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {
            "location": ".".join(str(p) for p in err.get("loc", ())),
            "message": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    body = error_body("invalid_request", "the request does not match the schema", fields=fields)
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode at all (bytes that are not UTF-8): the
        # same 422 as a body that is not JSON, so every route documents the bad-body status.
        body = error_body("invalid_request", f"the request body cannot be read: {exc.detail}")
        return JSONResponse(body, status_code=422)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, OperationalError) and "database is locked" in str(exc):
        # SQLite refused a write transaction that raced another writer (a snapshot taken
        # before the other commit cannot be upgraded): nothing was stored, a retry succeeds.
        log.warning("store busy on %s %s: %s", request.method, request.url.path, exc.orig)
        body = error_body("store_busy", "the store was busy; nothing was changed: retry")
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ControlPlaneError, _control_plane_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
