"""Pointing an exchange's addresses elsewhere (a testnet, a self-hosted gateway, a test's
fake exchange): every REST and websocket address keeps its path, and takes the scheme,
host and port of one base URL (checked as a setting: app.service.settings.check_base)."""

from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

# A websocket address keeps being one: the base's http becomes ws, https wss.
_WEBSOCKET = {"http": "ws", "https": "wss"}


def rebase(addresses: Any, base: str) -> Any:
    """ccxt's `urls["api"]` (a string, or nested mappings of strings) with every address
    on `base`'s scheme, host and port. Anything that is not an address is kept."""
    if isinstance(addresses, Mapping):
        return {key: rebase(value, base) for key, value in addresses.items()}
    if isinstance(addresses, str) and "://" in addresses:
        return _rebase_one(addresses, urlsplit(base))
    return addresses


def _rebase_one(address: str, base: SplitResult) -> str:
    parts = urlsplit(address)
    websocket = parts.scheme in ("ws", "wss")
    scheme: str = _WEBSOCKET[base.scheme] if websocket else base.scheme
    return urlunsplit((scheme, base.netloc, parts.path, parts.query, parts.fragment))
