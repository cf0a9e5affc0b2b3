"""Test doubles shared by the source tests (named as doubles: they stand in for time, not for our code)."""

from __future__ import annotations


class FakeSleep:
    """Records the waits a client asks for instead of sleeping, so retry tests take no time."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
