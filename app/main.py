"""The spec's entry point: `uvicorn app.main:app`. Everything is built by the web
layer's factory from settings read once, here, from the environment."""

import sys

from app.core.errors import AccountMismatch
from app.ops.limits import raise_open_files_limit
from app.service.live import LiveOrdersLeft
from app.service.settings import load_settings
from app.venues.feed_runner import UnknownExchange
from app.web.app import create_app

__all__ = ["app", "create_app"]

raise_open_files_limit()  # each connection holds a descriptor
try:
    app = create_app(load_settings(), freeze_gc=True)
except AccountMismatch as mismatch:  # PAPER_BALANCES over open orders it cannot cover
    print(f"execution: cannot turn PAPER_BALANCES on: {mismatch.detail}", file=sys.stderr)
    raise SystemExit(2) from None
except LiveOrdersLeft as left:  # open orders this process would take for what they are not (live, paper)
    print(f"execution: cannot start: {left}", file=sys.stderr)
    raise SystemExit(2) from None
except UnknownExchange as unknown:  # a MARKET_DATA_FEEDS or LIVE_EXCHANGES name ccxt does not have
    print(f"execution: invalid configuration: {unknown}", file=sys.stderr)
    raise SystemExit(2) from None
