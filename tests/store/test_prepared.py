"""Statements compiled once and run on the driver (app/store/prepared.py), on SQLite and
PostgreSQL: the rows, counts and errors SQLAlchemy itself would give."""

import asyncio
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from app.store.prepared import Prepared, pipelined
from tests.conftest import empty_postgres_store

T = TypeVar("T")

metadata = MetaData()
things = Table(
    "prepared_things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(8), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
)


@pytest.fixture
def engine(storage_url: str) -> Iterator[Engine]:
    url = storage_url.replace("postgresql://", "postgresql+psycopg://", 1)
    made = create_engine(url)
    metadata.drop_all(made)
    metadata.create_all(made)
    with made.begin() as conn:
        conn.execute(
            insert(things),
            [
                {"id": 1, "name": "a", "kind": "x"},
                {"id": 2, "name": "b", "kind": "y"},
                {"id": 3, "name": "c", "kind": "x"},
            ],
        )
    yield made
    metadata.drop_all(made)
    made.dispose()


def _insert(engine: Engine) -> object:
    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    return dialect_insert(things).values(id=bindparam("id"), name=bindparam("name"), kind=bindparam("kind"))


def test_rows_come_back_with_their_columns_as_attributes_and_literals_are_bound(engine: Engine) -> None:
    # A literal list (`IN ('x', 'z')`) and a bound parameter in one statement.
    statement = Prepared(
        select(things.c.id, things.c.name.label("label"))
        .where(things.c.kind.in_(["x", "z"]), things.c.id > bindparam("above"))
        .order_by(things.c.id),
        engine.dialect,
    )
    with engine.connect() as conn:
        rows = statement.rows(conn, {"above": 1})
        assert [(row.id, row.label) for row in rows] == [(3, "c")]
        assert statement.one_or_none(conn, {"above": 3}) is None


def test_an_expanding_list_is_compiled_once_per_length(engine: Engine) -> None:
    by_names = Prepared.expanding(
        select(things.c.id).where(things.c.name.in_(bindparam("names", expanding=True))).order_by(things.c.id),
        engine.dialect,
        "names",
    )
    with engine.connect() as conn:
        assert [row.id for row in by_names.rows(conn, ["c", "a"])] == [1, 3]
        assert [row.id for row in by_names.rows(conn, ["b", "zz"])] == [2]
        assert by_names.rows(conn, []) == []  # nothing to look for: no statement at all
    assert by_names.of(2) is by_names.of(2)
    assert by_names.of(2) is not by_names.of(3)


def test_run_many_counts_the_rows_it_changed(engine: Engine) -> None:
    """The writer finds a key taken meanwhile by this count: an insert that does nothing
    on a conflict must not be counted."""
    add = Prepared(_insert(engine).on_conflict_do_nothing(index_elements=[things.c.name]), engine.dialect)  # type: ignore[attr-defined]
    with engine.begin() as conn:
        taken = add.run_many(conn, [{"id": 4, "name": "d", "kind": "x"}, {"id": 5, "name": "a", "kind": "x"}])
        assert taken == 1
        assert add.run_many(conn, [{"id": 6, "name": "e", "kind": "x"}, {"id": 7, "name": "f", "kind": "y"}]) == 2
        rename = Prepared(things.update().where(things.c.kind == bindparam("k")).values(kind="w"), engine.dialect)
        assert rename.run(conn, {"k": "x"}) == 4  # a, c, d and e


def test_a_driver_error_is_sqlalchemys_and_the_transaction_rolls_back(engine: Engine) -> None:
    add = Prepared(_insert(engine), engine.dialect)

    def add_two() -> None:
        with engine.begin() as conn:
            add.run(conn, {"id": 8, "name": "g", "kind": "x"})
            add.run(conn, {"id": 9, "name": "a", "kind": "x"})  # the name is taken

    with pytest.raises(IntegrityError):
        add_two()
    with engine.connect() as conn:
        assert conn.execute(select(things.c.name).where(things.c.id == 8)).first() is None
    if engine.dialect.name == "postgresql":  # SQLite does not enforce a length
        with engine.begin() as conn, pytest.raises(DataError):
            add.run(conn, {"id": 10, "name": "far too long", "kind": "x"})


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    empty_postgres_store(postgres_url).close()
    made = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    metadata.drop_all(made)
    metadata.create_all(made)
    yield made
    metadata.drop_all(made)
    made.dispose()


def in_a_greenlet(engine: Engine, body: Callable[[Connection], T]) -> T:
    """Run `body` in a transaction on an asynchronous connection, as the store does from
    the event loop it serves (SQLAlchemy's greenlet)."""

    async def scenario() -> T:
        async_engine = create_async_engine(engine.url)
        try:
            async with async_engine.begin() as conn:
                return await conn.run_sync(body)
        finally:
            await async_engine.dispose()

    return asyncio.run(scenario())


def test_in_a_pipeline_writes_go_without_waiting_and_a_read_waits_for_them(postgres_engine: Engine) -> None:
    add = Prepared(
        _insert(postgres_engine).on_conflict_do_nothing(index_elements=[things.c.name]), postgres_engine.dialect
    )  # type: ignore[attr-defined]
    names = Prepared(select(things.c.name).order_by(things.c.id), postgres_engine.dialect)

    def body(conn: Connection) -> tuple[list[str], int, int, bool]:
        with pipelined(conn) as piped:
            assert piped
            assert add.run(conn, {"id": 1, "name": "a", "kind": "x"}, counted=False) == -1  # not waited for
            later = add.count_many(conn, [{"id": 2, "name": "b", "kind": "x"}, {"id": 3, "name": "a", "kind": "y"}])
            known_at_once = later.known
            seen = [row.name for row in names.rows(conn)]  # waits for everything sent before it
            counted = add.run(conn, {"id": 4, "name": "c", "kind": "x"})
        return seen, counted, later.value, known_at_once

    seen, counted, inserted, known_at_once = in_a_greenlet(postgres_engine, body)
    assert seen == ["a", "b"]
    assert counted == 1
    assert (known_at_once, inserted) == (False, 1)  # the conflicting name: not inserted, not counted
    with postgres_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar_one() == 3


def test_in_a_pipeline_an_error_comes_out_at_the_next_read_as_sqlalchemys(postgres_engine: Engine) -> None:
    add = Prepared(_insert(postgres_engine), postgres_engine.dialect)
    names = Prepared(select(things.c.name), postgres_engine.dialect)

    def body(conn: Connection) -> None:
        with pipelined(conn):
            add.run(conn, {"id": 1, "name": "a", "kind": "x"}, counted=False)
            add.run(conn, {"id": 2, "name": "a", "kind": "x"}, counted=False)  # the name is taken
            names.rows(conn)

    with pytest.raises(IntegrityError):
        in_a_greenlet(postgres_engine, body)
    with postgres_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar_one() == 0  # rolled back


def test_outside_a_greenlet_nothing_is_pipelined(engine: Engine) -> None:
    add = Prepared(_insert(engine), engine.dialect)
    with engine.begin() as conn, pipelined(conn) as piped:
        assert not piped
        assert add.run(conn, {"id": 5, "name": "e", "kind": "x"}, counted=False) == 1
