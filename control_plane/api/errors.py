"""One place that turns errors into responses: ``{"error": {"code", "message", ...}}``.

Typed ``ControlPlaneError``s carry their status; request validation becomes 422 with every
field that is wrong; an outage of the store is a 503 (``store/failures.py``); anything else is
a 500 that names no internals (the log has the traceback).

Only that last, catch-all handler runs in Starlette's outermost middleware, which re-raises
after answering, and the server then closes the connection. Everything a client may meet in
normal operation (4xx, 503) is therefore handled by class, so its keep-alive connection
survives.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from control_plane.errors import ControlPlaneError
from control_plane.kit.storable import visible
from control_plane.store.failures import OUTAGES, as_unavailable

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
    # visible(): a location is made of the request's own keys, and a key with a lone
    # surrogate could not be encoded into the response.
    fields = [
        {
            "location": visible(".".join(str(p) for p in err.get("loc", ()))),
            "message": visible(err.get("msg", "")),
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


async def _store_outage(request: Request, exc: Exception) -> JSONResponse:
    # Logged without the traceback: an outage is the database's state, not a bug, and during
    # one every request would print the same stack. The driver's own error only: SQLAlchemy's
    # text adds the statement and its parameters, which are the request's data.
    reason = getattr(exc, "orig", None) or exc
    log.warning(
        "store outage on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        reason,
    )
    return await _control_plane_error(request, as_unavailable(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, OUTAGES):
        # Raised where the class handlers do not reach (a middleware): still a 503, though
        # this path closes the connection afterwards.
        return await _store_outage(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ControlPlaneError, _control_plane_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for outage in OUTAGES:
        app.add_exception_handler(outage, _store_outage)
    app.add_exception_handler(Exception, _unexpected)
