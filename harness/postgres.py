"""A throwaway PostgreSQL cluster from the machine's own binaries, on a free loopback
port, in a temporary directory, stopped and removed afterwards.

`initdb` refuses to run as root: as root, the cluster runs as the `postgres` system
user (Debian's postgresql package creates it).
"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from harness.servers import free_port


class PostgresMissing(Exception):
    """No PostgreSQL binaries (or no user to run them as) on this machine."""


def find_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps them off PATH, one folder per major version: take the newest.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    if not candidates:
        raise PostgresMissing(f"{name} not found on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return candidates[-1]


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise PostgresMissing("running as root, and runuser is missing to start PostgreSQL as another user")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing("running as root, and there is no postgres system user to run PostgreSQL") from None
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def postgres_cluster(*, durable: bool = False, max_connections: int = 200) -> Iterator[str]:
    """Start a cluster and yield its URL (`postgresql://postgres@127.0.0.1:PORT/postgres`).

    `durable=False` turns off fsync: fine for tests, which do not survive power cuts;
    a benchmark passes True to measure what a real server costs.
    """
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    top = Path(tempfile.mkdtemp(prefix="execution-pg-"))
    data, log = top / "data", top / "server.log"
    if os.geteuid() == 0:
        os.chmod(top, 0o755)  # noqa: S103 -- the postgres user must reach its data directory
        shutil.chown(top, user="postgres")
    port = free_port()
    settings = [
        "-c listen_addresses=127.0.0.1",
        f"-c port={port}",
        f"-c unix_socket_directories={top}",
        f"-c max_connections={max_connections}",
    ]
    if not durable:
        settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    # S603 silenced below: fixed argument lists of the machine's own binaries, no shell.
    try:
        subprocess.run(  # noqa: S603
            _as_owner([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(  # noqa: S603
            _as_owner([pg_ctl, "-D", str(data), "-l", str(log), "-o", " ".join(settings), "-w", "-t", "60", "start"]),
            check=True,
            capture_output=True,
            timeout=90,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(  # noqa: S603
                _as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                check=False,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(top, ignore_errors=True)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) is in parentheses and may hold spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


@contextmanager
def frozen(url: str) -> Iterator[None]:
    """Stop every process of the cluster at `url` (SIGSTOP) and continue them on exit: a
    database that stops answering without closing its connections."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    postmaster = int((Path(row[0]) / "postmaster.pid").read_text().split()[0])
    # The postmaster first, so that it starts no new backend meanwhile.
    processes = [postmaster]
    os.kill(postmaster, signal.SIGSTOP)
    try:
        processes += _children(postmaster)
        for pid in processes[1:]:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
