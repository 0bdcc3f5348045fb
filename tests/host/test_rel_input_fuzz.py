"""Issue 15, deliverable 5: fuzzing configs, the control protocol and market data.

The generators and runners live in :mod:`tests.support.fuzz_cases` (the reliability bench calls
them at a larger scale). Here they run 1,000 cases in all: 300 configs (three of them
through a real ``check-config`` subprocess), 250 control requests on a real socket, 450
market-data cases (three CSV replays in a real market actor). ``BOTVISOR_FUZZ_SCALE``
multiplies the counts (e.g. 10 for a long run).
"""

from __future__ import annotations

import os

from tests.support.fuzz_cases import fuzz_configs, fuzz_control, fuzz_market

SCALE = float(os.environ.get("BOTVISOR_FUZZ_SCALE", "1"))


def _n(base: int) -> int:
    return max(int(base * SCALE), 1)


def test_fuzzed_configs_are_a_tree_or_a_clear_error() -> None:
    cases, failures = fuzz_configs(_n(300), seed=15, subprocess_cases=3)
    assert cases == _n(300)
    assert failures == [], "\n".join(failures[:10])


def test_fuzzed_control_requests_each_get_a_reply_and_the_server_keeps_serving() -> None:
    cases, failures = fuzz_control(_n(250), seed=15)
    assert cases == _n(250)
    assert failures == [], "\n".join(failures[:10])


def test_hostile_market_data_is_refused_counted_and_never_reaches_a_strategy() -> None:
    cases, failures = fuzz_market(_n(450), seed=15, actor_runs=3)
    assert cases == _n(450)
    assert failures == [], "\n".join(failures[:10])
