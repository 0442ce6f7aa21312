"""The throwaway PostgreSQL cluster now lives in `harness.postgres` (shared with the
benches); re-exported here so the tests' imports keep working."""

from harness.postgres import PostgresMissing, postgres_cluster

__all__ = ["PostgresMissing", "postgres_cluster"]
