"""The fault plan on its own (supervisor.host.chaos): probabilities, seeds, determinism, and the
validation of the ``chaos:`` section, with errors naming the key. No runtime here."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

import pytest

from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity
from supervisor.host.chaos import ChaosModel, ChaosPlan, InjectedHang
from supervisor.host.config import ConfigError, parse_config
from tests.support.bot_helpers import shipped_config, wait_until


class Tick:
    """A message type for the plan to draw on."""


class SupervisionEvent:
    """Same name as the runtime's event: skipped by default."""


def _plan(actors: dict[str, Any], seed: int = 1, **extra: Any) -> ChaosPlan:
    return ChaosModel.model_validate({"enabled": True, "seed": seed, "actors": actors,
                                      **extra}).plan()


def _draws(plan: ChaosPlan, name: str, n: int, deadline: float | None = 1.0) -> list[str | None]:
    chaos = plan.injector(name, is_supervisor=False)
    assert chaos is not None
    return [chaos.decide(Tick, deadline) for _ in range(n)]


def test_probabilities_come_out_at_their_rates() -> None:
    plan = _plan({"*": {"raise": {"RuntimeError": 0.2, "ConnectionError": 0.1},
                        "hang": 0.05, "slow": 0.15}})
    draws = _draws(plan, "worker", 20_000)
    rates = {k: draws.count(k) / len(draws)
             for k in ("raise:RuntimeError", "raise:ConnectionError", "hang", "slow", None)}
    # 20,000 draws: the standard error of each rate is at most 0.0036; 0.02 is > 5 of them
    assert rates["raise:RuntimeError"] == pytest.approx(0.2, abs=0.02)
    assert rates["raise:ConnectionError"] == pytest.approx(0.1, abs=0.02)
    assert rates["hang"] == pytest.approx(0.05, abs=0.02)
    assert rates["slow"] == pytest.approx(0.15, abs=0.02)
    assert rates[None] == pytest.approx(0.5, abs=0.02)


def test_same_seed_same_faults_and_streams_are_per_actor() -> None:
    spec = {"*": {"raise": {"RuntimeError": 0.3}, "slow": 0.3}}
    a = _draws(_plan(spec, seed=42), "executor", 500)
    assert a == _draws(_plan(spec, seed=42), "executor", 500)
    assert a != _draws(_plan(spec, seed=43), "executor", 500)
    assert a != _draws(_plan(spec, seed=42), "market", 500)
    # another actor's draws do not move this actor's stream
    plan = _plan(spec, seed=42)
    market = plan.injector("market", is_supervisor=False)
    assert market is not None
    ours = []
    executor = plan.injector("executor", is_supervisor=False)
    assert executor is not None
    for _ in range(500):
        market.decide(Tick, None)
        ours.append(executor.decide(Tick, None))
    assert ours == a
    # the injector is one per name (kept across restarts): its stream goes on
    assert plan.injector("executor", is_supervisor=False) is executor


def test_skipped_messages_never_fault_and_do_not_draw() -> None:
    plan = _plan({"*": {"raise": {"RuntimeError": 1.0}}})
    chaos = plan.injector("w", is_supervisor=False)
    assert chaos is not None
    assert chaos.decide(SupervisionEvent, None) is None  # skipped by default
    only = _plan({"*": {"raise": {"RuntimeError": 1.0}, "only_messages": ["Other"]}})
    c2 = only.injector("w", is_supervisor=False)
    assert c2 is not None and c2.decide(Tick, None) is None
    # skipped messages leave the stream where it was
    spec = {"*": {"raise": {"RuntimeError": 0.5}}}
    p1, p2 = _plan(spec), _plan(spec)
    i1, i2 = p1.injector("w", is_supervisor=False), p2.injector("w", is_supervisor=False)
    assert i1 is not None and i2 is not None
    seq1 = [i1.decide(Tick, None) for _ in range(50)]
    seq2 = []
    for _ in range(50):
        i2.decide(SupervisionEvent, None)
        seq2.append(i2.decide(Tick, None))
    assert seq1 == seq2


def test_supervisors_and_quiet_actors_get_no_injector() -> None:
    plan = _plan({"*": {"raise": {"RuntimeError": 0.5}}, "quiet": {"raise": {}}})
    assert plan.injector("pipeline", is_supervisor=True) is None
    assert plan.injector("quiet", is_supervisor=False) is None  # nothing to inject: free
    assert plan.injector("other", is_supervisor=False) is not None


def test_an_actor_entry_overrides_only_the_keys_it_sets() -> None:
    plan = _plan({"*": {"raise": {"RuntimeError": 0.1}, "slow": 0.2, "slow_seconds": 0.5},
                  "executor": {"slow": 0.0}})
    chaos = plan.injector("executor", is_supervisor=False)
    assert chaos is not None
    assert chaos.faults.raises == {"RuntimeError": 0.1}
    assert (chaos.faults.slow, chaos.faults.slow_seconds) == (0.0, 0.5)


def test_hang_needs_a_deadline() -> None:
    plan = _plan({"*": {"hang": 1.0}})
    assert set(_draws(plan, "w", 20, deadline=None)) == {None}
    assert set(_draws(plan, "w2", 20, deadline=2.0)) == {"hang"}


def test_inject_raises_the_named_class_and_counts_it() -> None:
    plan = _plan({"*": {"raise": {"ccxt.base.errors.NetworkError": 1.0}}})
    chaos = plan.injector("exchange", is_supervisor=False)
    assert chaos is not None
    import ccxt

    with pytest.raises(ccxt.NetworkError, match="chaos: injected into exchange"):
        chaos.inject(Tick(), None)
    assert plan.counts() == {"exchange": {"raise:ccxt.base.errors.NetworkError": 1}}
    assert plan.summary() == {"enabled": True, "seed": 1, "faults_injected": 1,
                              "counts": plan.counts()}


def test_a_hang_ends_when_the_plan_is_released() -> None:
    plan = _plan({"*": {"hang": 1.0}}, hang_margin=3600)
    chaos = plan.injector("w", is_supervisor=False)
    assert chaos is not None
    raised: list[BaseException] = []

    def hang() -> None:
        try:
            chaos.inject(Tick(), 3600.0)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=hang, daemon=True)
    thread.start()
    # counted as soon as it starts hanging; then released (as Runtime.stop does)
    wait_until(lambda: plan.counts() or None, timeout=10, what="the hang to begin")
    plan.release()
    thread.join(timeout=10)
    assert not thread.is_alive(), "a released hang kept waiting"
    assert len(raised) == 1 and isinstance(raised[0], InjectedHang)
    assert plan.counts() == {"w": {"hang": 1}}


def test_state_write_faults(tmp_path: Path) -> None:
    plan = _plan({"*": {"io_error": 0.5, "io_errnos": ["ENOSPC", "EROFS"]}})
    chaos = plan.injector("positions", is_supervisor=False)
    assert chaos is not None
    seen: list[int] = []
    for _ in range(400):
        try:
            chaos.before_write(tmp_path / "ledger.db")
        except OSError as exc:
            assert exc.filename == str(tmp_path / "ledger.db")
            seen.append(exc.errno or 0)
    assert 150 < len(seen) < 250
    assert set(seen) == {errno.ENOSPC, errno.EROFS}
    counts = plan.counts()["positions"]
    assert counts["io:ENOSPC"] + counts["io:EROFS"] == len(seen)
    # deterministic too
    again = _plan({"*": {"io_error": 0.5, "io_errnos": ["ENOSPC", "EROFS"]}})
    c2 = again.injector("positions", is_supervisor=False)
    assert c2 is not None
    seen2 = []
    for _ in range(400):
        try:
            c2.before_write("ledger.db")
        except OSError as exc:
            seen2.append(exc.errno)
    assert seen2 == seen


# -- the chaos: section of config.yaml ----------------------------------------------------------
def _problems(chaos: dict[str, Any]) -> list[tuple[str, str]]:
    raw = shipped_config()
    raw["chaos"] = chaos
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "config.yaml")
    return info.value.problems


def test_off_by_default_and_on_with_force() -> None:
    config, _spec = parse_config(shipped_config(), "config.yaml")
    assert config.chaos.enabled is False and config.chaos_plan() is None
    plan = config.chaos_plan(force=True, seed=9)
    assert plan is not None and plan.seed == 9
    assert plan.injector("executor", is_supervisor=False) is not None  # defaults: "*"
    raw = shipped_config()
    raw["chaos"] = {"enabled": True, "seed": 5, "actors": {"executor": {"slow": 0.1}}}
    config, _spec = parse_config(raw, "config.yaml")
    plan = config.chaos_plan()
    assert plan is not None and plan.seed == 5
    assert plan.injector("market", is_supervisor=False) is None  # no "*": only the executor


@pytest.mark.parametrize(("chaos", "key", "reason"), [
    ({"actors": {"*": {"raise": {"NoSuchError": 0.1}}}}, "chaos.actors.*.raise",
     "'NoSuchError' is not an exception class"),
    ({"actors": {"*": {"raise": {"nosuchmodule.Err": 0.1}}}}, "chaos.actors.*.raise",
     "cannot import 'nosuchmodule'"),
    ({"actors": {"*": {"raise": {"UnicodeDecodeError": 0.1}}}}, "chaos.actors.*.raise",
     "cannot be raised with one message"),
    ({"actors": {"executor": {"raise": {"RuntimeError": 1.5}}}}, "chaos.actors.executor.raise",
     "between 0 and 1"),
    ({"actors": {"*": {"hang": 0.6, "slow": 0.6}}}, "chaos.actors.*",
     "add up to 1.2"),
    ({"actors": {"*": {"io_errnos": ["EPERM"]}}}, "chaos.actors.*.io_errnos",
     "not one of ENOSPC, EIO, EROFS"),
    ({"actors": {"nobody": {"slow": 0.1}}}, "chaos.actors.nobody", "no actor named 'nobody'"),
    ({"actors": {"pipeline": {"slow": 0.1}}}, "chaos.actors.pipeline",
     "a supervisor is never faulted"),
    ({"actors": {"paper_wallet": {"hang": 0.1}}}, "chaos.actors.paper_wallet.hang",
     "needs the child's handler_deadline"),
    ({"seed": -1}, "chaos.seed", "greater than or equal to 0"),
    ({"sede": 1}, "chaos.sede", "unknown key"),
])
def test_bad_chaos_sections_name_the_key(chaos: dict[str, Any], key: str, reason: str) -> None:
    problems = _problems(chaos)
    assert any(k == key and reason in r for k, r in problems), problems


def test_an_injected_hang_is_classified_by_the_handler_timeout_rule() -> None:
    hang = InjectedHang("w", "Tick (chaos: a hang)", 2.5, 2.0)
    assert ErrorHandler().classify(hang).matched == "supervisor.errors.HandlerTimeout"
    resumed = ErrorHandler({"supervisor.errors.HandlerTimeout":
                            Rule(Severity.WARNING, Directive.RESUME)})
    assert resumed.classify(hang).directive is Directive.RESUME
