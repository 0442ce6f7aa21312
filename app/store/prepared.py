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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ReturnsRows

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
        with _cursor(conn, self.sql) as cursor:
            cursor.execute(self.sql, self.bind(params or {}))
            make = self._record._make
            return [make(row) for row in cursor.fetchall()]

    def one_or_none(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Record | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement that returns no rows; how many rows it changed."""
        with _cursor(conn, self.sql) as cursor:
            cursor.execute(self.sql, self.bind(params or {}))
            return int(cursor.rowcount)

    def run_many(self, conn: Connection, params: Iterable[Mapping[str, Any]]) -> int:
        """Run it once for each set of parameters (the driver's executemany); how many
        rows it changed in all."""
        with _cursor(conn, self.sql) as cursor:
            cursor.executemany(self.sql, [self.bind(each) for each in params])
            return int(cursor.rowcount)


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


@contextmanager
def _cursor(conn: Connection, sql: str) -> Iterator[Any]:
    """A cursor of the driver's own connection, inside the transaction SQLAlchemy began
    on it. The driver's errors come out as SQLAlchemy's (as if SQLAlchemy had run the
    statement), and a connection the error shows is broken is dropped from the pool."""
    dialect = conn.dialect
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a Connection in use holds one
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as error:
        broken = dialect.is_disconnect(error, dbapi_connection, cursor)
        if broken:
            conn.invalidate()
        raise DBAPIError.instance(
            sql, None, error, dialect.loaded_dbapi.Error, connection_invalidated=broken, dialect=dialect
        ) from error
    finally:
        cursor.close()
