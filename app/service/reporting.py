"""The one place log lines and metrics are written from what happened: the core's
domain events, and the refusals and duplicates the service answers."""

from app.core.errors import ServiceError
from app.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    TradingStateChanged,
)
from app.core.order import Order
from app.core.vocabulary import OrderStatus
from app.ops.logs import EventLog, Fields
from app.ops.metrics import Metrics


class Reporter:
    def __init__(self, log: EventLog, metrics: Metrics) -> None:
        self.event_log = log
        self.metrics = metrics

    def received(self, fields: Fields) -> None:
        self.event_log.info("Received order intent", fields)

    def refused(self, error: ServiceError, fields: Fields) -> None:
        """An intent refused: by its shape, an allowlist, a control, the rate limit or a full store."""
        self.metrics.intent_rejected(error.code)
        self.event_log.warning(
            "Order intent rejected", {**fields, "reason": error.detail, "code": error.code, "status": "REJECTED"}
        )

    def unanswered(self, error: ServiceError, fields: Fields) -> None:
        """Not a refusal: whether the order was stored is unknown until a retry says."""
        self.metrics.intent_rejected(error.code)
        self.event_log.warning("Order intent not answered", {**fields, "reason": error.detail})

    def duplicate(self, existing: Order, fields: Fields, *, payload_matches: bool) -> None:
        self.metrics.intent_duplicate()
        self.event_log.warning(
            "Duplicate order intent",
            {**fields, "order_id": existing.order_id, "status": existing.status, "payload_matches": payload_matches},
        )

    def report(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, OrderAccepted):
                self._accepted(event)
            elif isinstance(event, OrderFilled):
                self._filled(event)
            elif isinstance(event, OrderCanceled):
                self.metrics.canceled()
                self._changed("Order canceled", event.order, event.before, OrderStatus.CANCELED, event.detail)
            elif isinstance(event, OrderExpired):
                self._changed("Order expired", event.order, event.before, OrderStatus.EXPIRED, None)
            elif isinstance(event, OrderRejected):
                self._changed(
                    "Order rejected by the exchange", event.order, event.before, OrderStatus.REJECTED, event.detail
                )
            elif isinstance(event, TradingStateChanged):
                self.event_log.warning(
                    "Trading state changed",
                    {
                        "previous_state": event.before.state,
                        "state": event.after.state,
                        "reason": event.after.reason,
                        "canceled_orders": event.canceled,
                    },
                )

    def _accepted(self, event: OrderAccepted) -> None:
        order = event.order
        self.metrics.intent_created()
        self.event_log.info(
            "Order created successfully",
            {
                "idempotency_key": order.idempotency_key,
                "order_id": order.order_id,
                "exchange": order.exchange,
                "symbol": order.symbol,
                "side": order.side,
                "qty": order.qty,
                "status": OrderStatus.NEW,
            },
        )

    def _filled(self, event: OrderFilled) -> None:
        order, fill = event.order, event.fill
        self.metrics.filled(1)
        self.event_log.info(
            "Order filled",
            {
                "order_id": order.order_id,
                "idempotency_key": order.idempotency_key,
                "exchange": order.exchange,
                "symbol": order.symbol,
                "side": order.side,
                "fill_id": fill.fill_id,
                "qty": float(fill.qty),
                "price": float(fill.price),
                "fee": float(fill.fee),
                "liquidity": fill.liquidity,
                "filled_qty": float(event.filled_qty),
                "previous_status": event.before,
                "status": event.after,
            },
        )

    def _changed(self, message: str, order: Order, before: OrderStatus, after: OrderStatus, reason: str | None) -> None:
        """A change of an order's status that is not a fill (cancel, expiry)."""
        fields: Fields = {
            "order_id": order.order_id,
            "idempotency_key": order.idempotency_key,
            "exchange": order.exchange,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "filled_qty": float(order.filled_qty),
            "previous_status": before,
            "status": after,
        }
        if reason is not None:
            fields["reason"] = reason
        self.event_log.info(message, fields)
