"""The Server-Sent Events stream in real uvicorn processes: messages, resume by header
and by query, filters, heartbeat, 410, the token, a slow subscriber let go without
slowing intake, a restart, and several workers sharing one SQLite file or one
PostgreSQL database."""

import http.client
import itertools
import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.core.order import TRANSITIONS
from app.core.vocabulary import OrderStatus
from tests.conftest import URL, intent
from tests.event_stream import STREAM, EventStream, stream
from tests.uvicorn_server import Server, all_orders, running_server, server_get

QUOTES = "/execution/market-data/quotes"
TOKEN = "s3cret-token-0123456789"


def post_limits(server: Server, keys: list[str], price: float = 10.0) -> list[str]:
    ids = []
    for key in keys:
        status, body = server.request("POST", URL, intent(idempotency_key=key, type="LIMIT", limit_price=price))
        assert status == 201, body
        ids.append(body["order_id"])
    return ids


def test_the_stream_sends_each_event_and_resumes_by_header_and_by_query(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        with stream(server) as live:
            assert live.response.status == 200
            assert live.response.getheader("content-type", "").startswith("text/event-stream")
            ids = post_limits(server, ["a", "b", "c"])
            got = live.events(3)
        assert [(m["id"], m["event"], m["data"]["seq"]) for m in got] == [
            ("1", "new", 1),
            ("2", "new", 2),
            ("3", "new", 3),
        ]
        assert [m["data"]["order"]["order_id"] for m in got] == ids
        assert got[0]["data"] == server.request("GET", "/execution/events?limit=1")[1]["items"][0]

        post_limits(server, ["d", "e"])
        with stream(server, headers={"Last-Event-ID": "3"}) as resumed:
            assert resumed.message() == {"id": "3"}  # the opening names where it starts
            assert [m["data"]["seq"] for m in resumed.events(2)] == [4, 5]
        with stream(server) as fresh:  # without either: after the head, and it says so
            assert fresh.message() == {"id": "5"}
        with stream(server, f"{STREAM}?after=4") as resumed:
            assert [m["data"]["seq"] for m in resumed.events(1)] == [5]
        # A reconnecting EventSource keeps its first URL: the header it adds wins.
        with stream(server, f"{STREAM}?after=0", headers={"Last-Event-ID": "4"}) as resumed:
            assert [m["data"]["seq"] for m in resumed.events(1)] == [5]
        status, _ = server.request(
            "POST", QUOTES, {"exchange": "binance", "symbol": "BTC/USDT", "bid": 9.0, "ask": 9.5}
        )
        assert status == 200
        with stream(server, f"{STREAM}?after=0&types=fill,partial_fill&symbol=BTC/USDT") as fills:
            assert [(m["event"], m["data"]["seq"]) for m in fills.events(5)] == [("fill", n) for n in range(6, 11)]
        for bad in ("?types=nope", "?after=-1", "?limit=5"):
            status, body = server.request("GET", f"{STREAM}{bad}")
            assert (status, body["code"]) == (400, "VALIDATION_ERROR"), bad
        status, body = server.request("GET", STREAM, headers={"Last-Event-ID": "x"})
        assert status == 400


def test_a_quiet_stream_sends_heartbeats(tmp_path: Path) -> None:
    with running_server(tmp_path, {"EVENTS_HEARTBEAT_SECONDS": "0.2"}) as server, stream(server) as quiet:
        assert quiet.message() == {"id": "0"}  # where it starts: the empty journal's head
        assert quiet.message() == {"comment": "heartbeat"}
        assert quiet.message() == {"comment": "heartbeat"}
        post_limits(server, ["after-quiet"])
        assert quiet.events(1)[0]["data"]["seq"] == 1


def test_history_no_longer_kept_is_410_before_the_stream_starts(tmp_path: Path) -> None:
    with running_server(tmp_path, {"EVENTS_RETAIN": "2"}) as server:
        post_limits(server, ["a", "b", "c", "d"])
        for headers in ({"Last-Event-ID": "1"}, {}):
            path = f"{STREAM}?after=0" if not headers else STREAM
            status, body = server.request("GET", path, headers=headers)
            assert (status, body["code"], body["oldest_seq"], body["newest_seq"]) == (410, "EVENTS_EXPIRED", 3, 4)
        with stream(server, headers={"Last-Event-ID": "2"}) as kept:
            assert [m["data"]["seq"] for m in kept.events(2)] == [3, 4]


def test_a_browser_stream_passes_the_token_in_the_query(tmp_path: Path) -> None:
    with running_server(tmp_path, {"EXECUTION_API_TOKEN": TOKEN}) as server:
        assert server.request("GET", f"{STREAM}?after=0")[0] == 401
        assert server.request("GET", f"{STREAM}?after=0&access_token=wrong-token-0123456789")[0] == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert server.request("POST", URL, intent(), headers=auth)[0] == 201
        with stream(server, f"{STREAM}?after=0&access_token={TOKEN}") as browser:
            assert browser.events(1)[0]["event"] == "new"
        # The token in a URL never reaches the log.
        assert TOKEN not in server.log()


def test_a_subscriber_that_stops_reading_is_let_go_and_resumes_without_loss(tmp_path: Path) -> None:
    """Its queue is 20 events: it stops reading, 8,000 intents are all answered 201
    meanwhile, and when it reads again it finds what it was sent, then `overflow`
    naming the last seq sent; resuming from there gives the rest, none twice. (So
    many because what the subscriber is sent first fills the socket buffers, about
    4 MiB on loopback, before its sends wait on it.)"""
    total = 8000
    with running_server(tmp_path, {"EVENTS_QUEUE": "20"}) as server:
        address = urlsplit(server.base_url)
        slow = EventStream(server, f"{STREAM}?after=0", receive_buffer=4096)
        assert slow.response.status == 200
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=20)
        for n in range(total):  # one keep-alive connection: intake is not waiting on the subscriber
            body = json.dumps(intent(idempotency_key=f"k{n}"))
            connection.request("POST", URL, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 201
        connection.close()
        messages = []
        while not messages or messages[-1].get("event") != "overflow":
            message = slow.message()
            assert message, "the stream ended without an overflow message"
            # Once it reads again, a subscriber that fell behind is let go at once; a
            # heartbeat first means the socket buffers held every event (more are needed).
            assert "comment" not in message, "a heartbeat came instead of an overflow"
            messages.append(message)
        assert slow.message() == {}  # then the stream ends
        slow.close()
        assert messages[0] == {"id": "0"}  # the opening: it starts after seq 0
        seqs = [int(message["id"]) for message in messages[1:-1]]
        assert seqs == list(range(1, len(seqs) + 1))
        assert messages[-1]["data"] == {"last_seq": seqs[-1]}
        assert seqs[-1] < total
        with stream(server, headers={"Last-Event-ID": str(seqs[-1])}) as again:
            rest = again.events(total - seqs[-1])
        assert [m["data"]["seq"] for m in rest] == list(range(seqs[-1] + 1, total + 1))


def test_after_a_restart_a_client_resuming_gets_exactly_what_it_missed(tmp_path: Path) -> None:
    env = {"STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}"}
    with running_server(tmp_path, env) as server:
        with stream(server) as live:
            post_limits(server, ["seen-1", "seen-2"])
            last = live.events(2)[-1]["data"]["seq"]
        post_limits(server, ["missed-1", "missed-2"])
    with running_server(tmp_path, env) as server, stream(server, headers={"Last-Event-ID": str(last)}) as resumed:
        missed = resumed.events(2)
        post_limits(server, ["after-restart"])
        later = resumed.events(1)
    assert [(m["data"]["seq"], m["data"]["order"]["idempotency_key"]) for m in [*missed, *later]] == [
        (3, "missed-1"),
        (4, "missed-2"),
        (5, "after-restart"),
    ]


def test_the_journal_id_says_whether_a_seq_from_before_a_restart_still_means_the_same(tmp_path: Path) -> None:
    """A memory store numbers from 1 again at each start, under a new Journal-Id; a
    SQLite file keeps its journal and its id. The stream and the events page name it."""

    def journal_ids(env: dict[str, str]) -> set[str]:
        with running_server(tmp_path, env) as server, stream(server) as live:
            _, page_headers, _ = server.fetch("GET", "/execution/events")
            return {live.response.getheader("Journal-Id") or "", page_headers["journal-id"]}

    memory = [journal_ids({}) for _ in range(2)]
    sqlite = [journal_ids({"STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}"}) for _ in range(2)]
    for ids in memory + sqlite:
        assert len(ids) == 1  # the stream and the page name one journal
    assert memory[0] != memory[1]
    assert sqlite[0] == sqlite[1]


# -- several workers on one database --------------------------------------------------------


def race(servers: list[Server], rounds: int) -> None:
    """Intents, quotes and cancels through every server at once."""

    def work(index: int) -> None:
        server = servers[index % len(servers)]
        for n in range(rounds):
            key = f"w{index}-{n}"
            side = "BUY" if (n + index) % 2 else "SELL"
            body = intent(idempotency_key=key, side=side, type="LIMIT", qty=1.0, limit_price=100.0 + (n % 5) - 2)
            status, order = server.request("POST", URL, body)
            assert status == 201, order
            if n % 3 == 0:
                server.request("POST", f"/execution/orders/{order['order_id']}/cancel")
            if n % 4 == 0:
                quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0 + (n % 3), "ask": 100.0 + (n % 3)}
                assert server.request("POST", QUOTES, quote)[0] == 200

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def test_subscribers_on_each_worker_see_one_gap_free_sequence(tmp_path: Path, storage_url: str) -> None:
    env = {"STORAGE_URL": storage_url}
    with running_server(tmp_path, env) as first, running_server(tmp_path, env) as second:
        with stream(first, f"{STREAM}?after=0") as on_first, stream(second, f"{STREAM}?after=0") as on_second:
            race([first, second], rounds=15)
            head = first.request("GET", "/execution/events?after=0&limit=1000")[1]["next_after"]
            seen_first = on_first.events(head)
            seen_second = on_second.events(head)
        orders = {order["order_id"]: order for order in all_orders(server_get(first))}
    assert [m["data"]["seq"] for m in seen_first] == list(range(1, head + 1))
    assert [m["data"] for m in seen_first] == [m["data"] for m in seen_second]
    # Seq order agrees with every order's own history: legal steps, ending where it is.
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in seen_first:
        if message["data"]["order"] is not None:
            history[message["data"]["order"]["order_id"]].append(message["data"]["order"])
    assert set(history) == set(orders)
    for order_id, states in history.items():
        statuses = [OrderStatus(state["status"]) for state in states]
        assert statuses[0] == OrderStatus.NEW
        for before, after in itertools.pairwise(statuses):
            assert after in TRANSITIONS[before], (order_id, statuses)
        filled = [state["filled_qty"] for state in states]
        assert filled == sorted(filled)
        assert states[-1] == orders[order_id]


def test_stopping_the_server_ends_open_streams_so_it_stops_gracefully(tmp_path: Path) -> None:
    """uvicorn waits for open responses before it stops; a stream ends at the stop
    signal, so the process finishes its shutdown rather than waiting for a kill."""
    with running_server(tmp_path) as server:
        live = EventStream(server)
        post_limits(server, ["before-stop"])
        assert live.events(1)[0]["data"]["seq"] == 1
    assert live.message() == {}  # the stream ended
    live.close()
    assert server.process.returncode != -9  # not killed
    assert "Application shutdown complete" in server.log()
