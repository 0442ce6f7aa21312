"""Trading controls: each refusal code, the order the checks run in, REDUCING, MAX_POSITION."""

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from app.core.controls import Controls, Exposure, TradingState, takes_effect
from app.core.errors import IntentRefused
from app.core.rules import InstrumentRules
from app.core.values import Quote
from app.core.vocabulary import Side, TradingStateName
from tests.core.factories import BTC, ETH, make_order, make_quote

ACTIVE = TradingState()
REDUCING = TradingState(TradingStateName.REDUCING, "risk")
HALTED = TradingState(TradingStateName.HALTED, "ops")
QUOTE = make_quote(99, 100)
# Every rule set, so each case below also breaks the checks that come after its own.
STRICT = InstrumentRules(
    tick_size=Decimal("0.5"),
    lot_size=Decimal("0.1"),
    min_qty=Decimal("0.5"),
    max_qty=Decimal(10),
    min_notional=Decimal(50),
    max_notional=Decimal(500),
    max_open_orders=2,
    max_position=Decimal(3),
)


def crowded() -> Exposure:
    """Two open orders (at max_open_orders) and 3 bought on open orders (at max_position)."""
    return Exposure(position=Decimal(0), open_orders=2, open_buy=Decimal(3))


def never() -> Exposure:
    raise AssertionError("the exposure was read although no check needs it")


def code_of(
    controls: Controls,
    side: Side,
    qty: float,
    limit: float | None,
    *,
    state: TradingState = ACTIVE,
    quote: Quote | None = QUOTE,
    exposure: Exposure | None = None,
) -> str | None:
    """The code vet refuses with, or None if it lets the intent in."""
    held = exposure or Exposure()
    try:
        controls.vet(make_order(1, side, qty, limit), state, quote, lambda: held)
    except IntentRefused as refusal:
        return refusal.code
    return None


@dataclass
class Case:
    code: str
    qty: float
    limit: float | None
    state: TradingState = ACTIVE
    quote: Quote | None = QUOTE
    exposure: Exposure = field(default_factory=crowded)


# In the documented order; each breaks its own check and some of the later ones too.
LADDER = [
    Case("TRADING_HALTED", 0.05, 100.3, state=HALTED),
    Case("REDUCE_ONLY", 0.05, 100.3, state=REDUCING),
    Case("TICK_SIZE", 0.05, 100.3),
    Case("LOT_SIZE", 0.05, 100.5),
    Case("MIN_QTY", 0.2, 100.0),
    Case("MAX_QTY", 20.0, 100.0),
    Case("NO_QUOTE", 1.0, None, quote=None),
    Case("MIN_NOTIONAL", 0.5, 99.5),
    Case("MAX_NOTIONAL", 6.0, 100.0),
    Case("MAX_OPEN_ORDERS", 1.0, 100.0),
    Case("MAX_POSITION", 1.0, 100.0, exposure=Exposure(open_orders=1, open_buy=Decimal(3))),
]


@pytest.mark.parametrize("case", LADDER, ids=[case.code for case in LADDER])
def test_each_refusal_in_the_documented_order(case: Case) -> None:
    """The first check an intent fails names the refusal, whatever later checks it also fails."""
    controls = Controls({BTC: STRICT})
    assert (
        code_of(controls, Side.BUY, case.qty, case.limit, state=case.state, quote=case.quote, exposure=case.exposure)
        == case.code
    )


def test_the_ladder_is_the_documented_order() -> None:
    assert [case.code for case in LADDER] == [
        "TRADING_HALTED",
        "REDUCE_ONLY",
        "TICK_SIZE",
        "LOT_SIZE",
        "MIN_QTY",
        "MAX_QTY",
        "NO_QUOTE",
        "MIN_NOTIONAL",
        "MAX_NOTIONAL",
        "MAX_OPEN_ORDERS",
        "MAX_POSITION",
    ]


def test_an_intent_within_every_rule_passes() -> None:
    controls = Controls({BTC: STRICT})
    assert code_of(controls, Side.BUY, 1.0, 100.0, exposure=Exposure(open_orders=1, open_buy=Decimal(2))) is None


def test_halted_refuses_even_without_rules_and_reads_nothing() -> None:
    with pytest.raises(IntentRefused) as refused:
        Controls().vet(make_order(1), HALTED, QUOTE, never)
    assert refused.value.code == "TRADING_HALTED"
    assert "ops" in refused.value.detail


def test_active_without_rules_reads_no_exposure() -> None:
    """No rules and ACTIVE: nothing to check, the exposure is never worked out."""
    Controls({ETH: STRICT}).vet(make_order(1, qty=1e9), ACTIVE, None, never)


def test_rules_without_limits_read_no_exposure() -> None:
    rules = InstrumentRules(tick_size=Decimal("0.1"), min_notional=Decimal(1))
    Controls({BTC: rules}).vet(make_order(1, qty=1.0, limit=100.1), ACTIVE, None, never)


def test_market_intent_is_priced_at_the_touch_for_notional() -> None:
    """A MARKET BUY's notional uses the ask, a SELL's the bid: 5 x 100 passes max 500, 5 x 101 not."""
    controls = Controls({BTC: InstrumentRules(max_notional=Decimal(500))})
    assert code_of(controls, Side.BUY, 5.0, None, quote=make_quote(99, 100)) is None
    assert code_of(controls, Side.BUY, 5.0, None, quote=make_quote(99, 101)) == "MAX_NOTIONAL"
    assert code_of(controls, Side.SELL, 5.0, None, quote=make_quote(100.1, 101)) == "MAX_NOTIONAL"


def test_tick_and_lot_are_exact_decimals() -> None:
    """0.3 is a multiple of lot 0.1 and 100.3 of tick 0.1, although neither is in binary."""
    controls = Controls({BTC: InstrumentRules(tick_size=Decimal("0.1"), lot_size=Decimal("0.1"))})
    assert code_of(controls, Side.BUY, 0.3, 100.3) is None
    assert code_of(controls, Side.BUY, 0.35, 100.3) == "LOT_SIZE"
    assert code_of(controls, Side.BUY, 0.3, 100.35) == "TICK_SIZE"


@pytest.mark.parametrize(
    ("position", "open_sell", "side", "qty", "allowed"),
    [
        ("5", "0", Side.SELL, 2.0, True),  # shrinks
        ("5", "0", Side.SELL, 5.0, True),  # to flat
        ("5", "0", Side.SELL, 6.0, False),  # through zero
        ("5", "0", Side.BUY, 1.0, False),  # grows
        ("5", "4", Side.SELL, 1.0, True),  # 1 left with the open SELLs, to flat
        ("5", "4", Side.SELL, 2.0, False),  # the open SELLs count: 1 -> -1 passes zero
        ("2", "0", Side.SELL, 4.0, False),  # 2 -> -2: no smaller
        ("0", "0", Side.SELL, 1.0, False),  # flat: nothing to reduce
        ("0", "0", Side.BUY, 1.0, False),
        ("-3", "0", Side.BUY, 3.0, True),  # short covers
        ("-3", "0", Side.BUY, 4.0, False),
        ("-3", "0", Side.SELL, 1.0, False),
    ],
)
def test_reducing_takes_only_intents_that_shrink_the_position(
    position: str, open_sell: str, side: Side, qty: float, allowed: bool
) -> None:
    """REDUCING: the position with the side's open orders filled must move toward zero, not past it."""
    exposure = Exposure(position=Decimal(position), open_orders=1, open_sell=Decimal(open_sell))
    code = code_of(Controls(), side, qty, None, state=REDUCING, exposure=exposure)
    assert code == (None if allowed else "REDUCE_ONLY")


def test_reducing_ignores_the_other_sides_open_orders() -> None:
    """Long 5 with 10 open BUYs: a SELL of 3 still reduces (the BUYs are not its side)."""
    exposure = Exposure(position=Decimal(5), open_orders=1, open_buy=Decimal(10))
    assert code_of(Controls(), Side.SELL, 3.0, None, state=REDUCING, exposure=exposure) is None


@pytest.mark.parametrize(
    ("side", "qty", "allowed"),
    [
        (Side.SELL, 1.0, True),  # 5 -> 4: still over 3, but smaller
        (Side.SELL, 9.0, True),  # 5 -> -4: over 3, but no larger in size
        (Side.SELL, 10.0, True),  # 5 -> -5: the same size
        (Side.SELL, 11.0, False),  # 5 -> -6: grows
        (Side.BUY, 0.1, False),  # 5 -> 5.1: grows
    ],
)
def test_max_position_only_refuses_growth(side: Side, qty: float, allowed: bool) -> None:
    """Over a (lowered) max_position of 3 at 5, an intent that does not grow |position| passes."""
    controls = Controls({BTC: InstrumentRules(max_position=Decimal(3))})
    code = code_of(controls, side, qty, None, exposure=Exposure(position=Decimal(5)))
    assert code == (None if allowed else "MAX_POSITION")


def test_max_position_counts_the_sides_open_orders() -> None:
    """Open BUYs of 2.5 and a position of 0.5 leave no room for another BUY under max 3."""
    controls = Controls({BTC: InstrumentRules(max_position=Decimal(3))})
    exposure = Exposure(position=Decimal("0.5"), open_orders=1, open_buy=Decimal("2.5"), open_sell=Decimal(9))
    assert code_of(controls, Side.BUY, 0.1, None, exposure=exposure) == "MAX_POSITION"
    assert code_of(controls, Side.BUY, 0.1, None, exposure=Exposure(position=Decimal("2.9"))) is None
    # The open SELLs are on the other side: a SELL of 3 projects 0.5 - 9 - 3 = -11.5, which grows.
    assert code_of(controls, Side.SELL, 3.0, None, exposure=exposure) == "MAX_POSITION"


def test_max_open_orders_counts_this_one() -> None:
    """max_open_orders 2: one open order leaves room, two do not."""
    controls = Controls({BTC: InstrumentRules(max_open_orders=2)})
    assert code_of(controls, Side.BUY, 1.0, None, exposure=Exposure(open_orders=1)) is None
    assert code_of(controls, Side.BUY, 1.0, None, exposure=Exposure(open_orders=2)) == "MAX_OPEN_ORDERS"


@pytest.mark.parametrize(
    ("before", "wanted", "only_stricter", "effect"),
    [
        (TradingStateName.ACTIVE, TradingStateName.HALTED, True, True),
        (TradingStateName.ACTIVE, TradingStateName.REDUCING, True, True),
        (TradingStateName.REDUCING, TradingStateName.HALTED, True, True),
        (TradingStateName.HALTED, TradingStateName.REDUCING, True, False),
        (TradingStateName.REDUCING, TradingStateName.REDUCING, True, False),
        (TradingStateName.HALTED, TradingStateName.ACTIVE, False, True),
        (TradingStateName.ACTIVE, TradingStateName.ACTIVE, False, True),
    ],
)
def test_takes_effect(before: TradingStateName, wanted: TradingStateName, only_stricter: bool, effect: bool) -> None:
    """only_stricter lets a change through only when it refuses more; otherwise every change counts."""
    assert takes_effect(TradingState(before), TradingState(wanted), only_stricter=only_stricter) == effect


def test_exposure_bookkeeping() -> None:
    """opened / arrived / filled keep position, open count and open quantities exact."""
    exposure = Exposure()
    exposure.opened(Side.BUY, Decimal("0.3"))
    exposure.arrived(Side.SELL, Decimal("0.1"), Decimal("0.2"), True)
    assert exposure == Exposure(Decimal("-0.1"), 2, Decimal("0.3"), Decimal("0.2"))
    assert exposure.with_open_side(Side.BUY) == Decimal("0.2")
    assert exposure.with_open_side(Side.SELL) == Decimal("-0.3")
    exposure.filled(Side.BUY, Decimal("0.1"), ended=False)
    exposure.filled(Side.SELL, Decimal("0.2"), ended=True)
    assert exposure == Exposure(Decimal("-0.1"), 1, Decimal("0.2"), Decimal(0))
