"""The ops page in a real browser (headless Chromium) against a real uvicorn server:
what a bot does over HTTP shows on the page as it happens, the page's buttons act on
the service, the token is asked for and checked, and a dropped stream resumes."""

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

from harness.servers import running_uvicorn
from tests.payloads import URL, intent
from tests.uvicorn_server import APP, EXAMPLE_ENV, ROOT, Server, free_port, running_server

QUOTES = "/execution/market-data/quotes"
TOKEN = "ops-page-token-0123456789abcdef"
SCREENSHOT = ROOT / "docs" / "ops-page.png"
# A second is what the issue allows from an intent's 201 to its row; the rest of the
# waits are generous bounds for a shared machine, not figures.
LIVE_MS = 1000
WAIT_MS = 15000


class OpsPage:
    """One browser tab on the page, recording what the page logs and requests."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[Request] = []
        self.ended: list[Request] = []  # answered whole, or failed (an aborted stream included)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("request", self._request)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _request(self, request: Request) -> None:
        # A method, not `list.append`: Playwright's event wrapper cannot take a builtin.
        self.requests.append(request)

    def _ended(self, request: Request) -> None:
        self.ended.append(request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def open(self, server: Server, refresh: float = 0.3) -> "OpsPage":
        self.page.goto(f"{server.base_url}/ui?refresh={refresh}")
        return self

    def live(self) -> None:
        expect(self.page.locator("#stream-status")).to_have_text("live", timeout=WAIT_MS)

    def order_row(self, order_id: str) -> Any:
        return self.page.locator(f'#open-orders tbody tr[data-order-id="{order_id}"]')

    def column(self, table: str, index: int) -> list[str]:
        """The text of one column of a table's rows, top to bottom."""
        return self.page.locator(f"#{table} tbody tr td:nth-child({index})").all_inner_texts()


@contextmanager
def tab(browser: Browser) -> Iterator[OpsPage]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        yield OpsPage(context.new_page())
    finally:
        context.close()


@contextmanager
def serving(tmp_path: Path, port: int, env: dict[str, str], run: int) -> Iterator[Server]:
    """A server on a given port: stopped and started again there, the page finds it."""
    log = tmp_path / f"run-{run}.log"
    with running_uvicorn(APP, port, log=log, env=env) as process:
        yield Server(f"http://127.0.0.1:{port}", process, log)


def post(server: Server, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    status, answer = server.request("POST", path, body, headers)
    assert status in (200, 201), answer
    return answer


def limit(key: str, price: float, side: str = "BUY", qty: float = 0.5, **rest: Any) -> dict[str, Any]:
    return intent(idempotency_key=key, type="LIMIT", limit_price=price, side=side, qty=qty, **rest)


def quote(bid: float, ask: float, symbol: str = "BTC/USDT", size: float = 10.0) -> dict[str, Any]:
    return {"exchange": "binance", "symbol": symbol, "bid": bid, "ask": ask, "bid_size": size, "ask_size": size}


def test_orders_fills_positions_and_the_controls_live(browser: Browser, tmp_path: Path) -> None:
    env = {"PAPER_BALANCES": "USDT=100000,BTC=2"}
    with running_server(tmp_path, env) as server, tab(browser) as ops:
        ops.open(server).live()
        page = ops.page
        expect(page.locator("#trading-state")).to_have_text("ACTIVE")
        expect(page.locator("#store-status")).to_have_text("memory: ok", timeout=WAIT_MS)
        expect(page.locator("#intake-status")).to_have_text("accepting orders")

        # An intent posted over HTTP shows within a second of its 201.
        order = post(server, URL, limit("rest-1", 100.0))
        expect(ops.order_row(order["order_id"])).to_be_visible(timeout=LIVE_MS)
        assert ops.column("open-orders", 3) == ["rest-1"]

        # A quote that fills it: the order leaves the open ones, its fill shows with its
        # provenance, and the position and P&L follow at the quote's price.
        fills = post(server, QUOTES, quote(99.0, 99.5))["items"]
        assert [fill["order_id"] for fill in fills] == [order["order_id"]]
        expect(ops.order_row(order["order_id"])).to_have_count(0, timeout=LIVE_MS)
        fill_row = page.locator(f'#fills tbody tr[data-seq="{fills[0]["seq"]}"]')
        expect(fill_row).to_be_visible(timeout=LIVE_MS)
        assert fill_row.locator("td").all_inner_texts()[2:10] == [
            order["order_id"],
            "binance BTC/USDT",
            "BUY",
            "0.5",
            "99.5",
            num(fills[0]["fee"]),
            "TAKER",
            "quote",
        ]
        position = page.locator('#positions tbody tr[data-instrument="binance:BTC/USDT"]')
        expect(position).to_be_visible(timeout=WAIT_MS)
        _, positions = server.request("GET", "/execution/positions")
        [held] = positions["items"]
        net = held["realized_pnl"] + held["unrealized_pnl"] - held["fees"]
        expect(position.locator("td")).to_have_text(
            ["binance BTC/USDT", "0.5", "99.5", num(held["mark_price"]), "0", num(held["unrealized_pnl"]),
             num(held["fees"]), num(net)]
        )  # fmt: skip
        expect(page.locator("#pnl-total")).to_have_text(num(net))
        expect(page.locator("#balances tbody tr td:first-child")).to_have_text(["BTC", "ETH", "SOL", "USDT"])
        wait_for_chart(page, 3)

        # The cancel button cancels that order at the service.
        resting = post(server, URL, limit("rest-2", 90.0))
        expect(ops.order_row(resting["order_id"])).to_be_visible(timeout=LIVE_MS)
        ops.order_row(resting["order_id"]).get_by_role("button", name="Cancel").click()
        expect(ops.order_row(resting["order_id"])).to_have_count(0, timeout=WAIT_MS)
        assert server.request("GET", f"/execution/orders/{resting['order_id']}")[1]["status"] == "CANCELED"

        # HALT with cancel_open_orders, after a confirmation: nothing open, HALTED shown.
        open_ids = [post(server, URL, limit(f"halt-{n}", 80.0 + n))["order_id"] for n in range(3)]
        expect(page.locator("#open-orders tbody tr")).to_have_count(3, timeout=LIVE_MS)
        page.fill("#control-reason", "desk closed for the night")
        page.check("#control-cancel")
        page.get_by_role("button", name="HALT").click()
        expect(page.locator("#confirm")).to_be_visible()
        expect(page.locator("#confirm-text")).to_contain_text("HALTED and cancel every open order")
        assert server.request("GET", "/execution/trading-state")[1]["state"] == "ACTIVE"  # not before confirming
        page.click("#confirm-yes")
        expect(page.locator("#trading-state")).to_have_text("HALTED", timeout=WAIT_MS)
        expect(page.locator("#trading-reason")).to_have_text("— desk closed for the night")
        expect(page.locator("#open-orders tbody tr")).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#open-count")).to_have_text("0")
        expect(page.locator("#intake-status")).to_have_text(
            "degraded: trading is HALTED (desk closed for the night): every new order intent is refused",
            timeout=WAIT_MS,
        )
        statuses = {server.request("GET", f"/execution/orders/{oid}")[1]["status"] for oid in open_ids}
        assert statuses == {"CANCELED"}

        # Back: RESUME, and "Back" in the dialog changes nothing.
        page.get_by_role("button", name="RESUME").click()
        page.click("#confirm-no")
        assert server.request("GET", "/execution/trading-state")[1]["state"] == "HALTED"
        page.get_by_role("button", name="RESUME").click()
        page.click("#confirm-yes")
        expect(page.locator("#trading-state")).to_have_text("ACTIVE", timeout=WAIT_MS)
    assert ops.errors == []


def test_user_text_shows_as_text_never_as_markup(browser: Browser, tmp_path: Path) -> None:
    key = "<img src=x onerror=\"document.title='pwned'\">"
    reason = "<script>document.title='pwned'</script><b>bold</b>"
    with running_server(tmp_path) as server, tab(browser) as ops:
        ops.open(server).live()
        page = ops.page
        order = post(server, URL, limit(key, 50.0))
        expect(ops.order_row(order["order_id"])).to_be_visible(timeout=LIVE_MS)
        assert ops.column("open-orders", 3) == [key]
        status, _ = server.request("PUT", "/execution/trading-state", {"state": "REDUCING", "reason": reason})
        assert status == 200
        expect(page.locator("#trading-reason")).to_have_text(f"— {reason}", timeout=WAIT_MS)
        assert page.locator("main img, main b, main script").count() == 0
        assert page.title() == "Paper execution service"
    assert ops.errors == []


def test_the_header_names_instruments_whose_market_data_went_stale(browser: Browser, tmp_path: Path) -> None:
    with running_server(tmp_path, {"MAX_QUOTE_AGE_MS": "1500"}) as server, tab(browser) as ops:
        ops.open(server).live()
        market = ops.page.locator("#market-status")
        expect(market).to_have_text("no instrument stale", timeout=WAIT_MS)
        post(server, QUOTES, quote(99.0, 100.0, "ETH/USDT"))
        expect(market).to_have_text("stale: binance:ETH/USDT", timeout=WAIT_MS)
        post(server, QUOTES, quote(99.0, 100.0, "ETH/USDT"))
        expect(market).to_have_text("no instrument stale", timeout=WAIT_MS)


def test_with_a_token_the_page_asks_for_it_sends_it_and_says_when_it_is_wrong(browser: Browser, tmp_path: Path) -> None:
    with running_server(tmp_path, {"EXECUTION_API_TOKEN": TOKEN}) as server, tab(browser) as ops:
        page = ops.open(server).page
        expect(page.locator("#token-panel")).to_be_visible()
        expect(page.locator("#dashboard")).to_be_hidden()
        page.wait_for_timeout(500)  # what it would load on its own, it has by now
        assert sorted({_path(request) for request in ops.requests}) == [
            "/ui", "/ui/assets/icon.svg", "/ui/assets/ui.css", "/ui/assets/ui.js"
        ]  # fmt: skip

        page.fill("#token-input", "not-the-token")
        page.press("#token-input", "Enter")
        error = page.locator("#token-error")
        expect(error).to_be_visible(timeout=WAIT_MS)
        expect(error).to_contain_text("The service refused the token (401")
        expect(page.locator("#dashboard")).to_be_hidden()

        page.fill("#token-input", TOKEN)
        page.click("#token-submit")
        ops.live()
        expect(error).to_be_hidden()
        order = post(server, URL, limit("with-token", 100.0), token=TOKEN)
        expect(ops.order_row(order["order_id"])).to_be_visible(timeout=LIVE_MS)
        data = [r for r in ops.requests if _path(r).startswith("/execution/") and r.headers.get("authorization")]
        assert {r.headers["authorization"] for r in data} >= {f"Bearer {TOKEN}"}
        assert TOKEN not in page.content()

        # Kept for this tab: a reload needs no token; another tab (context) asks again.
        page.reload()
        ops.live()
        expect(ops.order_row(order["order_id"])).to_be_visible(timeout=WAIT_MS)
        with tab(browser) as other:
            expect(other.open(server).page.locator("#token-panel")).to_be_visible()


def test_a_dropped_stream_resumes_without_lost_or_doubled_rows(browser: Browser, tmp_path: Path) -> None:
    port = free_port()
    env = {**EXAMPLE_ENV, "STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}"}
    with tab(browser) as ops:
        with serving(tmp_path, port, env, 1) as server:
            ops.open(server).live()
            first = [post(server, URL, limit(f"before-{n}", 100.0 - n))["order_id"] for n in range(3)]
            post(server, QUOTES, quote(98.0, 99.0))  # fills before-0 and before-1 (100, 99)
            expect(ops.page.locator("#fills tbody tr")).to_have_count(2, timeout=WAIT_MS)
        expect(ops.page.locator("#stream-status")).not_to_have_text("live", timeout=WAIT_MS)
        with serving(tmp_path, port, env, 2) as server:
            # Events while the page is still away: it must pick them up on resuming.
            later = [post(server, URL, limit(f"after-{n}", 90.0 - n))["order_id"] for n in range(2)]
            post(server, QUOTES, quote(97.0, 98.0))  # fills before-2 (98)
            ops.live()
            latest = post(server, URL, limit("after-live", 85.0))
            expect(ops.page.locator("#open-orders tbody tr")).to_have_count(3, timeout=WAIT_MS)
            _, fills = server.request("GET", "/execution/fills?limit=1000")
            expect(ops.page.locator("#fills tbody tr")).to_have_count(len(fills["items"]), timeout=WAIT_MS)
            open_now = {o["order_id"] for o in server.request("GET", "/execution/orders?status=NEW")[1]["items"]}
        shown = ops.page.locator("#open-orders tbody tr").evaluate_all("rows => rows.map(r => r.dataset.orderId)")
        assert sorted(shown) == sorted(open_now) == sorted([*later, latest["order_id"]])
        assert [f["order_id"] for f in fills["items"]] == first  # 100 and 99 before the restart, 98 after
        assert ops.column("fills", 1) == [str(f["seq"]) for f in reversed(fills["items"])]


def test_after_a_memory_store_restart_the_page_loads_the_new_journal_instead_of_resuming(
    browser: Browser, tmp_path: Path
) -> None:
    """A restarted memory store numbers from 1 again: by the time the page is back, it
    may have numbered past the seq the page kept, so no 410 warns it. The Journal-Id
    does: the page reads everything again instead of resuming."""
    port = free_port()
    blocked = "**/execution/events/stream*"
    with tab(browser) as ops:
        with serving(tmp_path, port, EXAMPLE_ENV, 1) as server:
            ops.open(server).live()
            gone = [post(server, URL, limit(f"before-{n}", 90.0))["order_id"] for n in range(2)]
            expect(ops.page.locator("#open-orders tbody tr")).to_have_count(2, timeout=LIVE_MS)
        ops.page.route(blocked, lambda route: route.abort())  # away until the new journal is past seq 2
        with serving(tmp_path, port, EXAMPLE_ENV, 2) as server:
            new = [post(server, URL, limit(f"after-{n}", 80.0))["order_id"] for n in range(4)]
            ops.page.unroute(blocked)
            ops.live()
            rows = ops.page.locator("#open-orders tbody tr")
            expect(rows).to_have_count(4, timeout=WAIT_MS)
            shown = rows.evaluate_all("rows => rows.map(r => r.dataset.orderId)")
            assert sorted(shown) == sorted(new)
            assert not set(shown) & set(gone)


def test_a_stalled_stream_is_noticed_and_followed_again(browser: Browser, tmp_path: Path) -> None:
    """A connection that stays open but carries nothing (a frozen server here; a proxy or
    NAT dropping it silently in life) shows as reconnecting once no heartbeat came for
    twice the heartbeat time and a second, and the page follows again when it can."""
    with running_server(tmp_path, {"EVENTS_HEARTBEAT_SECONDS": "1"}) as server, tab(browser) as ops:
        ops.open(server).live()
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            expect(ops.page.locator("#stream-status")).to_have_text(
                "reconnecting (nothing received for 3 s)", timeout=WAIT_MS
            )
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        ops.live()
        order = post(server, URL, limit("after-the-stall", 90.0))
        expect(ops.order_row(order["order_id"])).to_be_visible(timeout=WAIT_MS)


def test_a_failed_first_load_leaves_no_stream_open_and_the_page_recovers(browser: Browser, tmp_path: Path) -> None:
    failing = "**/execution/orders?status=*"
    with running_server(tmp_path) as server, tab(browser) as ops:
        page = ops.page
        page.route(failing, lambda route: route.fulfill(status=503, json={"detail": "store down", "code": "X"}))
        ops.open(server)
        expect(page.locator("#stream-status")).to_contain_text("503 store down", timeout=WAIT_MS)
        page.unroute(failing)
        ops.live()
        order = post(server, URL, limit("after-recovery", 90.0))
        expect(ops.order_row(order["order_id"])).to_be_visible(timeout=LIVE_MS)
        streams = [r for r in ops.requests if "/execution/events/stream" in r.url]
        assert len(streams) >= 2
        # Each stream whose load failed was closed: only the one followed now is open.
        assert [r for r in streams if r not in ops.ended] == [streams[-1]]


def test_a_token_that_cannot_be_sent_as_a_header_is_refused_on_the_page(browser: Browser, tmp_path: Path) -> None:
    with running_server(tmp_path, {"EXECUTION_API_TOKEN": TOKEN}) as server, tab(browser) as ops:
        page = ops.open(server).page
        page.fill("#token-input", "t\u00f6ken with spaces-0123456789")
        page.press("#token-input", "Enter")
        expect(page.locator("#token-error")).to_contain_text("printable ASCII characters, without spaces")
        expect(page.locator("#dashboard")).to_be_hidden()
        assert not [r for r in ops.requests if "/execution/" in r.url]
        assert page.evaluate("() => sessionStorage.length") == 0


def test_a_screenshot_of_the_page_in_use(browser: Browser, tmp_path: Path) -> None:
    """Makes docs/ops-page.png, the README's picture: a session with several
    instruments, fills, open orders, balances and a P&L that moved."""
    env = {"PAPER_BALANCES": "USDT=250000,BTC=2,ETH=20,SOL=300", "TAKER_FEE_BPS": "10", "MAKER_FEE_BPS": "2"}
    with running_server(tmp_path, env) as server, tab(browser) as ops:
        ops.open(server, refresh=0.2).live()
        post(server, QUOTES, quote(64990.0, 65010.0))
        post(server, QUOTES, quote(3190.0, 3191.0, "ETH/USDT"))
        post(server, QUOTES, quote(141.9, 142.0, "SOL/USDT", 500.0))
        post(server, URL, intent(idempotency_key="bot-a-1", qty=0.4))
        post(server, URL, intent(idempotency_key="bot-b-1", symbol="ETH/USDT", qty=5.0))
        post(server, URL, intent(idempotency_key="bot-b-2", symbol="SOL/USDT", side="SELL", qty=120.0))
        post(server, URL, limit("bot-a-2", 64800.0, qty=0.25))
        post(server, URL, limit("bot-a-3", 65400.0, side="SELL", qty=0.2))
        post(server, URL, limit("bot-b-3", 3150.0, symbol="ETH/USDT", qty=2.0))
        for step in range(12):
            drift = (step % 5 - 2) * 35.0 + step * 12.0
            post(server, QUOTES, quote(65000.0 + drift - 10, 65000.0 + drift + 10))
            post(server, QUOTES, quote(3190.0 - step * 1.5, 3191.0 - step * 1.5, "ETH/USDT"))
            ops.page.wait_for_timeout(250)
        post(server, QUOTES, quote(64780.0, 64795.0))  # fills bot-a-2 as the market dips
        status, _ = server.request("PUT", "/execution/trading-state", {"state": "REDUCING", "reason": "vol spike"})
        assert status == 200
        expect(ops.page.locator("#open-orders tbody tr")).to_have_count(2, timeout=WAIT_MS)
        wait_for_chart(ops.page, 12)
        ops.page.wait_for_timeout(600)
        ops.page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    assert ops.errors == []


def num(value: float) -> str:
    """A number as the page shows it: 12 significant digits, no trailing ".0"."""
    text = repr(float(f"{value:.12g}"))
    return text.removesuffix(".0")


def wait_for_chart(page: Page, points: int) -> None:
    """Until the P&L chart holds at least `points` samples."""
    page.wait_for_function(
        "n => Number(document.getElementById('pnl-chart').dataset.points || 0) >= n", arg=points, timeout=WAIT_MS
    )


def _path(request: Request) -> str:
    return urlsplit(request.url).path
