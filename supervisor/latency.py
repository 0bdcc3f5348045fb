"""HandlerLatency: how long one actor's message handlers take, as a cheap histogram."""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["BUCKETS", "HandlerLatency"]

# Upper bounds in seconds (Prometheus "le"): from 50 µs to 10 s; the last bucket is +Inf.
BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)


class HandlerLatency:
    """Owns one child's handler-duration counts (across its incarnations).

    Written only by the actor's own thread (one handler at a time), read by anyone: a reader
    may see a count one behind the sum, never a torn value.
    """

    __slots__ = ("count", "counts", "max", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.counts = [0] * (len(BUCKETS) + 1)

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1
        if seconds > self.max:  # noqa: PLR1730 (a compare is cheaper than a call here)
            self.max = seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus-style buckets: (upper bound, handlers at or under it), +Inf last."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*map(repr, BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
