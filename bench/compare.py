"""Order-intent throughput of the working tree against an earlier commit, side by side.

"before" is the service from a temporary `git worktree` of `--ref` (detached; its
directory is the server's working directory and PYTHONPATH), "after" the working
tree (or a worktree of `--against`). Both run the spec's uvicorn command (one
worker, bench.run's settings, in-memory store) and take the same load, this tree's
bench/post_intents.lua under `wrk` (1 thread, 32 connections, fresh keys, every
answer must be 201), so only the service's code differs. `--mode controls` gives both
bench.controls' controls-on configuration instead (rules file, TRADING_STATE, rate
limit, paper balances, a quote first, crossing LIMIT BUYs).

Contenders alternate over several rounds (who goes first alternates too); the
ratio after/before is printed as the ratio of medians and as the median of per-round
ratios, each against `--target`. Every server is stopped and every worktree removed
however the run ends.

    python -m bench.compare --ref 139f29a [--against REF] [--rounds 5] [--seconds 10]
                            [--warmup 2] [--mode core|controls] [--target 0.95]
"""

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bench.controls import CONTROLS_OFF, CROSSING_LIMIT_BUY, controls_on, post_quote, write_rules
from bench.run import Result, alternate, per_round_ratios, print_medians, require_wrk
from bench.stores import measure
from harness.servers import ROOT

WIDTH = 7


@dataclass
class Load:
    """What a mode gives both contenders: settings, intent fields and a step before the load."""

    env: dict[str, str]
    intent_fields: str | None = None
    before_load: Callable[[int], None] | None = None


@dataclass
class Contender:
    root: Path
    description: str


def git(*args: str) -> str:
    # --no-optional-locks: reading must not refresh the index someone else is editing.
    return subprocess.run(
        ["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


def resolve(ref: str) -> str:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        sys.exit(f"compare: {ref!r} is no commit in {ROOT}")


@contextmanager
def worktree(commit: str, path: Path) -> Iterator[Path]:
    """A detached worktree of `commit` at `path`, removed (and git's record of it pruned) afterwards."""
    git("worktree", "add", "--detach", str(path), commit)
    try:
        yield path
    finally:
        # check=False: a failed removal must not hide the error that brought us here.
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True, check=False, timeout=120
        )
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True, check=False, timeout=120)
        shutil.rmtree(path, ignore_errors=True)


def describe_commit(commit: str) -> str:
    return git("log", "-1", "--format=%h %s", commit)


def describe_working_tree() -> str:
    changed = len(git("status", "--porcelain").splitlines())
    return f"working tree {ROOT} (HEAD {git('rev-parse', '--short', 'HEAD')}, {changed} paths changed)"


def load_for(mode: str, folder: Path) -> Load:
    if mode == "controls":
        return Load(controls_on(write_rules(folder)), CROSSING_LIMIT_BUY, post_quote)
    return Load(dict(CONTROLS_OFF))  # bench.run's settings, the store named so the shell cannot pick another


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # As SystemExit, so the finally blocks stop the servers and remove the worktrees.
    sys.exit(128 + signum)


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f} ({'met' if ratio >= target else 'MISSED'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="the commit to compare against (before)")
    parser.add_argument("--against", help="a commit to measure as after (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--mode", choices=("core", "controls"), default="core")
    parser.add_argument("--target", type=float, default=0.95, help="the lowest acceptable after/before")
    args = parser.parse_args()
    wrk = require_wrk()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    before_commit = resolve(args.ref)
    after_commit = None if args.against is None else resolve(args.against)

    with ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-compare-")))
        contenders = {
            "before": Contender(
                cleanup.enter_context(worktree(before_commit, tmp / "before")), describe_commit(before_commit)
            ),
            "after": (
                Contender(ROOT, describe_working_tree())
                if after_commit is None
                else Contender(
                    cleanup.enter_context(worktree(after_commit, tmp / "after")), describe_commit(after_commit)
                )
            ),
        }
        load = load_for(args.mode, tmp)
        print(
            f"compare: using {wrk}; mode {args.mode}; {args.rounds} rounds of {args.seconds:g} s "
            f"(warmup {args.warmup:g} s) per contender, before and after alternating"
        )
        for name, contender in contenders.items():
            print(f"{name:{WIDTH}} {contender.description}  [{contender.root}]")

        def runner(name: str) -> Callable[[int], Result]:
            return lambda round_no: measure(
                wrk,
                load.env,
                [],
                seconds=args.seconds,
                warmup=args.warmup,
                log=tmp / f"{name}.log",
                label=f"{name}-{round_no}",
                intent_fields=load.intent_fields,
                before_load=load.before_load,
                root=contenders[name].root,
            )

        results = alternate(args.rounds, {name: runner(name) for name in contenders}, WIDTH)

    medians = print_medians(results, WIDTH)
    ratios = per_round_ratios(results["after"], results["before"])
    print(f"per-round after/before: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
    cpu_before, cpu_after = medians["before"].cpu_us, medians["after"].cpu_us
    if cpu_before is not None and cpu_after is not None:
        cpu_ratios = [
            b.cpu_us / a.cpu_us
            for a, b in zip(results["after"], results["before"], strict=True)
            if a.cpu_us and b.cpu_us
        ]
        print(
            f"server CPU per request, before/after (above 1: after costs less): ratio of medians "
            f"{cpu_before / cpu_after:.2f}, median of per-round ratios {statistics.median(cpu_ratios):.2f}"
        )
    print(
        f"after/before: ratio of medians {verdict(medians['after'].rps / medians['before'].rps, args.target)}, "
        f"median of per-round ratios {verdict(statistics.median(ratios), args.target)}; target ≥{args.target:g}"
    )


if __name__ == "__main__":
    main()
