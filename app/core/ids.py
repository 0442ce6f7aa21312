"""Order and fill ids: `paper-` (or `fill-`) and a canonical UUID4, kept in memory as
the UUID's 128-bit number: an int costs 48 bytes where the 42-character string costs 96.
Pure: the numbers themselves come from the store (`app.store.ids`)."""

import hashlib
import re

PREFIX = "paper-"
FILL_PREFIX = "fill-"
_CANONICAL = re.compile(r"paper-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def format_id(prefix: str, number: int) -> str:
    h = f"{number:032x}"
    return f"{prefix}{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def format_order_id(number: int) -> str:
    return format_id(PREFIX, number)


def parse_order_id(order_id: str) -> int | None:
    """The number behind a canonical order id, or None for anything else."""
    if not _CANONICAL.fullmatch(order_id):
        return None
    return int(order_id[len(PREFIX) :].replace("-", ""), 16)


def number_of(formatted: str) -> int:
    """The number behind an id this service formatted (`paper-...` or `fill-...`)."""
    return int(formatted.partition("-")[2].replace("-", ""), 16)


# A live order's id at its exchange: letters and digits only, 32 of them, which every
# exchange ccxt speaks to takes (Binance allows 36, OKX 32 alphanumerics).
CLIENT_ORDER_ID_PREFIX = "pe"


def client_order_id(journal_id: str, idempotency_key: str) -> str:
    """The client order id of the order an idempotency key names, in the store whose
    journal is `journal_id`: the same for every send of that order, so the exchange
    can tell a resend from a new order; different across stores (two databases
    trading one account with the same keys do not collide). 120 bits of a SHA-256."""
    digest = hashlib.sha256(f"{journal_id}\0{idempotency_key}".encode()).hexdigest()
    return CLIENT_ORDER_ID_PREFIX + digest[:30]
