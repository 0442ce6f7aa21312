"""Whether ccxt has an exchange, looked up on disk: the service checks its settings
without importing ccxt (about a second and 80 MB), which only the feeds' process and
live execution load."""

import importlib.util
from collections.abc import Iterable
from pathlib import Path

from app.venues.feed_runner import UnknownExchange


def check_ccxt_has(exchanges: Iterable[str], *, package: str, setting: str) -> None:
    """UnknownExchange (naming `setting`) unless ccxt's `package` (`pro`: websockets,
    `async_support`: async REST) has a module for each exchange."""
    found = importlib.util.find_spec("ccxt")
    folder = None if found is None or found.origin is None else Path(found.origin).parent / package
    for name in exchanges:
        if folder is None or not name.isidentifier() or not (folder / f"{name}.py").is_file():
            raise UnknownExchange(f"{setting}: ccxt has no exchange {name!r}")
