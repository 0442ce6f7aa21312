"""Structured event logging in the spec's line shape.

A record's message is the event text alone; its fields are attributes of the
`LogRecord` (and listed in `record.fields`), and the formatter appends them as JSON:
`2024-01-15 10:30:00 - execution - INFO - Received order intent {"idempotency_key": ...}`
"""

import asyncio
import json
import logging
import os
import sys
import time
import traceback
from contextvars import ContextVar
from typing import Any, Literal

Fields = dict[str, Any]
LogFormat = Literal["text", "json"]

# The id of the request being served, set by the request middleware: every event
# logged while serving it carries the id, without each caller passing it along.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

# One encoder, made once: `json.dumps(..., default=str)` builds a new one per call.
# Default separators give the spec's `{"key": "value", ...}` shape.
_encode_fields = json.JSONEncoder(default=str).encode


class FieldsFormatter(logging.Formatter):
    """The spec's text line, in UTC; fields are JSON-encoded so no value can forge a line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime per second, not per line
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
            self._second = second
        line = f"{self._stamp} - {record.name} - {record.levelname} - {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            line = f"{line} {_encode_fields(fields)}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: timestamp (UTC, ISO 8601),
    level, logger, message, the structured fields, and a traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: Fields = {
            "timestamp": f"{moment}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "fields": getattr(record, "fields", None) or {},
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return _encode_fields(line)


def server_formatter() -> logging.Formatter:
    """The service's format, chosen by LOG_FORMAT, for uvicorn's `--log-config`
    (app/uvicorn_logging.json): with `--workers`, the supervisor process never loads the
    app, and this is how its own lines get the same shape as the workers'."""
    log_format = os.environ.get("LOG_FORMAT", "text").strip().lower()
    return JsonFormatter() if log_format == "json" else FieldsFormatter()


class EventLog:
    """Emits events with structured fields on one logger.

    Records are built with `makeRecord` and passed to `handle`, which skips the
    stack walk `Logger.info` does to find the caller: these lines are on the hot path.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def debug(self, message: str, fields: Fields) -> None:
        self._emit(logging.DEBUG, message, fields)

    def info(self, message: str, fields: Fields) -> None:
        self._emit(logging.INFO, message, fields)

    def warning(self, message: str, fields: Fields) -> None:
        self._emit(logging.WARNING, message, fields)

    def error(self, message: str, fields: Fields, error: BaseException) -> None:
        """An ERROR line with `error`'s traceback."""
        self._emit(logging.ERROR, message, fields, (type(error), error, error.__traceback__))

    def _emit(self, level: int, message: str, fields: Fields, exc_info: Any = None) -> None:
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        request_id = current_request_id.get()
        if request_id is not None:
            fields = {**fields, "request_id": request_id}
        record = logger.makeRecord(logger.name, level, "", 0, message, (), exc_info, extra=fields)
        record.fields = fields
        logger.handle(record)


class LoopBatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, inside an event loop, writes once per loop iteration.

    Each request logs three lines, and a write system call per line is a noticeable
    share of a request's cost. Lines logged while a loop runs are written together
    when that loop comes round (its next iteration), so none waits longer than that.
    Outside a loop (threads, start-up, shutdown) a line is written at once, after
    anything pending.
    """

    # Past this many waiting lines, write now: a loop that stopped before its flush
    # ran must not make lines pile up.
    MAX_PENDING = 1000

    def __init__(self, stream: Any, batched: str) -> None:
        super().__init__(stream)
        self._batched = batched  # the logger whose lines are batched: the service's
        self._pending: list[str] = []
        # The loop that has a flush queued; another loop queues its own, so lines are
        # never left waiting on a loop that has stopped.
        self._flush_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle with self.lock held.
        try:
            self._pending.append(self.format(record) + self.terminator)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            # The server's own lines (start-up, shutdown, errors) are few and may be the
            # last before the process ends (uvicorn re-raises SIGTERM once it has shut
            # down, and that kills it before the loop comes round): written at once.
            if loop is None or record.name != self._batched or len(self._pending) >= self.MAX_PENDING:
                self._write_pending()
            elif self._flush_loop is not loop:
                loop.call_soon(self._flush_in_loop)
                self._flush_loop = loop
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()

    def _flush_in_loop(self) -> None:
        # An event-loop callback: report a failed write the way Handler.handleError
        # does, never raise into the loop. The batch is dropped, as a StreamHandler
        # drops a line it cannot write.
        try:
            self.flush()
        except Exception:
            if logging.raiseExceptions:
                traceback.print_exc(file=sys.stderr)

    def _write_pending(self) -> None:
        self._flush_loop = None
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self.stream.write(text)
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()


_HANDLER_NAME = "execution-service"


def configure_logging(logger_name: str, level: int, log_format: LogFormat = "text") -> logging.Logger:
    """Send the service's events, and uvicorn's own lines, to stderr in one format: the
    spec's text line, or JSON. Safe to call again."""
    # The line shape has no thread or process names; not collecting them makes every
    # record cheaper (the logging HOWTO's "Optimization" section).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logger = logging.getLogger(logger_name)
    logger.setLevel(level)
    for handler in [h for h in logger.handlers if h.name == _HANDLER_NAME]:
        logger.removeHandler(handler)
    handler = LoopBatchingHandler(sys.stderr, logger_name)
    handler.name = _HANDLER_NAME
    handler.setFormatter(JsonFormatter() if log_format == "json" else FieldsFormatter())
    logger.addHandler(handler)
    # Our handler writes every line; a handler on the root logger (a --log-config,
    # say) must not print them a second time.
    logger.propagate = False
    # uvicorn's start-up, shutdown and error lines ("uvicorn.error" propagates to
    # "uvicorn") go through the same handler, so a log shipper sees one format.
    # uvicorn configures its loggers before it imports the app, so this comes after.
    server = logging.getLogger("uvicorn")
    server.handlers.clear()
    server.addHandler(handler)
    server.propagate = False
    # The service writes its own request line; uvicorn checks for handlers on each new
    # connection, so with none it skips its access line instead of printing a second one.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    return logger
