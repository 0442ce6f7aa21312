"""The FastAPI application: a factory that wires the service, the middleware, the error
rendering, the OpenAPI document and one router per resource."""

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.ops.logs import EventLog, configure_logging
from app.ops.metrics import Metrics
from app.service.orders import OrderService
from app.service.settings import Settings
from app.store.base import OrderStore
from app.store.journal import MAX_READ
from app.store.open import load_store
from app.venues.feeds import ChildProcessSource, ExchangeFactory, FeedSource, InProcessSource, MarketDataFeeds
from app.venues.live import live_executors
from app.web.errors import add_exception_handlers
from app.web.middleware import BearerTokenMiddleware, RequestBodyMiddleware, RequestMiddleware
from app.web.openapi import OPEN_PATHS, OPENAPI_URL, QUERY_TOKEN_PATHS, install_openapi, operation_id
from app.web.responses import MAX_BODY_BYTES, MAX_BOOK_BYTES
from app.web.routes import account, docs, health, market_data, orders, trading, ui
from app.web.routes import events as journal_routes
from app.web.shutdown import on_stop_signal
from app.web.streams import Feed
from app.web.views import entry_json


def _market_data_feeds(
    service: OrderService, settings: Settings, events: EventLog, metrics: Metrics, exchanges: ExchangeFactory | None
) -> MarketDataFeeds | None:
    """The MARKET_DATA_FEEDS feeds (None without): ccxt in the feeds' own process, or
    the `exchanges` given, in this one."""
    if not settings.market_data_feeds:
        return None
    symbols = sorted(settings.allowed_symbols)
    source: FeedSource = (
        ChildProcessSource(events, settings.market_data_feeds, symbols, settings.market_data_urls)
        if exchanges is None
        else InProcessSource(exchanges, settings.market_data_feeds, symbols, settings.market_data_urls)
    )
    feeds = MarketDataFeeds(service, events, source, settings.market_data_feeds)
    service.feeds = feeds.status
    metrics.watch_feeds(lambda: feeds.status.samples(time.time()))
    return feeds


def create_app(
    settings: Settings,
    store: OrderStore | None = None,
    *,
    freeze_gc: bool = False,
    exchanges: ExchangeFactory | None = None,
) -> FastAPI:
    """The app around `store`, or around the store `settings.storage_url` names, which
    it then also closes at shutdown (a store passed in belongs to the caller).
    `exchanges` makes the exchanges MARKET_DATA_FEEDS names, in this process (tests pass
    stand-ins); by default ccxt's, in the feeds' own process.

    `freeze_gc` (for the server process, not tests): once started, everything made so
    far (modules, the OpenAPI document) is moved out of the garbage collector's sight.
    A full collection walks every tracked object; with the start-up objects included,
    one landing mid-load stalled every request in flight for 60 ms (bench p99)."""
    events = EventLog(configure_logging(settings.service_name, settings.log_level_number, settings.log_format))
    owned = store is None
    the_store = load_store(settings.storage_url, settings.events_retain) if store is None else store
    metrics = Metrics()
    try:
        service = OrderService(settings, the_store, events, metrics)
    except BaseException:
        if owned:  # start-up failed (balances that cannot cover the open orders, say)
            the_store.close()
        raise

    # Streams read the journal through one feed: each entry read and rendered once. Its
    # window holds what the slowest subscriber still within its queue has to read.
    feed = Feed(
        service.journal,
        entry_json,
        window=settings.events_queue + MAX_READ,
        heartbeat_seconds=settings.events_heartbeat_seconds,
    )

    feeds = _market_data_feeds(service, settings, events, metrics, exchanges)
    executors = live_executors(service, settings, events)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if freeze_gc:
            app.openapi()  # built now, so it is frozen too
            gc.collect()
            gc.freeze()
        restore_signals = on_stop_signal(feed.close)
        async with the_store.serve():
            if feeds is not None:
                feeds.start()
            for executor in executors:
                executor.start()
            yield
            restore_signals()
            await feed.stop()
            if feeds is not None:
                await feeds.stop()
            for executor in executors:
                await executor.stop()
        if owned:
            the_store.close()

    # redirect_slashes off: a 307 to a Location built from the client's Host header is
    # no answer for a bot; `/execution/order-intents/` is a plain 404. The docs pages are
    # the service's own (routes.docs): their scripts come from here, not from a CDN.
    app = FastAPI(
        title="Paper execution service",
        version=settings.service_version,
        redirect_slashes=False,
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.service = service
    # Routes use `service` from this closure: a dependency per request would cost the
    # hot path a dependency solve (headers, query and cookies parsed again).
    add_exception_handlers(app)
    # Each added middleware wraps the ones before: the request middleware is outermost
    # and sees every answer, a 401 or a 413 included; the body middleware wraps the
    # token check, so a 401 sent before the body is read closes the connection too. The
    # ops page and its assets are open (routes.ui): the page asks for the token itself.
    token = settings.api_token
    if token is not None:
        app.add_middleware(
            BearerTokenMiddleware,
            token=token,
            open_paths=OPEN_PATHS | ui.PAGE_PATHS,
            query_token_paths=QUERY_TOKEN_PATHS,
        )
    app.add_middleware(
        RequestBodyMiddleware, max_bytes=MAX_BODY_BYTES, larger={"/execution/market-data/books": MAX_BOOK_BYTES}
    )
    app.add_middleware(RequestMiddleware, events=events, observe=metrics.observe_request)

    for resource in (health, orders, market_data, trading, account):
        resource.add_routes(app.router, service)
    journal_routes.add_routes(app.router, service.journal, feed, settings)
    docs.add_routes(app.router, OPENAPI_URL, app.title)
    ui.add_routes(app.router, token_required=token is not None, heartbeat_seconds=settings.events_heartbeat_seconds)

    install_openapi(
        app, bearer_token=token is not None, exchanges=settings.allowed_exchanges, symbols=settings.allowed_symbols
    )
    return app
