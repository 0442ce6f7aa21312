"""Instrument rules (INSTRUMENTS_FILE): what a venue and a risk desk refuse, per
`EXCHANGE:SYMBOL`, read and validated (app.core.controls applies them)."""

import json
import tomllib
from collections.abc import Collection
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from app.core.rules import InstrumentRules
from app.core.values import Instrument

# A number or a decimal string, finite and > 0; a float is read as the decimal it was
# written as (0.1 is one tenth).
Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
# A step (tick or lot) no finer than 1e-18: an amount up to 1e15 is then at most 1e33
# steps, which exact arithmetic divides without running out of digits.
Step = Annotated[Decimal, Field(ge=Decimal("1e-18"), allow_inf_nan=False)]


class RulesIn(BaseModel):
    """One instrument's rules as the file gives them; an absent rule does not apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick_size: Step | None = None  # limit prices are multiples of it
    lot_size: Step | None = None  # quantities are multiples of it
    min_qty: Positive | None = None
    max_qty: Positive | None = None
    min_notional: Positive | None = None  # qty x price
    max_notional: Positive | None = None
    max_open_orders: PositiveInt | None = None  # open orders of the instrument, this one included
    max_position: Positive | None = None  # |net position| with the same side's open orders as filled

    @model_validator(mode="after")
    def _ranges_not_empty(self) -> "RulesIn":
        for low, high in (("min_qty", "max_qty"), ("min_notional", "max_notional")):
            low_value, high_value = getattr(self, low), getattr(self, high)
            if low_value is not None and high_value is not None and low_value > high_value:
                raise ValueError(f"{low} {low_value} is above {high} {high_value}")
        return self


class RulesFileError(ValueError):
    """INSTRUMENTS_FILE cannot be used; the message is one line that says why."""


def load_rules(path: str, exchanges: Collection[str], symbols: Collection[str]) -> dict[Instrument, InstrumentRules]:
    """Rules by instrument from a JSON or TOML file (chosen by its extension). Every
    instrument must be allowlisted: a misspelt one would leave its limits off unseen."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise RulesFileError(f"{path}: must end in .json or .toml")
    try:
        text = file.read_text(encoding="utf-8")
        raw: Any = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except OSError as error:
        raise RulesFileError(f"{path}: cannot be read ({error.strerror})") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise RulesFileError(f"{path}: not valid {suffix[1:].upper()} ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise RulesFileError(f'{path}: must map "EXCHANGE:SYMBOL" to rules')
    rules: dict[Instrument, InstrumentRules] = {}
    for name, values in raw.items():
        exchange, colon, symbol = name.partition(":")
        if not colon or not exchange or not symbol:
            raise RulesFileError(f'{path}: {name!r} is not "EXCHANGE:SYMBOL"')
        if exchange not in exchanges or symbol not in symbols:
            raise RulesFileError(f"{path}: {name!r} is not an allowlisted exchange and symbol")
        try:
            rules[(exchange, symbol)] = InstrumentRules(**RulesIn.model_validate(values).model_dump())
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or 'rules'}: {problem['msg']}"
                for problem in error.errors()
            )
            raise RulesFileError(f"{path}: {name}: {problems}") from None
    return rules
