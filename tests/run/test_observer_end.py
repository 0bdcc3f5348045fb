"""The end of a run gives an actor between two instances a second to answer for its last
figures: a position actor that cannot start (its disk went read-only, say) is restarting,
and a question to it would wait for the whole ask timeout, holding the stop back with it
(a SIGTERM under a read-only state directory took 11-14 s to end the process)."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from actors.run.observer import TradingObserver
from supervisor import ChildSpec, ChildState, Runtime, SupervisedActor, SupervisorSpec
from supervisor.backoff import Backoff
from supervisor.host.config import load_config
from supervisor.host.session import RunSession
from tests.support.bot_helpers import shipped_config, wait_until, write_config


class _CannotStart(SupervisedActor):
    """Fails every start, as the position actor on a read-only ledger."""

    def on_start(self) -> None:
        raise OSError(30, "Read-only file system")


class _Idle(SupervisedActor):
    """Runs, and answers every question with None."""

    def on_receive(self, message: Any) -> Any:
        return None


def test_the_end_of_a_run_does_not_wait_on_an_actor_that_is_restarting(tmp_path: Path) -> None:
    path = write_config(shipped_config(), tmp_path / "config.yaml")
    config, _ = load_config(path)
    spec = SupervisorSpec(backoff=Backoff(initial=60.0, maximum=60.0, jitter=0.0), children=(
        ChildSpec("breaker", factory=_Idle),
        ChildSpec("positions", factory=_CannotStart),
    ))
    runtime = Runtime(ask_timeout=30.0)  # a question to a restarting actor waits this long
    out = io.StringIO()
    observer = TradingObserver(out=out)
    session = RunSession(config, spec, runtime, config_path=path)
    session.services.append(observer)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(session.run()), daemon=True)
    runner.start()
    try:
        wait_until(lambda: ((cell := runtime.cell_or_none("positions")) is not None
                   and cell.state is ChildState.RESTARTING) or None, timeout=20,
                   what="the position actor failing to start")
        session.request_stop("the test is done")
        runner.join(20.0)  # a question to it waited for the ask timeout, 30 s
        assert not runner.is_alive(), "the stop waited on the restarting position actor"
    finally:
        runtime.stop()
    assert observer.record is not None
    notes = observer.record.summary.notes
    assert "at the end positions did not answer GetPortfolio: it was restarting" in notes, notes
