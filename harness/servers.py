"""Start and stop real uvicorn processes on loopback ports; the one place tests and
benches do it from.

A server runs `python -m uvicorn APP --host 127.0.0.1 --port PORT [ARGS]` with this
interpreter, in a root directory (the repository by default; a bench may pass a
`git worktree` of another commit) that is also its PYTHONPATH, so the code imported
is that directory's and nothing else's. Its stdout and stderr go to a log file.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class ServerFailed(RuntimeError):
    """The server exited at start-up, or did not answer in time (the message has its log's end)."""


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick, so parallel runs do not collide)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_command(app: str, port: int, *uvicorn_args: str) -> list[str]:
    """The spec's command line for `app` ("module:attribute") on `port`."""
    return [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), *uvicorn_args]


def log_tail(log: Path, lines: int = 50) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def answers(url: str, timeout: float) -> bool:
    """Whether `url` gives a 2xx answer now."""
    try:
        # S310 silenced: callers pass http://127.0.0.1 URLs they built, never user input.
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError:
        return False  # up, but not ready (or an auth wall): keep waiting until the deadline
    except OSError:
        return False  # nothing listening yet


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, *, log: Path, timeout: float = 30, attempt_timeout: float = 5
) -> None:
    """Poll `url` until a 2xx answer; raise ServerFailed if `process` exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServerFailed(f"uvicorn exited at start-up (code {process.returncode}); {log}:\n{log_tail(log)}")
        if answers(url, attempt_timeout):
            return
        if time.monotonic() > deadline:
            raise ServerFailed(f"uvicorn did not answer {url} within {timeout:g} s; {log}:\n{log_tail(log)}")
        time.sleep(0.05)


def start_uvicorn(
    app: str,
    port: int,
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    root: Path = ROOT,
    uvicorn_args: Sequence[str] = (),
    probe: str = "/healthz",
    timeout: float = 30,
) -> subprocess.Popen[bytes]:
    """Start `app` on `port` and return once `probe` answers 2xx.

    `env` is laid over this process's environment; PYTHONPATH is always `root`, which is
    also the working directory. The log is appended to (callers wanting one log per run
    pass a fresh path). On failure the process is stopped and ServerFailed raised.
    """
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(root)}
    with log.open("ab") as out:
        # The child keeps its own copy of the descriptor, so closing ours here is fine;
        # S603 silenced: our own argument list (this interpreter, uvicorn), no shell.
        process = subprocess.Popen(  # noqa: S603
            uvicorn_command(app, port, *uvicorn_args), cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_answering(process, f"http://{HOST}:{port}{probe}", log=log, timeout=timeout)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGINT (uvicorn's graceful shutdown, workers included), then a kill if it takes over `grace` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_uvicorn(
    app: str,
    port: int,
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    root: Path = ROOT,
    uvicorn_args: Sequence[str] = (),
    probe: str = "/healthz",
    timeout: float = 30,
    grace: float = 15,
) -> Iterator[subprocess.Popen[bytes]]:
    """`start_uvicorn` for the length of a `with` block; stopped however the block ends."""
    process = start_uvicorn(
        app, port, log=log, env=env, root=root, uvicorn_args=uvicorn_args, probe=probe, timeout=timeout
    )
    try:
        yield process
    finally:
        stop(process, grace)
