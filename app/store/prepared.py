"""Statements written with SQLAlchemy, compiled once, run straight on the driver.

SQLAlchemy Core spends tens of microseconds of Python on every execution (a cache key
for the statement, parameter and result processing) where the driver spends a few: on
a store's hot paths that is most of a request's cost. A `Prepared` statement is still
written once, as SQLAlchemy Core, and compiled once for the store's database; running
it hands the driver the compiled SQL and the parameters in the compiled order, inside
the transaction of the SQLAlchemy `Connection` it is given. Rows come back as named
tuples (columns as attributes, as SQLAlchemy's rows have them).

The statements kept this way bind only what the driver takes as it is: text, integers,
booleans and None (the schema stores exact decimals as text). A list bound to an
`expanding` parameter (`IN :ids`) is compiled for its length: `Prepared.expanding`
keeps one compiled form per length.
"""

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ReturnsRows
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

# A row: its columns as attributes (any name the statement selects).
Record = Any


class Prepared:
    """One statement compiled for one dialect. `lengths` compiles each named expanding
    parameter for that many values (passed as a list under its name when run)."""

    __slots__ = ("_defaults", "_expanded", "_names", "_record", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, lengths: Mapping[str, int] | None = None) -> None:
        self._expanded = dict(lengths or {})
        compiled: SQLCompiler = statement.compile(dialect=dialect)  # type: ignore[assignment]
        # Expanding parameters (a list bound to `name`, and literal lists such as
        # `status IN ('NEW', ...)`) are rendered as one parameter per value: the given
        # ones for their length (name_1 ... name_n, bound from the list at each run).
        placeholders: dict[str, Any] = {name: None for name, bind in compiled.binds.items() if bind.required}
        placeholders.update({name: [None] * n for name, n in self._expanded.items()})
        state = compiled.construct_expanded_state(placeholders)
        self.sql = state.statement
        given = {f"{name}_{i}" for name, n in self._expanded.items() for i in range(1, n + 1)}
        # Literal values in the statement (`type = 'MARKET'`) are bound parameters too:
        # their values come from the compiled form.
        required = {name for name, bind in compiled.binds.items() if bind.required}
        # (An enum member in a statement goes to the driver as its value.)
        self._defaults = {
            name: value.value if isinstance(value, Enum) else value
            for name, value in state.parameters.items()
            if name not in given and name not in required
        }
        # Positional drivers (SQLite's `?`) take a sequence in this order; named ones a dict.
        self._names: tuple[str, ...] | None = None if state.positiontup is None else tuple(state.positiontup)
        self._record: Any = None
        if isinstance(statement, ReturnsRows):
            # Rows as named tuples: columns as attributes, each row made in C.
            columns = [str(column.key) for column in statement.exported_columns]
            self._record = namedtuple("Record", columns)  # type: ignore[misc]

    @classmethod
    def expanding(cls, statement: ClauseElement, dialect: Dialect, name: str) -> "ByLength":
        """The statement compiled lazily for each length of the list bound to `name`."""
        return ByLength(statement, dialect, name)

    def bind(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The parameters as the driver takes them for `sql`."""
        values = {**self._defaults, **params}
        for name in self._expanded:
            for i, value in enumerate(values.pop(name), start=1):
                values[f"{name}_{i}"] = value
        if self._names is None:
            return values
        return [values[name] for name in self._names]

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Record]:
        """The rows the statement gives."""
        make = self._record._make
        pipeline: Pipeline | None = conn.info.get(Pipeline)
        if pipeline is not None:
            return [make(row) for row in pipeline.rows(self.sql, self.bind(params or {}))]
        with _cursor(conn, self.sql) as cursor:
            cursor.execute(self.sql, self.bind(params or {}))
            return [make(row) for row in cursor.fetchall()]

    def one_or_none(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Record | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def send(self, conn: Connection, params: Mapping[str, Any] | None = None) -> "Pending":
        """The statement's rows, read later: in a `Pipeline`, it is sent now and its rows
        read at `Pending.rows` (reads sent together share one round trip); elsewhere, it
        runs when they are read. Either way it must not depend on what the transaction
        writes in between (the caller's rule: a read sent early reads what was there)."""
        pipeline: Pipeline | None = conn.info.get(Pipeline)
        if pipeline is None:
            return Pending(lambda: self.rows(conn, params))
        make = self._record._make
        cursor = pipeline.send(self.sql, self.bind(params or {}))
        return Pending(lambda: [make(row) for row in pipeline.fetch(cursor, self.sql)])

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None, *, counted: bool = True) -> int:
        """Run a statement that returns no rows; how many rows it changed (in a
        `pipelined` transaction, -1 unless `counted`: it is then sent without waiting)."""
        pipeline: Pipeline | None = conn.info.get(Pipeline)
        if pipeline is not None:
            return pipeline.run(self.sql, self.bind(params or {}), counted=counted)
        with _cursor(conn, self.sql) as cursor:
            cursor.execute(self.sql, self.bind(params or {}))
            return int(cursor.rowcount)

    def count_many(self, conn: Connection, params: Iterable[Mapping[str, Any]]) -> "Count":
        """`run_many`, its count read later (see `Count`): in a pipeline, sent without
        waiting."""
        bound = [self.bind(each) for each in params]
        pipeline: Pipeline | None = conn.info.get(Pipeline)
        if pipeline is not None:
            return Count(cursor=pipeline.send(self.sql, bound, many=True))
        with _cursor(conn, self.sql) as cursor:
            cursor.executemany(self.sql, bound)
            return Count(int(cursor.rowcount))

    def run_many(self, conn: Connection, params: Iterable[Mapping[str, Any]], *, counted: bool = True) -> int:
        """Run it once for each set of parameters (the driver's executemany); how many
        rows it changed in all (in a `pipelined` transaction, -1 unless `counted`)."""
        bound = [self.bind(each) for each in params]
        pipeline: Pipeline | None = conn.info.get(Pipeline)
        if pipeline is not None:
            return pipeline.run(self.sql, bound, counted=counted, many=True)
        with _cursor(conn, self.sql) as cursor:
            cursor.executemany(self.sql, bound)
            return int(cursor.rowcount)


class Pending:
    """A statement's rows once read (`Prepared.send`); read once, kept after."""

    __slots__ = ("_read", "_rows")

    def __init__(self, read: Callable[[], list[Record]]) -> None:
        self._read = read
        self._rows: list[Record] | None = None

    def rows(self) -> list[Record]:
        if self._rows is None:
            self._rows = self._read()
        return self._rows

    def one_or_none(self) -> Record | None:
        found = self.rows()
        return found[0] if found else None


class Count:
    """How many rows a statement changed: known at once, or (in a `Pipeline`) once its
    result has come back, at the next statement that waits or at the pipeline's end."""

    __slots__ = ("_cursor", "_value")

    def __init__(self, value: int = -1, cursor: Any = None) -> None:
        self._value = value
        self._cursor = cursor

    @property
    def value(self) -> int:
        return self._value if self._cursor is None else int(self._cursor.rowcount)

    @property
    def known(self) -> bool:
        """Whether the result is in: always, outside a pipeline."""
        return self._cursor is None


class ByLength:
    """A statement with one expanding parameter, compiled once per length of its list."""

    __slots__ = ("_by_length", "_dialect", "_name", "_statement")

    def __init__(self, statement: ClauseElement, dialect: Dialect, name: str) -> None:
        self._statement = statement
        self._dialect = dialect
        self._name = name
        self._by_length: dict[int, Prepared] = {}

    def of(self, length: int) -> Prepared:
        prepared = self._by_length.get(length)
        if prepared is None:
            prepared = self._by_length[length] = Prepared(self._statement, self._dialect, {self._name: length})
        return prepared

    def rows(self, conn: Connection, values: Sequence[Any], params: Mapping[str, Any] | None = None) -> list[Record]:
        if not values:
            return []
        return self.of(len(values)).rows(conn, {**(params or {}), self._name: list(values)})

    def send(self, conn: Connection, values: Sequence[Any], params: Mapping[str, Any] | None = None) -> Pending:
        """`Prepared.send` for these values."""
        if not values:
            return Pending(list)
        return self.of(len(values)).send(conn, {**(params or {}), self._name: list(values)})


class Pipeline:
    """PostgreSQL's pipeline mode for the rest of a transaction on an asynchronous
    connection (from SQLAlchemy's greenlet on an event loop): a statement whose count
    nobody reads is sent without waiting for its result, and one whose rows or count
    are read waits for it and everything sent before it, in one round trip. A batch's
    writes hold an instrument's lock; each round trip waits for a turn of the busy
    event loop: fewer of them, shorter locks. The driver's errors come out at the next
    statement that waits, or at the end."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        driver = conn.connection.driver_connection
        assert driver is not None  # a Connection in use holds one
        self._driver: Any = driver
        self._manager: Any = driver.pipeline()
        self._pipeline: Any = await_only(self._manager.__aenter__())

    def rows(self, sql: str, params: Any) -> list[Any]:
        return self.fetch(self.send(sql, params), sql)

    def fetch(self, cursor: Any, sql: str) -> list[Any]:
        """The rows of a statement `send` sent (and of every one sent before it)."""
        with _translating(self._conn, sql):
            found: list[Any] = await_only(cursor.fetchall())
            return found

    def run(self, sql: str, params: Any, *, counted: bool, many: bool = False) -> int:
        cursor = self.send(sql, params, many=many)
        if not counted:
            return -1
        with _translating(self._conn, sql):
            await_only(self._pipeline.sync())
        return int(cursor.rowcount)

    def send(self, sql: str, params: Any, *, many: bool = False) -> Any:
        """Send a statement without waiting for its result; its cursor."""
        with _translating(self._conn, sql):
            cursor = self._driver.cursor()
            await_only(cursor.executemany(sql, params) if many else cursor.execute(sql, params))
            return cursor

    def end(self, error: BaseException | None) -> None:
        """Leave pipeline mode: wait for every result (and raise the first error)."""
        with _translating(self._conn, "(pipeline)"):
            if error is None:
                await_only(self._manager.__aexit__(None, None, None))
            else:
                await_only(self._manager.__aexit__(type(error), error, error.__traceback__))


@contextmanager
def pipelined(conn: Connection, *, wanted: bool = True) -> Iterator[bool]:
    """The statements run by `Prepared` in this block use a `Pipeline` if `wanted` and
    the connection is PostgreSQL's asynchronous one in SQLAlchemy's greenlet (elsewhere,
    they run as they are). Gives whether they do."""
    if not wanted or conn.dialect.name != "postgresql" or not in_greenlet() or Pipeline in conn.info:
        yield False
        return
    pipeline = conn.info[Pipeline] = Pipeline(conn)
    try:
        yield True
    except BaseException as error:
        del conn.info[Pipeline]
        pipeline.end(error)
        raise
    del conn.info[Pipeline]
    pipeline.end(None)


@contextmanager
def _translating(conn: Connection, sql: str, cursor: Any = None) -> Iterator[None]:
    """The driver's errors as SQLAlchemy's (as if SQLAlchemy had run the statement); a
    connection the error shows is broken is dropped from the pool."""
    dialect = conn.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as error:
        broken = dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
        if broken:
            conn.invalidate()
        raise DBAPIError.instance(
            sql, None, error, dialect.loaded_dbapi.Error, connection_invalidated=broken, dialect=dialect
        ) from error


@contextmanager
def _cursor(conn: Connection, sql: str) -> Iterator[Any]:
    """A cursor of the driver's own connection, inside the transaction SQLAlchemy began
    on it, its errors SQLAlchemy's (`_translating`)."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a Connection in use holds one
    cursor = dbapi_connection.cursor()
    try:
        with _translating(conn, sql, cursor):
            yield cursor
    finally:
        cursor.close()
