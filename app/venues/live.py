"""The live executor: for each live exchange, one process among those sharing the store
(under a lease in it) sends the outbox's orders to the exchange, looks each up by its
client order id until it is final here, cancels those a cancel was asked for, and
reports open orders at the exchange that this service does not know (never touching
them).

How an order goes out, so that no fault can make two orders of one intent, nor leave
one at the exchange unknown here. Each step is a compare-and-set on the order's outbox
row (its state and attempts as read, and no cancel asked since, for a send), so of two
processes, or a step and a cancel, exactly one wins:
- `pending` (stored, not sent): made ready (the exchange's markets read, the order on
  its steps; a failure leaves it pending), then marked `sent` just before the exchange
  is called, so a crash after the call finds it `sent`. A cancel asked for before that
  ends it unsent.
- The call: an answer (the exchange's id, or "a duplicate": it holds one with that
  client order id) makes it `held` at once; a refusal ends it REJECTED with the
  exchange's reason; no connection (NotSent) or "slow down" (Busy: nothing done) puts it
  back to `pending`; anything else (a timeout, a lost answer, a 5xx) leaves it `sent`,
  its time reset to when the call ended.
- `sent` (the answer is not known): looked up by its client order id. Found: `held`.
  Not found: it is never sent again (Binance frees a client order id once its order has
  ended, so a resend could make a second order); once QUIET_SECONDS have passed since
  the send ended (the exchange refuses a request older than its recvWindow, 5 s), it never
  reached the exchange and ends REJECTED (CANCELED if a cancel was asked for).
- `held`: looked up every POLL_SECONDS (sooner when woken); its fills (each trade once)
  and its end reach the order, the journal and the stream; a cancel asked for is sent.
  Not found for LOST_SECONDS in a row, it ends EXPIRED ("lost at the exchange").
Every step is written to the store before the next, so a restart (start-up is a pass
like any other) picks up each order where it was."""

import asyncio
import contextlib
import importlib
import importlib.util
import os
import socket
import time
import uuid
from collections.abc import Sequence

from app.core.engine import ExchangeReport, ExchangeReportRefused
from app.core.errors import ServiceError
from app.core.exchange_funds import FundsReading
from app.core.vocabulary import LiveState, OrderStatus
from app.ops.logs import EventLog
from app.service.live import LIVE, LiveOrders
from app.service.orders import OrderService
from app.service.settings import Settings
from app.store.sql_live import Expected, LiveOrder
from app.venues.backoff import Backoff
from app.venues.ccxt_lookup import check_ccxt_has
from app.venues.tasks import cancel_and_wait
from app.venues.venue import Busy, NotSent, Refused, Seen, Unknown, Venue

# The lease row (in the feeds' lease table, schema 11) whose holder executes an
# exchange's orders. Two holders at once (a pass longer than a lease) cost only work:
# every step is a compare-and-set.
LEASE_SYMBOL = "*live*"
LEASE_MS = 6_000
POLL_SECONDS = 1.0
# A `sent` order not found this long after its send never reached the exchange.
QUIET_SECONDS = 15.0
# A `held` order not found at the exchange for this long is ended as lost there.
LOST_SECONDS = 60.0
# How often the exchange's open orders are listed, for those this service does not know.
FOREIGN_SECONDS = 10.0
# When balances apply, how often the exchange's account is read for intake's check of
# live orders (Binance counts a read as 20 of its 6,000 a minute).
BALANCE_SECONDS = 5.0
# How many "logged once" keys are kept (the oldest forgotten first).
REPORTED_KEPT = 10_000


def live_executors(service: OrderService, settings: Settings, events: EventLog) -> list["LiveExecutor"]:
    """An executor per LIVE_EXCHANGES exchange, on ccxt's exchange of that id with its
    credentials; each exchange's mode logged. Imports ccxt (app.venues.ccxt_venue)."""
    live = service.live
    if live is None:
        return []
    check_ccxt_has(live.exchanges, package="async_support", setting="LIVE_EXCHANGES")
    connect = importlib.import_module("app.venues.ccxt_venue").CcxtVenue.connect
    executors = []
    for exchange in live.exchanges:
        credentials = settings.live_credentials[exchange]
        venue = connect(
            exchange,
            credentials["api_key"].get_secret_value(),
            credentials["secret"].get_secret_value(),
            sandbox=exchange not in settings.live_real_money,
            base_url=settings.live_urls.get(exchange),
            timeout_ms=settings.live_timeout_ms,
        )
        executors.append(
            LiveExecutor(service, live, exchange, venue, events=events, symbols=sorted(settings.allowed_symbols))
        )
    for exchange, mode in service.exchange_modes.items():
        fields = {"exchange": exchange, "mode": mode, "url": settings.live_urls.get(exchange)}
        if mode == LIVE:
            events.warning("Exchange mode: orders are sent to the exchange with real money", fields)
        else:
            events.info("Exchange mode", fields)
    return executors


class LiveExecutor:
    """Sends and follows the live orders of one exchange."""

    def __init__(
        self,
        service: OrderService,
        live: LiveOrders,
        exchange: str,
        venue: Venue,
        *,
        events: EventLog,
        symbols: Sequence[str],
        poll_seconds: float = POLL_SECONDS,
        quiet_seconds: float = QUIET_SECONDS,
        lost_seconds: float = LOST_SECONDS,
        foreign_seconds: float = FOREIGN_SECONDS,
        balance_seconds: float = BALANCE_SECONDS,
    ) -> None:
        self.service = service
        self.live = live
        self.exchange = exchange
        self.venue = venue
        self.events = events
        self.symbols = list(symbols)
        self.status = live.status[exchange]
        self.holder = uuid.uuid4().hex
        self.identity = f"{socket.gethostname()}:{os.getpid()}"  # shown as the executor
        self._poll = poll_seconds
        self._quiet_us = int(quiet_seconds * 1_000_000)
        self._lost_seconds = lost_seconds
        self._foreign_seconds = foreign_seconds
        self._foreign_at = 0.0
        self._balance_seconds = balance_seconds
        self._balances_at = 0.0
        self._missing: dict[str, float] = {}  # held orders the exchange did not find: since when
        self._held = False
        self._reported: dict[str, None] = {}  # what was logged once (bounded: oldest dropped)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        if self._held:
            with contextlib.suppress(ServiceError):
                await self.service.release_feeds(self.holder, [(self.exchange, LEASE_SYMBOL)])
        await self.venue.close()

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            pause = await self._turn(backoff)
            await self._show_status()
            if pause is None:
                await self.live.wait(self.exchange, self._poll)
            else:
                await asyncio.sleep(pause)

    async def _turn(self, backoff: Backoff) -> float | None:
        """Take (or keep) the lease and, holding it, make a pass. How long to pause after a
        failure (None: none; the next turn comes after the poll interval, or when woken)."""
        try:
            self._held = bool(await self.service.claim_feeds(self.holder, [(self.exchange, LEASE_SYMBOL)], LEASE_MS))
            if self._held:
                # Set before the pass: what fails in it (an order's step, a reading) shows.
                self.status.executor, self.status.reachable, self.status.last_error = self.identity, True, None
                await self.run_pass()
                backoff.reset()
            return None
        except Busy as busy:
            self._failed(busy.detail, "Live exchange asks to slow down")
            # Honoured whatever wakes come meanwhile: the exchange bans who ignores it.
            return max(busy.retry_after, backoff.next())
        except (Unknown, NotSent) as unknown:
            self._failed(unknown.detail, "Live exchange did not answer")
            return backoff.next()
        except ServiceError as error:
            self.events.warning(
                "Live orders: the store did not answer", {"exchange": self.exchange, "error": str(error)}
            )
            return backoff.next()
        except Exception as error:  # a fault of this service: logged, and the next pass tries again
            self.events.error("Live orders: pass failed", {"exchange": self.exchange}, error)
            self.status.last_error = f"internal error: {type(error).__name__}"
            return backoff.next()

    async def _show_status(self) -> None:
        """The lease holder keeps what it saw in the store; every other process shows that."""
        try:
            if self._held:
                await self.live.share(self.exchange)
            else:
                await self.live.follow(self.exchange)
        except ServiceError as error:
            self.events.warning(
                "Live orders: the store did not answer", {"exchange": self.exchange, "error": str(error)}
            )

    def _failed(self, detail: str, message: str) -> None:
        self.status.reachable, self.status.last_error = False, detail
        self.events.warning(message, {"exchange": self.exchange, "error": detail})

    async def run_pass(self) -> None:
        """When balances apply, a reading of the exchange's account (every
        BALANCE_SECONDS); then one look at every live order not yet final here (those
        waiting to be sent first, then oldest first), then (every FOREIGN_SECONDS) at the
        exchange's open orders. Busy and NotSent end the pass (the exchange asks for a
        pause, or cannot be reached); anything else ends the step of one order, and the
        next pass tries again."""
        if self.live.reads_balances and time.monotonic() >= self._balances_at:
            await self._read_balances()
        unfinished = await self.live.unfinished(self.exchange)
        unfinished.sort(key=lambda live: live.state != LiveState.PENDING)  # stable: oldest first within
        for live in unfinished:
            try:
                await self._step(live)
            except (Busy, NotSent, ServiceError):
                raise
            except Unknown as unknown:
                self.status.last_error = unknown.detail
                self.events.warning(
                    "Live order: no answer from the exchange",
                    {"exchange": self.exchange, "order_id": live.order.order_id, "error": unknown.detail},
                )
            except Exception as error:  # this order's step failed: the others go on
                self._report_once(
                    f"failed:{live.order.order_id}:{type(error).__name__}",
                    "Live order: step failed",
                    {"exchange": self.exchange, "order_id": live.order.order_id, "error": repr(error)},
                )
        if time.monotonic() >= self._foreign_at:
            self._foreign_at = time.monotonic() + self._foreign_seconds
            await self._look_for_foreign()

    async def _step(self, live: LiveOrder) -> None:
        order, client_id = live.order, live.client_order_id
        if live.state == LiveState.PENDING:
            if live.cancel is not None:  # never sent: nothing is at the exchange
                await self._end(live, OrderStatus.CANCELED, "canceled before it was sent to the exchange")
            else:
                await self._send(live)
            return
        if live.state == LiveState.HELD and live.cancel is not None and order.is_open:
            await self.venue.cancel(order, client_id)
        seen = await self.venue.look(order, client_id)
        if seen is not None:
            self._missing.pop(order.order_id, None)
            await self._apply(live, seen)
        elif live.state == LiveState.SENT:
            if self.service.clock() - live.updated_at < self._quiet_us:
                return  # the send may still take effect: looked up again next pass
            quiet = self._quiet_us // 1_000_000
            if live.cancel is not None:
                await self._end(
                    live, OrderStatus.CANCELED, f"canceled: the exchange had not received it {quiet} s after its send"
                )
            else:
                await self._end(
                    live,
                    OrderStatus.REJECTED,
                    f"not sent: the exchange had not received it {quiet} s after its send (it is not sent again)",
                )
        else:  # held, yet the exchange has no such order
            since = self._missing.setdefault(order.order_id, time.monotonic())
            if time.monotonic() - since >= self._lost_seconds:
                self._missing.pop(order.order_id, None)
                detail = f"lost at the exchange: not found for {self._lost_seconds:g} s"
                self.events.warning(
                    "Live order ended EXPIRED",
                    {
                        "exchange": self.exchange,
                        "order_id": order.order_id,
                        "client_order_id": client_id,
                        "why": detail,
                    },
                )
                await self._end(live, OrderStatus.EXPIRED, detail)
            else:
                self._report_once(
                    f"lost:{order.order_id}",
                    "Live order not found at the exchange",
                    {"exchange": self.exchange, "order_id": order.order_id, "client_order_id": client_id},
                )

    async def _send(self, live: LiveOrder) -> None:
        # Ready first (the exchange's markets read, the order on its steps): a failure
        # there leaves the order pending, as nothing was sent.
        try:
            await self.venue.prepare(live.order)
        except Refused as refused:
            await self._end(live, OrderStatus.REJECTED, refused.detail)
            return
        # Marked sent first (if still pending, with no cancel asked): from the call on,
        # the order may be at the exchange.
        if not await self.live.mark(live, LiveState.SENT, expect=Expected.of(live, no_cancel=True), attempt=True):
            return  # another process moved it, or a cancel came: the next pass reads it again
        sent = Expected(LiveState.SENT, live.attempts + 1)
        try:
            exchange_order_id = await self.venue.send(live.order, live.client_order_id)
        except Refused as refused:
            await self._end(live, OrderStatus.REJECTED, refused.detail, expect=sent)
            return
        except (NotSent, Busy):
            await self.live.mark(live, LiveState.PENDING, expect=sent)  # nothing reached the exchange
            raise
        except Unknown:
            # It stays sent, and is looked up; QUIET_SECONDS count from now, when the call
            # is over (the exchange takes a request no later than its recvWindow after it
            # was signed, which was before now).
            await self.live.mark(live, LiveState.SENT, expect=sent)
            raise
        await self.live.mark(live, LiveState.HELD, expect=sent, exchange_order_id=exchange_order_id)
        seen = await self.venue.look(live.order, live.client_order_id)  # its fills, if it filled at once
        if seen is not None:
            await self._apply(live, seen)

    async def _end(self, live: LiveOrder, status: OrderStatus, detail: str, expect: Expected | None = None) -> None:
        """End an order the exchange does not hold, if its row is still as read (`expect`)."""
        await self.live.apply(live, ExchangeReport([], status, detail), None, expect or Expected.of(live))

    async def _apply(self, live: LiveOrder, seen: Seen) -> None:
        try:
            await self.live.apply(live, seen.report, seen.exchange_order_id)
        except ExchangeReportRefused as refused:
            self._report_once(
                f"refused:{live.order.order_id}:{len(seen.report.fills)}:{seen.report.ended}",
                "Live order: what the exchange reports cannot be applied",
                {"exchange": self.exchange, "order_id": live.order.order_id, "error": str(refused)},
            )

    async def _read_balances(self) -> None:
        # Asked for before the request leaves: every order the exchange answered for
        # before then is in the reading (core.exchange_funds).
        taken_at = self.service.clock()
        self._balances_at = time.monotonic() + self._balance_seconds  # a failed reading waits its turn too
        try:
            free = await self.venue.balances()
        except Unknown as unknown:  # the orders' steps go on; the next pass reads again
            self.status.last_error = unknown.detail
            self._report_once(
                f"balances:{unknown.detail}",
                "Live exchange's balances could not be read",
                {"exchange": self.exchange, "error": unknown.detail},
            )
            return
        await self.live.keep_balances(self.exchange, FundsReading(free, taken_at))

    async def _look_for_foreign(self) -> None:
        listed = await self.venue.open_orders(self.symbols)
        known = await self.live.known([each.client_order_id for each in listed if each.client_order_id])
        foreign = sorted(
            each.client_order_id or each.exchange_order_id for each in listed if each.client_order_id not in known
        )
        self.status.unknown_open_orders = foreign
        for name in foreign:
            self._report_once(
                f"foreign:{name}",
                "Open order at the exchange that this service does not know (left alone)",
                {"exchange": self.exchange, "order": name},
            )

    def _report_once(self, key: str, message: str, fields: dict[str, object]) -> None:
        if key in self._reported:
            return
        if len(self._reported) >= REPORTED_KEPT:
            del self._reported[next(iter(self._reported))]
        self._reported[key] = None
        self.events.warning(message, fields)
