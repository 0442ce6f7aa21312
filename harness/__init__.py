"""The one place tests and benches start servers from.

- `harness.servers`: a free loopback port, a uvicorn process for an app string (env,
  root directory, extra uvicorn arguments, log file), waiting until it answers, and
  stopping it (SIGINT, then a kill after a bound);
- `harness.postgres`: a throwaway PostgreSQL cluster from the machine's own binaries.

Tests (`tests/uvicorn_server.py`, `tests/postgres.py`) and benches (`bench/`) build on
these, so a fix to how a server is started or stopped lands everywhere at once.
"""
