"""A timer's message is not lost to a full mailbox: ``ActorContext.schedule`` tells it
again until the mailbox takes it. (An actor that keeps its deadlines on one timer, as the
executor does, would otherwise never hear of them again.) Real runtime and actor; time is
a ManualClock; the actor's handler is held by an event while its mailbox fills."""

from __future__ import annotations

import threading
from typing import Any

from supervisor import ChildSpec, Runtime, SupervisedActor, SupervisorSpec
from supervisor.clock import ManualClock
from supervisor.context import TIMER_RETRY
from supervisor.errors import MailboxFull
from tests.support.bot_helpers import wait_until

WAIT = 10.0


class Sleeper(SupervisedActor):
    """Schedules "wake" on "arm"; "hold" holds its handler until ``release``; keeps what
    it was told."""

    def __init__(self, holding: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.holding, self.release = holding, release
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "arm":
            self.ctx.schedule(1.0, "wake")
        elif message == "hold":
            self.holding.set()
            assert self.release.wait(WAIT), "the test never released the handler"
        elif message == "got":
            return list(self.got)
        else:
            self.got.append(message)
        return None


def test_a_timer_message_refused_by_a_full_mailbox_is_told_again() -> None:
    clock = ManualClock()
    holding, release = threading.Event(), threading.Event()
    rt = Runtime(ask_timeout=WAIT, clock=clock)
    rt.start(SupervisorSpec(children=(
        ChildSpec("sleeper", factory=lambda: Sleeper(holding, release), mailbox_limit=2),
    )))
    try:
        rt.tell("sleeper", "arm")
        rt.tell("sleeper", "hold")
        assert holding.wait(WAIT)
        rt.tell("sleeper", "a")
        rt.tell("sleeper", "b")  # the mailbox is full now
        dead = rt.dead_letters
        clock.advance(1.0)  # "wake" is due and refused
        assert rt.dead_letters == dead  # not dropped: to be told again
        release.set()

        def got() -> list[Any] | None:
            try:
                return rt.ask("sleeper", "got")  # type: ignore[no-any-return]
            except MailboxFull:  # still taking in what was lined up
                return None

        wait_until(lambda: got() == ["a", "b"], timeout=WAIT, what="the mailbox drained")
        clock.advance(TIMER_RETRY)
        wait_until(lambda: got() == ["a", "b", "wake"], timeout=WAIT,
                   what="the timer's message")
    finally:
        release.set()
        rt.stop()


class EagerClock(ManualClock):
    """A clock whose timer thread fires a timer before ``call_later`` has returned (as a
    real clock thread may for a delay of 0): the callback runs on a thread of its own, and
    ``call_later`` returns once it is done or after a moment."""

    def call_later(self, delay: float, callback: Any) -> Any:
        handle = super().call_later(delay, lambda: None)
        fired = threading.Thread(target=callback, name="eager-clock")
        fired.start()
        fired.join(timeout=0.5)
        return handle


class Arms(SupervisedActor):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "arm":
            self.ctx.schedule(0.0, "wake")
        elif message == "got":
            return list(self.got)
        else:
            self.got.append(message)
        return None


def test_a_timer_that_fires_before_schedule_returns_is_delivered() -> None:
    """Found by the reliability bench: the clock's thread ran a 0 s timer before
    ``schedule`` had bound its handle, the callback failed (NameError) and the message
    (the market's next tick) was lost for good."""
    rt = Runtime(clock=EagerClock(), monitor_interval=0)
    try:
        rt.start(SupervisorSpec(children=(ChildSpec("arms", factory=Arms),)))
        rt.tell("arms", "arm")
        wait_until(lambda: rt.ask("arms", "got") == ["wake"] or None, timeout=WAIT,
                   what="the timer's message")
    finally:
        rt.stop()
