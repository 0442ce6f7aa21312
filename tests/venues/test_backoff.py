import random

from app.venues.backoff import Backoff


def test_waits_double_up_to_the_cap_each_within_its_upper_half() -> None:
    backoff = Backoff(first=0.5, most=4.0, rng=random.Random(7))
    waits = [backoff.next() for _ in range(7)]
    for wait, step in zip(waits, [0.5, 1, 2, 4, 4, 4, 4], strict=True):
        assert step / 2 <= wait <= step
    assert len(set(waits)) == len(waits)  # jittered: no two alike


def test_a_reset_starts_again_from_the_first_wait() -> None:
    backoff = Backoff(first=1.0, most=8.0, rng=random.Random(1))
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0


def test_two_processes_drawing_apart_do_not_wait_alike() -> None:
    a, b = Backoff(rng=random.Random(1)), Backoff(rng=random.Random(2))
    assert [a.next() for _ in range(3)] != [b.next() for _ in range(3)]
