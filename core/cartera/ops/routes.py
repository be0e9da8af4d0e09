"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cartera.api.context import app_context
from cartera.api.problems import problem
from cartera.ops.middleware import REGISTRY


@get("/healthz", summary="Liveness", operation_id="Healthz", tags=["Operations"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", summary="Readiness", operation_id="Readyz", tags=["Operations"],
     responses={503: ResponseSpec(None, description="The database does not answer.",
                                  media_type="application/problem+json")})
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """The database answers; 503 (problem+json) when it does not."""
    try:
        async with app_context(request).engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return problem(503, "database_unavailable", "Not ready", "the database does not answer")
    return Response({"status": "ready", "database": "ok"})


@get("/metrics", summary="Prometheus metrics", operation_id="Metrics", tags=["Operations"],
     media_type=CONTENT_TYPE_LATEST)
async def metrics() -> Response[bytes]:
    """Request counts and latencies in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


ROUTES = [healthz, readyz, metrics]
