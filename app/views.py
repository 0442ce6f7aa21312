"""Orders rendered for the wire: the 201 body and the full order."""

from typing import Any

from pydantic_core import to_json

from app.clock import iso_z
from app.storage import Order


def created_body(order: Order) -> bytes:
    """The 201 body: exactly the spec's eight keys (`OrderCreated` documents them)."""
    # A plain dict through pydantic-core's encoder: this is the hot path, and every
    # value was validated on the way in.
    return to_json(
        {
            "order_id": order.order_id,
            "status": order.status,
            "accepted_ts_utc": iso_z(order.accepted_at),
            "exchange": order.exchange,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "filled_qty": order.filled_qty,
        }
    )


def order_view(order: Order) -> dict[str, Any]:
    """The whole order (`OrderOut`): no fill has happened yet, so no price and no fees."""
    client_ts = order.client_ts
    return {
        "order_id": order.order_id,
        "status": order.status,
        "accepted_ts_utc": iso_z(order.accepted_at),
        "exchange": order.exchange,
        "symbol": order.symbol,
        "side": order.side,
        "qty": order.qty,
        "filled_qty": order.filled_qty,
        "idempotency_key": order.idempotency_key,
        "type": order.type,
        "limit_price": order.limit_price,
        "client_ts_utc": None if client_ts is None else iso_z(client_ts),
        "updated_ts_utc": iso_z(order.accepted_at),
        "avg_fill_price": None,
        "fees": 0.0,
    }
