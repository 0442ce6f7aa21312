"""PAPER_BALANCES: a paper account. Pure and exact: a store keeps the holdings and calls
these in the same atomic step as the order they concern.

An open order reserves what it may still spend: a BUY its remaining quantity times its
reserve price (the limit, or for a MARKET order the ask it was admitted at moved by
the slippage) plus the highest fee rate, in the quote asset; a SELL its remaining
quantity of the base asset. So `reserved` is always what the open orders still need,
and a fill or an end releases the part it concerns.
"""

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, localcontext
from functools import cache

from app.core.controls import Intent, shown
from app.core.errors import IntentRefused
from app.core.fills import BPS, EXACT, Costs, Quote, exact

ZERO = Decimal(0)
# Rounding down: a quantity cut to what a balance covers must never cost more than it.
_FLOOR = Context(prec=EXACT.prec, rounding=ROUND_FLOOR)


@dataclass
class Holding:
    start: Decimal  # the balance PAPER_BALANCES gave the asset
    total: Decimal
    reserved: Decimal = ZERO

    @property
    def free(self) -> Decimal:
        return EXACT.subtract(self.total, self.reserved)


@cache  # few symbols, asked on every order and fill
def assets_of(symbol: str) -> tuple[str, str]:
    """BASE/QUOTE: the asset bought and the one paid with."""
    base, _, quote = symbol.partition("/")
    return base, quote


class Account:
    """The holdings by asset, and the rules that move them."""

    def __init__(self, holdings: dict[str, Holding], costs: Costs) -> None:
        self.holdings = holdings
        self._slippage = 1 + costs.slippage_bps / BPS
        self._taker = costs.taker_fee_bps / BPS
        # A BUY reserves the highest fee it may pay: maker fills can cost more than taker.
        self._fee_factor = 1 + max(costs.taker_fee_bps, costs.maker_fee_bps) / BPS

    def holding(self, asset: str) -> Holding:
        held = self.holdings.get(asset)
        if held is None:
            held = self.holdings[asset] = Holding(ZERO, ZERO)
        return held

    def reserve_price(self, intent: Intent, quote: Quote | None) -> Decimal | None:
        """What a BUY is reserved at (None for a SELL); NO_QUOTE for a MARKET BUY with
        no quote known."""
        if intent.side == "SELL":
            return None
        if intent.limit_price is not None:
            return exact(intent.limit_price)
        if quote is None:
            raise IntentRefused(
                "NO_QUOTE",
                f"No quote is known for {intent.exchange}:{intent.symbol}: a MARKET BUY cannot be priced "
                "for its balance reservation",
            )
        return EXACT.multiply(quote.ask, self._slippage)

    def claim(self, side: str, symbol: str, qty: Decimal, reserve_price: Decimal | None) -> tuple[str, Decimal]:
        """The asset and amount `qty` of an order reserves."""
        base, quote = assets_of(symbol)
        if side == "SELL":
            return base, qty
        assert reserve_price is not None
        return quote, EXACT.multiply(EXACT.multiply(qty, reserve_price), self._fee_factor)

    def reserve(self, intent: Intent, qty: Decimal, reserve_price: Decimal | None) -> None:
        """Reserve what a new order needs, or refuse it: INSUFFICIENT_BALANCE."""
        asset, amount = self.claim(intent.side, intent.symbol, qty, reserve_price)
        held = self.holding(asset)
        if held.free < amount:
            raise IntentRefused(
                "INSUFFICIENT_BALANCE",
                f"{intent.side} {shown(qty)} {intent.symbol} needs {shown(amount)} {asset}; "
                f"{shown(held.free)} {asset} is free",
            )
        held.reserved = EXACT.add(held.reserved, amount)

    def release(self, side: str, symbol: str, qty: Decimal, reserve_price: Decimal | None) -> None:
        """An order no longer needs `qty` of what it reserved (it ended, or filled it)."""
        if qty == 0:
            return
        asset, amount = self.claim(side, symbol, qty, reserve_price)
        held = self.holding(asset)
        held.reserved = EXACT.subtract(held.reserved, amount)

    def affordable(
        self, symbol: str, qty: Decimal, price: Decimal, fee: Decimal, *, remaining: Decimal, reserve_price: Decimal
    ) -> Decimal:
        """How much of a MARKET BUY fill the account pays for: all of `qty` if its cost
        fits in its reservation plus the free balance with the rest of the order still
        reserved; otherwise what the order's whole reservation plus the free balance
        covers (the caller then cancels the rest)."""
        quote = assets_of(symbol)[1]
        free = self.holding(quote).free
        with localcontext(EXACT):
            cost = qty * price + fee
            if cost <= free + self.claim("BUY", symbol, qty, reserve_price)[1]:
                return qty
            covered = free + self.claim("BUY", symbol, remaining, reserve_price)[1]
        with localcontext(_FLOOR):
            return min(qty, covered / (price * (1 + self._taker)))

    def settle(self, side: str, symbol: str, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        """A fill's flows: base in and quote plus fee out for a BUY, the reverse for a SELL."""
        base, quote = assets_of(symbol)
        bought, paid = self.holding(base), self.holding(quote)
        proceeds = EXACT.multiply(qty, price)
        if side == "BUY":
            bought.total = EXACT.add(bought.total, qty)
            paid.total = EXACT.subtract(paid.total, EXACT.add(proceeds, fee))
        else:
            bought.total = EXACT.subtract(bought.total, qty)
            paid.total = EXACT.add(paid.total, EXACT.subtract(proceeds, fee))
