"""Orders, fills and positions rendered for the wire: JSON numbers, UTC `Z` times.

Quantities and money are kept as exact decimals and become JSON numbers only here.
Enums are given as their plain text: pydantic-core encodes an enum member the slow way,
and every stream event is encoded here. An order's are looked up in TEXT (`.value` is
a descriptor call on each read: four of them were a quarter of a listing page's
rendering).
"""

from decimal import Decimal
from typing import Any

from pydantic_core import to_json

from app.core.balances import Holding
from app.core.controls import TradingState
from app.core.journal import Entry
from app.core.order import Order, OrderTerms, Provenance, StoredFill
from app.core.positions import Position
from app.core.vocabulary import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from app.ops.clock import iso_z
from app.store.base import PositionView

# The plain text of each member of the enums an order view shows.
TEXT: dict[str, str] = {
    member: member.value
    for vocabulary in (OrderStatus, Side, OrderType, TimeInForce, Liquidity)
    for member in vocabulary
}


def created_body(order: Order) -> bytes:
    """The 201 body: exactly the spec's eight keys (`OrderCreated` documents them).

    It shows the order as accepted (NEW, nothing filled), even if matching on arrival
    has filled it since: the order's later state is read with GET.
    """
    # A plain dict through pydantic-core's encoder: this is the hot path, and every
    # value was validated on the way in.
    return to_json(
        {
            "order_id": order.order_id,
            "status": OrderStatus.NEW.value,
            "accepted_ts_utc": iso_z(order.accepted_at),
            "exchange": order.exchange,
            "symbol": order.symbol,
            "side": order.side.value,  # the plain text: pydantic-core encodes an enum the slow way
            "qty": order.qty,
            "filled_qty": 0.0,
        }
    )


def _number(value: Decimal | None) -> float | None:
    # + 0.0 turns -0.0 (a short marked at its entry, say) into 0.0 on the wire.
    return None if value is None else float(value) + 0.0


def order_view(order: Order) -> dict[str, Any]:
    """The whole order (`OrderOut`); its average price and fees come from its fills.
    Every stream event shows one, so its parts are each read once."""
    kind, terms = order.kind, OrderTerms.unpack(order.terms)
    fills, filled, updated_at = order.fills, order.filled_qty, order.updated_at
    accepted = iso_z(terms.accepted_at)
    return {
        "order_id": order.order_id,
        "status": TEXT[order.status],
        "accepted_ts_utc": accepted,
        "exchange": kind.exchange,
        "symbol": kind.symbol,
        "side": TEXT[kind.side],
        "qty": terms.qty,
        "filled_qty": float(filled),
        "idempotency_key": order.idempotency_key,
        "type": TEXT[kind.type],
        "limit_price": terms.limit_price,
        "time_in_force": TEXT[kind.time_in_force],
        "client_ts_utc": None if terms.client_ts is None else iso_z(terms.client_ts),
        "updated_ts_utc": accepted if updated_at is None else iso_z(updated_at),
        "avg_fill_price": float(sum(f.price * f.qty for f in fills) / filled) if fills else None,
        "fees": float(sum((f.fee for f in fills), Decimal(0))) if fills else 0.0,
    }


def fill_view(order: Order, fill: StoredFill) -> dict[str, Any]:
    return {
        "seq": fill.seq,
        "fill_id": fill.fill_id,
        "order_id": order.order_id,
        "exchange": order.exchange,
        "symbol": order.symbol,
        "side": TEXT[order.side],
        "qty": float(fill.qty),
        "price": float(fill.price),
        "fee": float(fill.fee),
        "liquidity": TEXT[fill.liquidity],
        "ts_utc": iso_z(fill.ts),
        "provenance": None if fill.provenance is None else provenance_view(fill.provenance),
    }


def provenance_view(made: Provenance) -> dict[str, Any]:
    return {
        "source": made.source.value,
        "ts_utc": None if made.data_ts is None else iso_z(made.data_ts),
        "level_price": float(made.level_price),
        "level_size": None if made.level_size is None else float(made.level_size),
        "slippage_bps": float(made.slippage_bps),
        "fee_bps": float(made.fee_bps),
        "queue_ahead": None if made.queue_ahead is None else float(made.queue_ahead),
    }


def entry_view(entry: Entry) -> dict[str, Any]:
    """A journal entry (`EventOut`): what changed, and the order as it was right after.
    Every key is always there, null where it does not apply."""
    order, fill, position, state = entry.order, entry.fill, entry.position, entry.trading_state
    trading: dict[str, Any] | None = None
    if state is not None:
        previous = entry.previous_state
        trading = {
            **trading_state_view(state),
            "previous_state": None if previous is None else previous.state.value,
            "canceled_orders": entry.canceled_orders,
        }
    return {
        "seq": entry.seq,
        "type": entry.type.value,
        "ts_utc": iso_z(entry.ts),
        "order": None if order is None else order_view(order),
        "fill": None if order is None or fill is None else fill_view(order, fill),
        "position": None if order is None or position is None else _position_after(order, position),
        "reason": None if entry.reason is None else entry.reason.value,
        "detail": entry.detail,
        "trading_state": trading,
    }


def entry_json(entry: Entry) -> bytes:
    return to_json(entry_view(entry))


def _position_after(order: Order, position: Position) -> dict[str, Any]:
    return {
        "exchange": order.exchange,
        "symbol": order.symbol,
        "qty": _number(position.qty),
        "avg_entry_price": _number(position.avg_entry_price),
        "realized_pnl": _number(position.realized_pnl),
        "fees": _number(position.fees),
    }


def position_view(view: PositionView) -> dict[str, Any]:
    position: Position = view.position
    mark = None if view.quote is None else view.quote.mid
    return {
        "exchange": view.exchange,
        "symbol": view.symbol,
        "qty": _number(position.qty),
        "avg_entry_price": _number(position.avg_entry_price),
        "realized_pnl": _number(position.realized_pnl),
        "fees": _number(position.fees),
        "mark_price": _number(mark),
        "unrealized_pnl": None if mark is None else _number(position.unrealized_pnl(mark)),
    }


def balance_view(asset: str, held: Holding) -> dict[str, Any]:
    return {
        "asset": asset,
        "total": _number(held.total),
        "reserved": _number(held.reserved),
        "free": _number(held.free),
    }


def trading_state_view(state: TradingState) -> dict[str, Any]:
    return {"state": state.state.value, "reason": state.reason, "updated_ts_utc": iso_z(state.updated_at)}
