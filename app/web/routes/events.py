"""The event journal: pages of events and of fills, a Server-Sent Events stream and a
WebSocket, each resumable from any seq still kept."""

import json
from collections.abc import AsyncIterator
from enum import Enum
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocketDisconnected, WebSocketState

from app.core.errors import ServiceError
from app.core.journal import EntryFilter, EventType
from app.service.errors import InvalidQuery
from app.service.journal import Journal
from app.service.settings import Settings
from app.store.errors import StoreUnavailable
from app.web.deps import refuse_unknown, refuse_unknown_query
from app.web.responses import BAD_QUERY, DEFAULT_PAGE, MAX_PAGE, MAX_SEQ, NameFilter
from app.web.schemas import NO_CONTROL_CHARS, EventPage, ExpiredBody, FillPage
from app.web.streams import Batch, Feed, Heartbeat, Overflow
from app.web.views import entry_view, fill_view

# How long a WebSocket client has to send its first message (`after`, `types`) before
# the stream starts from the head as it was when the client connected.
FIRST_MESSAGE_SECONDS = 1.0
# WebSocket close codes: a message this service does not take; a subscriber too slow
# for its queue, or a service stopping (resume from the last seq received).
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
SERVICE_RESTART = 1012
INTERNAL_ERROR = 1011
SSE_HEARTBEAT = b": heartbeat\n\n"

After = Annotated[
    int | None, Query(ge=0, le=MAX_SEQ, description="Only events with a greater seq (0: from the oldest kept)")
]
_TYPE = "(" + "|".join(kind.value for kind in EventType) + ")"
Types = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=f"^{_TYPE}(,{_TYPE})*$",
        description="Comma-separated event types to keep: " + ", ".join(kind.value for kind in EventType),
    ),
]
OrderIdFilter = Annotated[str | None, Query(min_length=1, max_length=48, pattern=NO_CONTROL_CHARS)]
EXPIRED: dict[int | str, dict[str, Any]] = {
    410: {
        "model": ExpiredBody,
        "description": "The history asked for is no longer kept (code EVENTS_EXPIRED; `oldest_seq` says "
        "where the journal begins, `newest_seq` where it ends)",
    }
}


class FirstMessage(BaseModel):
    """What a WebSocket client may send first: where to resume, what to keep."""

    model_config = ConfigDict(extra="forbid", strict=True)

    after: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    types: list[EventType] | None = Field(default=None, min_length=1, max_length=len(EventType))
    exchange: str | None = Field(default=None, min_length=1, max_length=64)
    symbol: str | None = Field(default=None, min_length=1, max_length=64)
    order_id: str | None = Field(default=None, min_length=1, max_length=48)


# Names the journal whose seqs an answer holds: a client that kept a seq checks it is
# the same journal before resuming from it (a memory store's starts over at a restart).
JOURNAL_HEADER = "Journal-Id"
JOURNAL_ID = {
    JOURNAL_HEADER: {
        "description": "The journal the seqs belong to: the same until its numbering starts again (a memory "
        "store's restart), then another; a client resumes from a seq only within the same journal",
        "schema": {"type": "string"},
    }
}


def parse_types(text: str | None) -> frozenset[EventType] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted({name for name in names if name not in EventType.__members__.values()})
    if not names or unknown:
        raise InvalidQuery(
            f"types must name event types ({', '.join(kind.value for kind in EventType)}); "
            f"not {', '.join(repr(name[:32]) for name in unknown[:5]) or 'none'}"
        )
    return frozenset(EventType(name) for name in names)


def parse_last_event_id(value: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_SEQ):
        raise InvalidQuery("Last-Event-ID must be the seq of an event this service sent")
    return int(text)


TAGS: list[str | Enum] = ["events"]


def add_routes(routes: APIRouter, journal: Journal, feed: Feed, settings: Settings) -> None:
    queue = settings.events_queue
    journal_header = {JOURNAL_HEADER: journal.id}

    @routes.get(
        "/execution/events",
        response_model=EventPage,
        responses={200: {"headers": JOURNAL_ID}, **BAD_QUERY, **EXPIRED},
        dependencies=[Depends(refuse_unknown_query)],
        tags=TAGS,
    )
    async def list_events(
        response: Response,
        *,
        after: After = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        types: Types = None,
        exchange: NameFilter = None,
        symbol: NameFilter = None,
        order_id: OrderIdFilter = None,
    ) -> dict[str, Any]:
        """The event journal a page at a time, oldest first: every order and trading-state
        event numbered by `seq`. Pass `next_after` as `after` for the next page; a 410 says
        the history asked for is no longer kept."""
        keep = EntryFilter(parse_types(types), exchange, symbol, order_id)
        entries, next_after = await journal.page(after or 0, limit, keep)
        response.headers.update(journal_header)
        return {"items": [entry_view(entry) for entry in entries], "next_after": next_after}

    @routes.get(
        "/execution/events/stream",
        response_class=Response,
        responses={
            200: {
                "description": "Server-Sent Events: first a message of only `id: <the seq it starts after>`, "
                "then each event as a message with `id: <seq>`, `event: <type>` and "
                "`data: <the event as GET /execution/events shows it>`; a comment line as heartbeat; a last "
                '`event: overflow` (data: `{"last_seq": N}`) when the client reads too slowly to keep up',
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "headers": JOURNAL_ID,
            },
            **BAD_QUERY,
            **EXPIRED,
        },
        dependencies=[Depends(refuse_unknown_query)],
        tags=TAGS,
    )
    async def stream_events(
        request: Request,
        *,
        after: After = None,
        types: Types = None,
        exchange: NameFilter = None,
        symbol: NameFilter = None,
        order_id: OrderIdFilter = None,
        access_token: Annotated[
            str | None,
            Query(
                max_length=256,
                description="The API token, for a client that cannot send a header (a browser's EventSource)",
            ),
        ] = None,
    ) -> Response:
        """The event journal as Server-Sent Events, as they happen, from `after` (or the
        Last-Event-ID a reconnecting client sends) on. The same events are also served
        over a WebSocket at /execution/events/ws."""
        keep = EntryFilter(parse_types(types), exchange, symbol, order_id)
        # A reconnecting EventSource sends the last id it received: that wins over the
        # `after` of the URL it first connected with.
        last_event_id = request.headers.get("last-event-id")
        start = parse_last_event_id(last_event_id) if last_event_id is not None else after
        if start is None:
            await feed.start()
            start = feed.head
        else:
            await feed.check(start)
        deliveries = feed.follow(start, keep, queue=queue)
        return EventSourceResponse(
            _sse(feed, start, deliveries), headers={"Cache-Control": "no-cache", **journal_header}
        )

    @routes.websocket("/execution/events/ws")
    async def events_socket(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await feed.start()
            start, keep = await _opening(websocket, feed.head)
            if start is not None:
                await feed.check(start)
        except (ServiceError, ValidationError, ValueError) as error:
            await _refuse(websocket, error)
            return
        except WebSocketDisconnect:
            return
        try:
            async with anyio.create_task_group() as group:
                # Anything the client sends once streaming is a message this service
                # does not take; its leaving ends the stream.
                group.start_soon(_watch_client, websocket, group.cancel_scope)
                await _send_events(websocket, feed.follow(start, keep, queue=queue))
                group.cancel_scope.cancel()
        except* (WebSocketDisconnect, WebSocketDisconnected, OSError):
            pass  # the client left mid-send (or its refusal closed the socket meanwhile)

    @routes.get(
        "/execution/fills",
        response_model=FillPage,
        responses={**BAD_QUERY, **EXPIRED},
        dependencies=[Depends(refuse_unknown_query)],
        tags=TAGS,
    )
    async def list_fills(
        *, after: After = None, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE
    ) -> dict[str, Any]:
        """Every order's fills in the journal's order, a page at a time: pass `next_after`
        as `after` for the next page."""
        found, next_after = await journal.fills(after or 0, limit)
        return {"items": [fill_view(order, fill) for order, fill in found], "next_after": next_after}


async def _sse(feed: Feed, start: int, deliveries: AsyncIterator[Batch | Overflow | Heartbeat]) -> AsyncIterator[bytes]:
    # First an `id:` with no data: a client learns the seq the stream starts after, and
    # an EventSource that reconnects before any event resumes from there (an id alone
    # sets its Last-Event-ID without dispatching an event).
    yield b"id: %d\n\n" % start
    async for delivery in deliveries:
        if isinstance(delivery, Batch):
            yield feed.sse_bytes(delivery)
        elif isinstance(delivery, Overflow):
            yield b'event: overflow\ndata: {"last_seq":%d}\n\n' % delivery.last_sent
            return
        else:
            yield SSE_HEARTBEAT


async def _send_events(websocket: WebSocket, deliveries: AsyncIterator[Batch | Overflow | Heartbeat]) -> None:
    async for delivery in deliveries:
        if isinstance(delivery, Batch):
            for item in delivery.items:
                await websocket.send_text(item.json.decode())
        elif isinstance(delivery, Overflow):
            await websocket.close(TRY_AGAIN_LATER, f"overflow: too slow; resume after seq {delivery.last_sent}")
            return
    await websocket.close(SERVICE_RESTART, "the service is stopping; resume from the last seq received")


async def _opening(websocket: WebSocket, connected_at: int) -> tuple[int | None, EntryFilter]:
    """Where the stream starts and what it keeps: from the query, or from the client's
    first message (sent within FIRST_MESSAGE_SECONDS); else from `connected_at` on."""
    query = websocket.query_params
    refuse_unknown(query, {"after", "types", "exchange", "symbol", "order_id", "access_token"})
    if any(name in query for name in ("after", "types", "exchange", "symbol", "order_id")):
        after_text = query.get("after")
        hello = FirstMessage.model_validate(
            {
                "after": None if after_text is None else parse_last_event_id(after_text),
                "types": None if "types" not in query else sorted(parse_types(query["types"]) or ()),
                "exchange": query.get("exchange"),
                "symbol": query.get("symbol"),
                "order_id": query.get("order_id"),
            }
        )
    else:
        text = None
        with anyio.move_on_after(FIRST_MESSAGE_SECONDS):
            text = await _receive_text(websocket)
        if text is None:
            return connected_at, EntryFilter()
        hello = FirstMessage.model_validate_json(text)
    keep = EntryFilter(
        None if hello.types is None else frozenset(hello.types), hello.exchange, hello.symbol, hello.order_id
    )
    return (connected_at if hello.after is None else hello.after), keep


async def _receive_text(websocket: WebSocket) -> str:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise InvalidQuery("Messages must be JSON text, not binary")
    return str(text)


async def _watch_client(websocket: WebSocket, scope: anyio.CancelScope) -> None:
    try:
        await _receive_text(websocket)
    except InvalidQuery:
        pass  # refused below, as any message now is
    except WebSocketDisconnect:
        scope.cancel()
        return
    await _refuse(websocket, InvalidQuery("Only a first message is taken, before the stream starts"))
    scope.cancel()


async def _refuse(websocket: WebSocket, error: Exception) -> None:
    """Say what was wrong in a JSON message, then close with a policy violation."""
    if isinstance(error, ServiceError):
        body = error.body()
    elif isinstance(error, ValidationError):
        body = {"detail": f"Invalid first message: {error.errors()[0]['msg']}", "code": "VALIDATION_ERROR"}
    else:
        body = {"detail": str(error), "code": "VALIDATION_ERROR"}
    if websocket.application_state == WebSocketState.CONNECTED:
        await websocket.send_text(json.dumps(body, separators=(",", ":")))
        # The store being down is no fault of the client's message.
        code = INTERNAL_ERROR if isinstance(error, StoreUnavailable) else POLICY_VIOLATION
        await websocket.close(code, body["detail"][:120])
