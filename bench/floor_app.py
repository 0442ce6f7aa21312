"""The framework floor: FastAPI parses the same intent model and returns a constant order.

Nothing a real service does (store, checks, logging of its own) happens here, so this
is the most a FastAPI route with this body can do on this machine.
"""

from typing import Any

from fastapi import FastAPI

from app.web.schemas import OrderIntent

app = FastAPI()

_ORDER = {
    "order_id": "paper-00000000-0000-4000-8000-000000000000",
    "status": "NEW",
    "accepted_ts_utc": "2024-01-15T10:30:00.000000Z",
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "side": "BUY",
    "qty": 0.01,
    "filled_qty": 0.0,
}


@app.post("/execution/order-intents", status_code=201)
async def submit_order_intent(intent: OrderIntent) -> dict[str, Any]:
    return _ORDER
