"""The feeds' own process: ccxt runs here, beside the service, so that its handling of
every websocket message (a thousand a second is common) does not take the service's
time. The service starts it (app.venues.feeds.ChildProcessSource) with its
configuration as the one argument (JSON: exchanges, symbols, base_urls), tells it
what to follow on stdin ({"follow": [[exchange, symbol], ...]}, one JSON line each
time that changes) and reads what it gets on stdout (a JSON array of feed_runner's
messages per line, one line per hand-over). It ends when stdin ends: the service
stopped or died."""

import asyncio
import json
import sys
from typing import Any

from app.venues.ccxt_exchange import ccxt_exchange
from app.venues.feed_runner import FeedRunner, Message


def emit(batch: list[Message]) -> None:
    sys.stdout.buffer.write(json.dumps(batch, separators=(",", ":")).encode() + b"\n")
    sys.stdout.buffer.flush()


async def run(config: dict[str, Any]) -> None:
    base_urls: dict[str, str] = config["base_urls"]
    clients = {name: ccxt_exchange(name, base_urls.get(name)) for name in config["exchanges"]}
    runner = FeedRunner(clients, config["symbols"], emit)
    runner.start()
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    try:
        while line := await commands.readline():
            command = json.loads(line)
            runner.follow({(exchange, symbol) for exchange, symbol in command["follow"]})
    finally:
        await runner.stop()


def main() -> None:
    asyncio.run(run(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
