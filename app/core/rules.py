"""An instrument's rules: what a venue and a risk desk refuse (read from INSTRUMENTS_FILE
by the service layer; applied by `app.core.controls`)."""

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """The rules of one instrument; an absent rule does not apply."""

    tick_size: Decimal | None = None  # limit prices are multiples of it
    lot_size: Decimal | None = None  # quantities are multiples of it
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    min_notional: Decimal | None = None  # qty x price
    max_notional: Decimal | None = None
    max_open_orders: int | None = None  # open orders of the instrument, this one included
    max_position: Decimal | None = None  # |net position| with the same side's open orders as filled

    @property
    def prices_intents(self) -> bool:
        """Whether a check needs the intent's price (a MARKET one's comes from the quote)."""
        return self.min_notional is not None or self.max_notional is not None

    @property
    def needs_exposure(self) -> bool:
        """Whether a check needs the instrument's position and open orders."""
        return self.max_open_orders is not None or self.max_position is not None
