"""Feed failover end to end: two replicas of the real service (two uvicorn processes on
different ports) follow a fake Binance through the real ccxt and share one SQLite file
or one PostgreSQL database. Exactly one process follows each instrument (the fake sees
one depth and one trade subscription per symbol, in all), a pushed book or trade fills
an order posted to either replica once, and when the process running the feed is
killed (SIGKILL: no graceful release, its lease must lapse) the other takes the feed
over within seconds. With the memory store each process is alone and follows every
instrument itself.

The replica running an instrument's feed is told by its /metrics: only a process that
follows the instrument has taken its book snapshot (execution_market_data_messages_total,
kind "book"); the other shows the instrument with zero counts."""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

from app.venues.feeds import LEASE_MS, LEASE_RENEW_SECONDS
from harness.fake_binance import DEPTH, TRADE, FakeBinance, running
from harness.fake_venue import until
from tests.uvicorn_server import Server, running_server
from tests.venues.fed_service import capabilities, fills, order_status, post_limit_buy
from tests.venues.test_ccxt_feeds import books_taken, feed_env, sample

SYMBOLS = ("BTC/USDT", "ETH/USDT")
# A takeover after a kill: the dead holder's lease lapses (LEASE_MS), the survivor sees
# it at its next renewal (LEASE_RENEW_SECONDS), then ccxt connects and takes a snapshot.
# The docs promise about 8 s; the bound leaves room for a loaded machine.
TAKEOVER_SECONDS = 15.0
# How long "still exactly one" is watched: more than one renewal of every process, so a
# replica that wrongly won a lease would have subscribed by then.
STEADY_SECONDS = LEASE_RENEW_SECONDS * 1.5
# After a push has shown its effect, how long a duplicate (a second process taking the
# same push) is given to show one too.
SETTLE_SECONDS = 1.0


@contextmanager
def replicas(tmp_path: Path, env: dict[str, str], count: int = 2) -> Iterator[list[Server]]:
    """`count` uvicorn processes with one environment (one store), each on its own port,
    once each has read the fake's markets."""
    with ExitStack() as stack:
        servers = [stack.enter_context(running_server(tmp_path, env)) for _ in range(count)]
        for server in servers:
            until(partial(markets_loaded, server), "the markets read by every replica")
        yield servers


def markets_loaded(server: Server) -> bool:
    return bool(all(feed["markets_loaded"] for feed in capabilities(server)["market_data_feeds"]))


def subscriptions(fake: FakeBinance, symbols: Sequence[str]) -> dict[tuple[str, str], int]:
    """Open subscriptions per (symbol, stream), over every connection the fake has."""
    return {(symbol, kind): fake.subscribers(symbol, kind) for symbol in symbols for kind in (DEPTH, TRADE)}


def steadily(check: Callable[[], object], what: str, seconds: float = STEADY_SECONDS, every: float = 0.05) -> None:
    """`check()` is truthy at every poll for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"not steadily: {what}"
        time.sleep(every)


def following(servers: Sequence[Server], symbol: str) -> list[Server]:
    """The servers whose feed of `symbol` has taken books (its snapshot at least)."""
    return [server for server in servers if books_taken(server, symbol) > 0]


def the_one_following(servers: Sequence[Server], symbol: str, timeout: float = 10.0) -> Server:
    def alone() -> list[Server]:
        found = following(servers, symbol)
        return found if len(found) == 1 else []

    [holder] = until(alone, f"one replica follows {symbol}", timeout)
    return holder


def partially_filled(server: Server, order_id: str) -> Callable[[], bool]:
    return lambda: order_status(server, order_id) == "PARTIALLY_FILLED"


def messages(servers: Sequence[Server], symbol: str, kind: str) -> float:
    """execution_market_data_messages_total of `kind` for `symbol`, summed over the servers."""
    return sum(sample(server, "execution_market_data_messages_total", symbol, kind=kind) or 0.0 for server in servers)


def test_replicas_on_one_store_follow_each_instrument_once_and_fill_once(tmp_path: Path, storage_url: str) -> None:
    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0)], asks=[(105.0, 1.0)])
        fake.set_book("ETH/USDT", bids=[(10.0, 2.0)], asks=[(11.0, 2.0)])
        env = feed_env(fake, ",".join(SYMBOLS), STORAGE_URL=storage_url)
        with replicas(tmp_path, env) as servers:
            first, second = servers
            until(lambda: all(subscriptions(fake, SYMBOLS).values()), "every stream subscribed")
            # Both replicas have read the markets and claimed (and renew) leases; one
            # subscription per stream in all, and it stays so.
            steadily(lambda: set(subscriptions(fake, SYMBOLS).values()) == {1}, "one subscription per stream")
            holders = {symbol: the_one_following(servers, symbol) for symbol in SYMBOLS}
            for symbol, holder in holders.items():
                [idle] = [server for server in servers if server is not holder]
                assert books_taken(idle, symbol) == 0
                assert messages([idle], symbol, "trade") == 0

            # A book: one order through each replica; the older takes the first unit of
            # the ask, the newer the second and rests for the rest (a book taken twice
            # would fill it again).
            older = post_limit_buy(first, "older", price=100.0, qty=1.0)
            newer = post_limit_buy(second, "newer", price=100.0, qty=3.0)
            assert order_status(second, older["order_id"]) == "NEW"
            assert fake.push_depth("BTC/USDT", asks=[(99.0, 2.0), (105.0, 0.0)]) == 1  # one connection in all
            until(lambda: order_status(first, newer["order_id"]) == "PARTIALLY_FILLED", "the pushed book fills")
            time.sleep(SETTLE_SECONDS)
            assert fills(second, older["order_id"]) == [(1.0, 100.0, "book", 99.0)]
            assert fills(first, newer["order_id"]) == [(1.0, 100.0, "book", 99.0)]
            assert order_status(first, older["order_id"]) == "FILLED"
            assert order_status(second, newer["order_id"]) == "PARTIALLY_FILLED"

            # A trade: 2 ahead of the resting order at 10; a sell of 2.5 there fills
            # half of it (taken twice, the second would fill the other half).
            resting = post_limit_buy(second, "resting", price=10.0, qty=1.0, symbol="ETH/USDT")
            assert fake.push_trade("ETH/USDT", 10.0, 2.5, buyer_is_maker=True) == 1
            until(lambda: order_status(first, resting["order_id"]) == "PARTIALLY_FILLED", "the trade fills")
            time.sleep(SETTLE_SECONDS)
            assert fills(first, resting["order_id"]) == [(0.5, 10.0, "trade", 10.0)]
            assert messages(servers, "ETH/USDT", "trade") == 1
            assert messages(servers, "BTC/USDT", "refused") + messages(servers, "ETH/USDT", "refused") == 0
            assert set(subscriptions(fake, SYMBOLS).values()) == {1}


def test_when_the_replica_running_the_feed_is_killed_the_other_takes_it_over(tmp_path: Path, storage_url: str) -> None:
    symbol = "BTC/USDT"
    with running([symbol]) as fake:
        fake.set_book(symbol, bids=[(98.0, 1.0)], asks=[(105.0, 1.0)])
        env = feed_env(fake, symbol, STORAGE_URL=storage_url)
        with replicas(tmp_path, env) as servers:
            until(lambda: all(subscriptions(fake, [symbol]).values()), "the streams subscribed")
            victim = the_one_following(servers, symbol)
            [survivor] = [server for server in servers if server is not victim]
            steadily(lambda: set(subscriptions(fake, [symbol]).values()) == {1}, "one subscription per stream")
            # Accepted by the victim before it dies: the store keeps it for the survivor's feed.
            before = post_limit_buy(victim, "before-kill", price=100.0, qty=1.0)
            connections = fake.connections

            victim.process.kill()  # SIGKILL: no shutdown, no lease given up
            killed_at = time.monotonic()
            assert victim.process.wait(timeout=10) == -9
            until(lambda: not any(subscriptions(fake, [symbol]).values()), "the victim's connections closed")
            until(lambda: books_taken(survivor, symbol) > 0, "the survivor follows", timeout=TAKEOVER_SECONDS)
            took = time.monotonic() - killed_at
            until(lambda: all(subscriptions(fake, [symbol]).values()), "the survivor subscribed to both streams")
            # Not before the victim's lease lapsed (it was renewed at most one renewal ago).
            assert took >= LEASE_MS / 1000 - LEASE_RENEW_SECONDS - 0.5, took
            assert fake.connections > connections
            steadily(lambda: set(subscriptions(fake, [symbol]).values()) == {1}, "one subscription per stream")

            # A new book fills the order accepted by the victim and a new one, once each.
            after = post_limit_buy(survivor, "after-kill", price=100.0, qty=3.0)
            assert order_status(survivor, before["order_id"]) == "NEW"
            assert fake.push_depth(symbol, asks=[(99.0, 2.0), (105.0, 0.0)]) == 1
            until(lambda: order_status(survivor, after["order_id"]) == "PARTIALLY_FILLED", "the new book fills")
            time.sleep(SETTLE_SECONDS)
            assert fills(survivor, before["order_id"]) == [(1.0, 100.0, "book", 99.0)]
            assert fills(survivor, after["order_id"]) == [(1.0, 100.0, "book", 99.0)]
            print(f"takeover {took:.1f} s after SIGKILL")  # shown with -s


def test_with_the_memory_store_each_replica_follows_every_instrument_itself(tmp_path: Path) -> None:
    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0)], asks=[(105.0, 1.0)])
        env = feed_env(fake, ",".join(SYMBOLS))  # memory://
        with replicas(tmp_path, env) as servers:
            until(lambda: set(subscriptions(fake, SYMBOLS).values()) == {2}, "two subscriptions per stream")
            until(lambda: len(following(servers, "BTC/USDT")) == 2, "both replicas take the snapshot")
            orders = [post_limit_buy(server, "own", price=100.0, qty=3.0) for server in servers]
            assert fake.push_depth("BTC/USDT", asks=[(99.0, 1.0), (105.0, 0.0)]) == 2
            for server, order in zip(servers, orders, strict=True):
                until(partially_filled(server, order["order_id"]), "the book fills the order in each replica")
                assert fills(server, order["order_id"]) == [(1.0, 100.0, "book", 99.0)]
            assert set(subscriptions(fake, SYMBOLS).values()) == {2}
