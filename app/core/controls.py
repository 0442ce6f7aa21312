"""Trading controls an intent passes after its duplicate check: the trading state (the
kill switch), the instrument's rules, then its risk limits. Pure: a store calls `vet`
inside the atomic step that admits the order, with what it holds at that moment, so a
check and the order it lets in can never be split by a racing intent."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from app.core.errors import IntentRefused
from app.core.matching import touch
from app.core.rules import InstrumentRules
from app.core.values import EXACT, Quote, exact, shown
from app.core.vocabulary import Side, TradingStateName


@dataclass(frozen=True, slots=True)
class TradingState:
    state: TradingStateName = TradingStateName.ACTIVE
    reason: str | None = None
    updated_at: int = 0  # microseconds since the epoch


def takes_effect(before: TradingState, wanted: TradingState, *, only_stricter: bool) -> bool:
    """Whether setting `wanted` over `before` changes anything: always, unless it may
    only make the state stricter (start-up) and does not."""
    return not only_stricter or wanted.state.strictness > before.state.strictness


@dataclass
class Exposure:
    """An instrument's net filled position and what its open orders still want."""

    # Quantities are exact decimals (sums of what clients sent), added in the exact
    # context: cheaper than fractions on the hot path.
    position: Decimal = Decimal(0)  # signed: long > 0
    open_orders: int = 0
    open_buy: Decimal = Decimal(0)  # remaining quantity of open BUY orders
    open_sell: Decimal = Decimal(0)

    @classmethod
    def of(cls, position: Decimal, open_orders: Iterable[tuple[Side, Decimal]]) -> "Exposure":
        """The exposure of a net `position` and open orders (side, remaining quantity)."""
        exposure = cls(position=position)
        for side, remaining in open_orders:
            exposure.opened(side, remaining)
        return exposure

    def with_open_side(self, side: Side) -> Decimal:
        """The position if every open order on `side` filled."""
        if side == Side.BUY:
            return EXACT.add(self.position, self.open_buy)
        return EXACT.subtract(self.position, self.open_sell)

    def opened(self, side: Side, remaining: Decimal) -> None:
        self.open_orders += 1
        self._add(side, remaining)

    def arrived(self, side: Side, filled: Decimal, remaining: Decimal, still_open: bool) -> None:
        """An order was admitted and matched on arrival: it filled `filled`, and rests
        with `remaining` if it is `still_open`."""
        self.position = EXACT.add(self.position, filled) if side == Side.BUY else EXACT.subtract(self.position, filled)
        if still_open:
            self.opened(side, remaining)

    def filled(self, side: Side, qty: Decimal, *, ended: bool) -> None:
        """An open order on `side` filled `qty` (or, canceled, gave up `qty`); `ended`:
        it is no longer open."""
        self.open_orders -= ended
        self._add(side, -qty)

    def _add(self, side: Side, qty: Decimal) -> None:
        if side == Side.BUY:
            self.open_buy = EXACT.add(self.open_buy, qty)
        else:
            self.open_sell = EXACT.add(self.open_sell, qty)


class Intent(Protocol):
    """What the controls look at of an order being admitted."""

    @property
    def exchange(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def qty(self) -> float: ...
    @property
    def limit_price(self) -> float | None: ...


class Controls:
    """The checks, given the rules by instrument (empty: only the trading state)."""

    def __init__(self, rules: dict[tuple[str, str], InstrumentRules] | None = None) -> None:
        self.rules = rules or {}

    def vet(self, intent: Intent, state: TradingState, quote: Quote | None, exposure: Callable[[], Exposure]) -> None:
        """Raise IntentRefused, naming the first control the intent fails, in the order:
        trading state, instrument rules, risk limits. `exposure` is called only if a
        check needs it (reading it can cost a query)."""
        if state.state == TradingStateName.HALTED:
            raise IntentRefused(
                "TRADING_HALTED", f"Trading is HALTED ({state.reason or 'no reason given'}): no new order is accepted"
            )
        rules = self.rules.get((intent.exchange, intent.symbol))
        if rules is None and state.state == TradingStateName.ACTIVE:
            return
        reducing = state.state == TradingStateName.REDUCING
        held = exposure() if reducing or (rules is not None and rules.needs_exposure) else None
        # Arithmetic below goes through EXACT's methods (or copy_abs/copy_negate, which
        # never round): no context switch on the hot path.
        if reducing:
            assert held is not None
            _check_reduces(intent, held, state)
        if rules is not None:
            _check_rules(intent, rules, quote)
            if held is not None:
                _check_limits(intent, rules, held)


def _name(intent: Intent) -> str:
    return f"{intent.exchange}:{intent.symbol}"


def _signed(intent: Intent) -> Decimal:
    qty = exact(intent.qty)
    return qty if intent.side == Side.BUY else qty.copy_negate()


def _projection(intent: Intent, held: Exposure) -> tuple[Decimal, Decimal]:
    """The position with the open orders on the intent's side as filled, before the
    intent and after it."""
    before = held.with_open_side(intent.side)
    return before, EXACT.add(before, _signed(intent))


def _check_reduces(intent: Intent, held: Exposure, state: TradingState) -> None:
    """While REDUCING, an intent must bring its instrument's position (with the open
    orders on its side as filled) closer to zero without going past it."""
    before, after = _projection(intent, held)
    if before == 0 or after.copy_abs() >= before.copy_abs() or (after != 0 and (after > 0) != (before > 0)):
        raise IntentRefused(
            "REDUCE_ONLY",
            f"Trading is REDUCING ({state.reason or 'no reason given'}): only intents that shrink the position are "
            f"accepted; {_name(intent)} position with open {intent.side} orders is {shown(before)}, "
            f"this intent would make it {shown(after)}",
        )


def _check_rules(intent: Intent, rules: InstrumentRules, quote: Quote | None) -> None:
    name = _name(intent)
    qty = exact(intent.qty)
    limit = None if intent.limit_price is None else exact(intent.limit_price)
    if rules.tick_size is not None and limit is not None and EXACT.remainder(limit, rules.tick_size) != 0:
        raise IntentRefused(
            "TICK_SIZE",
            f"limit_price {shown(limit)} is not a multiple of tick_size {shown(rules.tick_size)} for {name}",
        )
    if rules.lot_size is not None and EXACT.remainder(qty, rules.lot_size) != 0:
        raise IntentRefused(
            "LOT_SIZE", f"qty {shown(qty)} is not a multiple of lot_size {shown(rules.lot_size)} for {name}"
        )
    if rules.min_qty is not None and qty < rules.min_qty:
        raise IntentRefused("MIN_QTY", f"qty {shown(qty)} is below min_qty {shown(rules.min_qty)} for {name}")
    if rules.max_qty is not None and qty > rules.max_qty:
        raise IntentRefused("MAX_QTY", f"qty {shown(qty)} is above max_qty {shown(rules.max_qty)} for {name}")
    if not rules.prices_intents:
        return
    price = limit if limit is not None else (None if quote is None else touch(intent.side, quote))
    if price is None:
        raise IntentRefused(
            "NO_QUOTE", f"No quote is known for {name}: a MARKET intent cannot be priced for its notional rules"
        )
    notional = EXACT.multiply(qty, price)
    if rules.min_notional is not None and notional < rules.min_notional:
        raise IntentRefused(
            "MIN_NOTIONAL",
            f"notional {shown(notional)} (qty x price) is below min_notional {shown(rules.min_notional)} for {name}",
        )
    if rules.max_notional is not None and notional > rules.max_notional:
        raise IntentRefused(
            "MAX_NOTIONAL",
            f"notional {shown(notional)} (qty x price) is above max_notional {shown(rules.max_notional)} for {name}",
        )


def _check_limits(intent: Intent, rules: InstrumentRules, held: Exposure) -> None:
    name = _name(intent)
    if rules.max_open_orders is not None and held.open_orders >= rules.max_open_orders:
        raise IntentRefused(
            "MAX_OPEN_ORDERS",
            f"{name} has {held.open_orders} open orders; max_open_orders is {rules.max_open_orders}",
        )
    if rules.max_position is not None:
        before, after = _projection(intent, held)
        # An intent that does not grow the position is never refused for its size.
        if after.copy_abs() > rules.max_position and after.copy_abs() > before.copy_abs():
            raise IntentRefused(
                "MAX_POSITION",
                f"{name} position with open {intent.side} orders would be {shown(after)}; "
                f"max_position is {shown(rules.max_position)}",
            )
