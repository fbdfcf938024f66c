"""One error shape for the whole HTTP API, rendered by one handler.

Every failure the API reports is an `IdvError` (from `models.errors`) carrying a reason code and an
HTTP status; this module adds the API's own subclasses (auth, not found, conflicts, rate limits,
oversized bodies) and installs the handlers:

- `IdvError` -> `{"type": "<reason code>", "detail": "...", "verification_id": ...}` with its status;
- request validation errors -> 422 `input.invalid` with the offending field names (never the values,
  which may be an applicant's name or ID number);
- anything else -> 500 `server.internal_error` with no stack trace (it is logged with the request id
  only, never the body).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import IdvError, InputError, describe_unexpected
from models.reasons import Reason

log = logging.getLogger("idverify.api")


class AuthError(IdvError):
    status_code = 401


class ForbiddenError(IdvError):
    status_code = 403


class NotFoundError(IdvError):
    status_code = 404

    def __init__(self, detail: str = "no such resource for this client") -> None:
        super().__init__(Reason.NOT_FOUND, detail)


class ConflictError(IdvError):
    status_code = 409


class PayloadTooLargeError(InputError):
    status_code = 413


class RateLimitedError(IdvError):
    status_code = 429

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(Reason.RATE_LIMITED, f"rate limit exceeded; retry after {max(1, math.ceil(retry_after_s))} s")
        self.retry_after_s = retry_after_s


# Reason codes raised by the ML packages as InputError that are the caller's size problem.
_TOO_LARGE = {Reason.INPUT_TOO_LARGE, Reason.INPUT_TOO_MANY_PIXELS}


def error_body(code: str, detail: str, verification_id: str | None = None) -> dict[str, Any]:
    return {"type": str(code), "detail": detail, "verification_id": verification_id}


def _status_for(exc: IdvError) -> int:
    status = int(getattr(exc, "status_code", 422))
    if type(exc) is InputError and exc.code in _TOO_LARGE:
        return 413
    return status


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(IdvError)
    async def _idv(request: Request, exc: IdvError) -> JSONResponse:
        status = _status_for(exc)
        vid = getattr(exc, "verification_id", None) or getattr(request.state, "verification_id", None)
        headers = {}
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        if isinstance(exc, AuthError):
            headers["WWW-Authenticate"] = 'Bearer realm="idverify"'
        log.info("request failed status=%s type=%s path=%s", status, exc.code, request.url.path)
        return JSONResponse(error_body(exc.code, exc.detail, vid), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # field locations only: the input values may be an applicant's name or ID number
        errors = exc.errors()
        where = sorted({".".join(str(p) for p in e.get("loc", ()) if p != "body") for e in errors})
        # only absent fields: the same code as an absent capture or card side (input.missing)
        missing = bool(errors) and all(e.get("type") == "missing" for e in errors)
        label = "missing fields: " if missing else "invalid or missing fields: "
        detail = label + ", ".join(w for w in where if w) if where else "invalid request"
        code = Reason.INPUT_MISSING if missing else Reason.INPUT_INVALID
        return JSONResponse(error_body(code, detail[:500]), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            401: Reason.AUTH_MISSING,
            403: Reason.AUTH_FORBIDDEN,
            404: Reason.NOT_FOUND,
            405: Reason.METHOD_NOT_ALLOWED,
            413: Reason.INPUT_TOO_LARGE,
        }.get(exc.status_code, Reason.INPUT_INVALID)
        detail = exc.detail if isinstance(exc.detail, str) else "request rejected"
        return JSONResponse(
            error_body(code, detail), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # type name only: exception messages can quote input values
        log.error("unhandled %s on %s %s", describe_unexpected(exc), request.method[:16], request.url.path[:200])
        return JSONResponse(
            error_body(Reason.INTERNAL_ERROR, "internal error; it has been logged"), status_code=500
        )
