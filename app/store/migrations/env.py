"""Alembic's environment: migrations run on the connection `prepare` passes in, inside
its transaction (Alembic sees an external transaction and never commits), so the
caller's schema lock serializes workers starting together and a failed upgrade leaves
the database as it was (on SQLite too, whose DDL is transactional)."""

from alembic import context
from sqlalchemy import Connection

from app.store.schema import metadata


def run_migrations() -> None:
    if context.is_offline_mode():
        raise RuntimeError("the migrations run online only, through app.store.schema.prepare")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("no connection in config.attributes: run the migrations through app.store.schema.prepare")
    context.configure(
        connection=connection,
        target_metadata=metadata,  # what autogenerate compares against
        # SQLite alters little in place: autogenerate writes batch operations for it.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
