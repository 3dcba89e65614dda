"""Restart back-off: doubling, cap, windows measured from the last exit, resets."""

from __future__ import annotations

import pytest

from agent.backoff import Backoff


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_no_entry_means_no_backoff() -> None:
    b = Backoff(10, 300)
    assert b.remaining("p/c", now=0) == 0.0
    assert not b.in_backoff("p/c", now=0)
    assert b.delay("p/c") == 0.0


@pytest.mark.parametrize(
    ("base", "cap", "expected"),
    [
        (10, 300, [10, 20, 40, 80, 160, 300, 300]),
        (0.2, 1.0, [0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]),
        (5, 5, [5, 5, 5, 5, 5, 5, 5]),
    ],
)
def test_doubles_up_to_cap(base: float, cap: float, expected: list[float]) -> None:
    b = Backoff(base, cap)
    t = 0.0
    got = []
    for _ in expected:
        got.append(b.next("k", now=t, ran_for=1))
        t += 1
    assert got == pytest.approx(expected)


def test_window_runs_from_the_later_of_exit_and_last_attempt() -> None:
    b = Backoff(10, 300)
    b.next("k", now=100)  # restart at 100, armed 10s
    assert b.remaining("k", now=105) == pytest.approx(5)  # failed start: since = last attempt
    assert b.remaining("k", now=105, since=102) == pytest.approx(7)  # crashed at 102
    assert b.remaining("k", now=105, since=50) == pytest.approx(5)  # old exit: last attempt wins
    assert not b.in_backoff("k", now=112, since=102)


def test_clean_run_resets_to_base() -> None:
    b = Backoff(10, 300, reset_after=600)
    for t in range(5):
        b.next("k", now=t)
    assert b.delay("k") == 160
    assert b.next("k", now=10, ran_for=599) == 300
    assert b.next("k", now=20, ran_for=600) == 10


def test_stale_entry_resets() -> None:
    b = Backoff(10, 300, reset_after=600)
    b.next("k", now=0)
    b.next("k", now=1)
    assert b.delay("k") == 20
    assert b.next("k", now=1 + 620) == 10


def test_injected_clock_is_used_when_now_is_omitted() -> None:
    clock = FakeClock(1000)
    b = Backoff(10, 300, clock=clock)
    b.next("k")
    assert b.in_backoff("k")
    clock.t = 1009.5
    assert b.remaining("k") == pytest.approx(0.5)
    clock.t = 1010
    assert not b.in_backoff("k")


def test_forget_and_reset() -> None:
    b = Backoff(1, 2)
    for k in ("u1/a", "u1/b", "u2/a"):
        b.next(k, now=0)
    b.forget_prefixes(["u1/"])
    assert b.keys() == ["u2/a"]
    b.reset("u2/a")
    assert b.keys() == []
    b.next("u3/a", now=0)
    b.retain(lambda k: k.startswith("u4/"))
    assert b.keys() == []


@pytest.mark.parametrize(("base", "cap"), [(0, 10), (-1, 10), (10, 5)])
def test_invalid_parameters(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)
