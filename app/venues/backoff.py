"""How long a feed waits before it connects again: exponential, capped, with jitter."""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Waits of `first`, doubling up to `most` seconds, each drawn from its upper half
    ("equal jitter"): processes that lost one connection at once do not all come back
    at the same instant, and none waits less than half its step."""

    first: float = 0.5
    most: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next(self) -> float:
        """The wait before the next attempt, after one more failure."""
        step: float = min(self.most, self.first * 2.0**self.failures)
        self.failures += 1
        wait: float = step / 2 + self.rng.uniform(0, step / 2)
        return wait

    def reset(self) -> None:
        """It worked: the next failure waits `first` again."""
        self.failures = 0
