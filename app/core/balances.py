"""PAPER_BALANCES: a paper account. Pure and exact: a store keeps the holdings and each
open order's reservation, and the core changes them in the same atomic step as the
order they concern.

An open order holds a `Reservation`: what it may still spend, recorded when it was
admitted. A BUY reserves, in the quote asset, its quantity times its reserve price
(the limit, or for a MARKET order the ask it was admitted at moved by the slippage)
times the highest fee rate; a SELL reserves its quantity of the base asset. A fill
releases its quantity's part, an end releases the rest, and no release ever takes
more than the reservation still holds: settings changed later (fee rates, say) never
change what an order already holds.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, localcontext
from functools import cache

from app.core.errors import AccountMismatch, IntentRefused
from app.core.matching import walk_price
from app.core.order import Order, StoredFill
from app.core.values import BPS, EXACT, ZERO, Costs, Quote, exact, shown
from app.core.vocabulary import OrderType, Side

# A quantity cut to what a balance covers is rounded down (it must never cost more than
# that) to this many significant digits: few enough that adding it to what the order
# filled before stays exact.
CUT_DIGITS = 18
_CUT = Context(prec=CUT_DIGITS, rounding=ROUND_FLOOR)


@dataclass
class Holding:
    start: Decimal  # the balance PAPER_BALANCES gave the asset
    total: Decimal
    reserved: Decimal = ZERO

    @property
    def free(self) -> Decimal:
        return EXACT.subtract(self.total, self.reserved)


@dataclass
class Reservation:
    """What one open order holds of one asset: `unit` per unit of its quantity, and
    `held` still (its remaining quantity times `unit`)."""

    asset: str
    unit: Decimal
    held: Decimal


@cache  # few symbols, asked on every order and fill
def assets_of(symbol: str) -> tuple[str, str]:
    """BASE/QUOTE: the asset bought and the one paid with."""
    base, _, quote = symbol.partition("/")
    return base, quote


def reserved_asset(side: Side, symbol: str) -> str:
    """What an order on `side` reserves: the quote asset for a BUY, the base for a SELL."""
    base, quote = assets_of(symbol)
    return quote if side == Side.BUY else base


def claim(order: Order, qty: Decimal, quote: Quote | None, costs: Costs) -> Reservation:
    """What `qty` of `order` needs to hold: a SELL its base asset, a BUY its quote asset
    at its limit (or, for a MARKET BUY, the dearest level it would walk to on `quote`;
    NO_QUOTE without one) plus the highest fee it may pay."""
    asset = reserved_asset(order.side, order.symbol)
    if order.side == Side.SELL:
        return Reservation(asset, Decimal(1), qty)
    if order.limit_price is not None:
        price = exact(order.limit_price)
    elif quote is None:
        raise IntentRefused(
            "NO_QUOTE",
            f"No quote is known for {order.exchange}:{order.symbol}: a MARKET BUY cannot be priced "
            "for its balance reservation",
        )
    else:
        # The dearest level it would walk to on this book: no fill of it here costs more.
        price = walk_price(Side.BUY, quote, qty, costs)
    # The highest fee it may pay: a maker fill can cost more than a taker one.
    fee_factor = EXACT.add(1, EXACT.divide(max(costs.taker_fee_bps, costs.maker_fee_bps), BPS))
    unit = EXACT.multiply(price, fee_factor)
    return Reservation(asset, unit, EXACT.multiply(qty, unit))


class Account:
    """The holdings by asset and the reservations of open orders by order number (a
    store may load only the ones a step concerns), and the rules that move them."""

    def __init__(self, holdings: dict[str, Holding], reservations: dict[int, Reservation] | None = None) -> None:
        self.holdings = holdings
        self.reservations = reservations if reservations is not None else {}

    def holding(self, asset: str) -> Holding:
        held = self.holdings.get(asset)
        if held is None:
            held = self.holdings[asset] = Holding(ZERO, ZERO)
        return held

    def reserve(self, order: Order, quote: Quote | None, costs: Costs) -> Reservation:
        """Reserve what a new order needs, or refuse it: NO_QUOTE (a MARKET BUY with no
        quote to price it), INSUFFICIENT_BALANCE."""
        qty = order.exact_qty
        reservation = claim(order, qty, quote, costs)
        held = self.holding(reservation.asset)
        if held.free < reservation.held:
            raise IntentRefused(
                "INSUFFICIENT_BALANCE",
                f"{order.side} {shown(qty)} {order.symbol} needs {shown(reservation.held)} {reservation.asset}; "
                f"{shown(held.free)} {reservation.asset} is free",
            )
        held.reserved = EXACT.add(held.reserved, reservation.held)
        self.reservations[order.number] = reservation
        return reservation

    def covers(self, order: Order, cost: Decimal) -> bool:
        """Whether the account can pay `cost` (fills and fees) for `order` without a cut:
        only a MARKET BUY can cost more than it reserved."""
        reservation = self.reservations.get(order.number)
        if order.side == Side.SELL or order.type == OrderType.LIMIT or reservation is None:
            return True
        return cost <= EXACT.add(self.holding(reservation.asset).free, reservation.held)

    def release(self, order: Order, amount: Decimal | None = None) -> None:
        """`order` no longer needs `amount` of its reservation (None: any of it, as it
        has ended). Never more than it still holds."""
        reservation = self.reservations.get(order.number)
        if reservation is None:
            return
        freed = reservation.held if amount is None else min(amount, reservation.held)
        if freed:
            reservation.held = EXACT.subtract(reservation.held, freed)
            held = self.holding(reservation.asset)
            held.reserved = EXACT.subtract(held.reserved, freed)
        if amount is None:
            del self.reservations[order.number]

    def affordable(
        self, order: Order, qty: Decimal, price: Decimal, fee: Decimal, costs: Costs
    ) -> tuple[Decimal, bool]:
        """How much of a fill the account pays for, and whether paying it spends the
        order's whole reservation (the rest of the order must then be canceled: nothing
        is left reserved for it). Only a MARKET BUY can cost more than it reserved (the
        ask may have risen since): all of `qty` if its cost fits in its part of the
        reservation plus the free balance; otherwise what the order's whole reservation
        plus the free balance covers, rounded down to `CUT_DIGITS` significant digits."""
        reservation = self.reservations.get(order.number)
        if order.side == Side.SELL or order.type == OrderType.LIMIT or reservation is None:
            return qty, False
        free = self.holding(reservation.asset).free
        with localcontext(EXACT):
            cost = qty * price + fee
            if cost <= free + qty * reservation.unit:
                return qty, False
            covered = free + reservation.held
            per_unit = price * (1 + costs.taker_fee_bps / BPS)  # exact: only the quotient rounds
        with localcontext(_CUT):
            return min(qty, covered / per_unit), True

    def filled(self, order: Order, fill: StoredFill) -> None:
        """After `fill` was applied to `order`: move the balances, and release its part
        of the reservation (all of what is left if the order has ended)."""
        reservation = self.reservations.get(order.number)
        if reservation is not None:
            self.release(order, None if not order.is_open else EXACT.multiply(fill.qty, reservation.unit))
        base, quote = assets_of(order.symbol)
        bought, paid = self.holding(base), self.holding(quote)
        proceeds = EXACT.multiply(fill.qty, fill.price)
        if order.side == Side.BUY:
            bought.total = EXACT.add(bought.total, fill.qty)
            paid.total = EXACT.subtract(paid.total, EXACT.add(proceeds, fill.fee))
        else:
            bought.total = EXACT.subtract(bought.total, fill.qty)
            paid.total = EXACT.add(paid.total, EXACT.subtract(proceeds, fill.fee))

    def adopt(self, open_orders: Iterable[Order], quotes: dict[tuple[str, str], Quote], costs: Costs) -> None:
        """Turn the account on over a store that already holds open orders: reserve for
        each open order that holds nothing yet, then make every asset's `reserved`
        exactly what the open orders hold. Raises AccountMismatch (naming the order)
        if the balance cannot cover one."""
        for order in open_orders:
            kept = self.reservations.get(order.number)
            if kept is not None:
                # Fills while the account was off released nothing: an order holds at most
                # what its remaining quantity needs.
                kept.held = min(kept.held, EXACT.multiply(order.remaining, kept.unit))
                continue
            quote = quotes.get((order.exchange, order.symbol))
            try:
                reservation = claim(order, order.remaining, quote, costs)
            except IntentRefused as refusal:
                raise AccountMismatch(f"open order {order.order_id} cannot be reserved for: {refusal.detail}") from None
            self.reservations[order.number] = reservation
        needed: dict[str, Decimal] = {}
        for reservation in self.reservations.values():
            needed[reservation.asset] = EXACT.add(needed.get(reservation.asset, ZERO), reservation.held)
        for asset in set(needed) | set(self.holdings):
            held = self.holding(asset)
            held.reserved = needed.get(asset, ZERO)
            if held.free < 0:
                raise AccountMismatch(
                    f"the open orders hold {shown(held.reserved)} {asset} but the account has {shown(held.total)}: "
                    "cancel open orders or raise the balance"
                )
