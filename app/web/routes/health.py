"""Probes, the capabilities a bot checks before trading, and the metrics page."""

from fastapi import APIRouter, Response

from app.ops.clock import iso_z, now_micros
from app.ops.metrics import CONTENT_TYPE
from app.service.orders import OrderService
from app.web.responses import STORE_DOWN
from app.web.schemas import Capabilities, Health


def add_routes(routes: APIRouter, service: OrderService) -> None:
    store_name = service.store.name

    @routes.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        # Cheap on purpose: no database round trip, just which store this process uses.
        return Health(status="ok", timestamp=iso_z(now_micros()), store=store_name)

    @routes.head("/healthz", include_in_schema=False)
    async def healthz_head() -> Response:
        return Response(media_type="application/json")  # some probes only send HEAD

    @routes.get("/capabilities", response_model=Capabilities)
    async def capabilities() -> Capabilities:
        info = await service.capabilities()
        return Capabilities(
            service=info.service,
            version=info.version,
            status="degraded" if info.status == "degraded" else "ok",
            features=info.features,
            store=info.store,
            degraded_reason=info.degraded_reason,
            generated_at=info.generated_at,
        )

    @routes.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Prometheus text format"},
            **STORE_DOWN,
        },
    )
    async def prometheus_metrics() -> Response:
        return Response(await service.metrics_text(), media_type=CONTENT_TYPE)
