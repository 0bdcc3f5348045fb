"""Restart pacing: exponential backoff with jitter (tenacity), and the restart intensity window."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import tenacity

__all__ = ["Backoff", "IntensityWindow"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the n-th consecutive restart of a child.

    ``delay(n) = min(maximum, initial * multiplier ** (n - 1) + uniform(0, jitter))``,
    computed by tenacity's ``wait_exponential_jitter``. The count of consecutive failures
    resets once a child has run for ``reset_after`` seconds without failing.
    """

    initial: float = 0.1
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "jitter", "reset_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"backoff.{name} must be >= 0")
        if self.multiplier < 1:
            raise ValueError("backoff.multiplier must be >= 1")

    def wait_strategy(self) -> tenacity.wait.wait_base:
        """The tenacity wait strategy this policy stands for (also used by the retry helper)."""
        if self.initial == 0 and self.jitter == 0:
            return tenacity.wait_none()
        return tenacity.wait_exponential_jitter(
            multiplier=self.initial,
            max=self.maximum,
            exp_base=self.multiplier,
            jitter=self.jitter,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based) of a failing streak."""
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = max(1, attempt)
        return float(self.wait_strategy()(state))


class IntensityWindow:
    """Counts restarts in a sliding time window; owned by one supervisor.

    Like OTP: at most ``max_restarts`` restarts within ``within`` seconds are allowed; the
    next one means the supervisor gives up and escalates.
    """

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Note a restart at ``now``; False when this restart exceeds the intensity."""
        self._times.append(now)
        horizon = now - self.within
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        return len(self._times) <= self.max_restarts

    def count(self, now: float) -> int:
        horizon = now - self.within
        return sum(1 for t in self._times if t > horizon)

    def reset(self) -> None:
        self._times.clear()
