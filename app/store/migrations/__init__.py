"""The SQL store's schema history as Alembic migrations, run by `app.store.schema.prepare`
at start-up (there is no alembic.ini: the configuration is built in code).

Each revision freezes the schema, and any data logic, of its time: none imports the
application, so a later change to the service cannot change what an old upgrade does.
A new schema version is a new file in versions/ (revision "000N", down_revision the
previous one) that also sets schema_version to N, plus SCHEMA_VERSION = N in schema.py
and the table objects there; tests/store/test_migrations.py checks they agree.
"""
