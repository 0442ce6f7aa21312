"""The order vocabulary. Each is a `StrEnum`: a member is its own wire text ("BUY"), so
it compares, hashes, logs and serializes as that text, and nothing else is spelled
out as a bare string anywhere."""

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a BUY (the position grows), -1 for a SELL."""
        return 1 if self == Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(StrEnum):
    """GTC rests until filled or canceled; IOC fills what it can on arrival and the rest
    expires; FOK fills its whole quantity on arrival or expires with nothing filled."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    # A live exchange refused the order (its reason is in the `rejected` event).
    REJECTED = "REJECTED"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})


class Liquidity(StrEnum):
    TAKER = "TAKER"
    MAKER = "MAKER"


class FillSource(StrEnum):
    """What market data a fill met: a quote or a book as it came (`quote`, `book`), a
    print on the tape (`trade`), or the latest quote or book when the order itself
    arrived (`arrival`); or none: a live exchange filled the order (`exchange`)."""

    QUOTE = "quote"
    BOOK = "book"
    TRADE = "trade"
    ARRIVAL = "arrival"
    EXCHANGE = "exchange"  # a live exchange's own fill of the order


class TradingStateName(StrEnum):
    """The kill switch: ACTIVE takes every intent, REDUCING only those that shrink the
    position, HALTED none."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def strictness(self) -> int:
        """How much the state refuses: start-up may make a state stricter, never looser."""
        return _STRICTNESS[self]


_STRICTNESS = {TradingStateName.ACTIVE: 0, TradingStateName.REDUCING: 1, TradingStateName.HALTED: 2}


class LiveState(StrEnum):
    """How far a live order's sending has come (its row in the store's outbox): stored
    and not sent yet (`pending`); a send was tried and its answer is not known (`sent`);
    the exchange holds it (`held`); final here and at the exchange (`done`)."""

    PENDING = "pending"
    SENT = "sent"
    HELD = "held"
    DONE = "done"


class CancelReason(StrEnum):
    """Why an order was canceled."""

    REQUESTED = "requested"  # a client asked (POST .../cancel)
    KILL_SWITCH = "kill_switch"  # a trading-state change with cancel_open_orders
    BALANCE = "balance"  # a MARKET BUY whose fill the paper balance covered only in part
    EXCHANGE = "exchange"  # a live exchange canceled it of its own accord
