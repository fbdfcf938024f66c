"""Liveness/readiness probes and the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from .metrics import CONTENT_TYPE
from .routes_common import Ctx
from .schemas import HealthOut

router = APIRouter(tags=["operations"])


# HEAD is served (load balancers probe with it) but not listed: one operation per path in the schema,
# where GET and HEAD together would share one operationId.
@router.get("/healthz", response_model=HealthOut, summary="The process is alive")
@router.head("/healthz", include_in_schema=False)
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    response_model=HealthOut,
    summary="Models loaded and database reachable",
    responses={503: {"model": HealthOut}},
)
def readyz(ctx: Ctx) -> JSONResponse:
    checks: dict[str, str] = {}
    checks["models"] = "ok" if ctx.engines is not None else f"not loaded: {ctx.engines_error or 'starting'}"
    try:
        with ctx.session_factory() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = HealthOut(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.api_route("/metrics", methods=["GET", "HEAD"], include_in_schema=False)
def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
