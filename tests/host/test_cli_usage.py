"""A misspelt option of a subcommand is named with that subcommand's usage (exit 2), not
the top-level list of commands."""

from __future__ import annotations

import pytest

from supervisor.host.cli import main


def test_an_unknown_option_of_a_subcommand_shows_the_subcommands_usage(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["backtest", "--data", "candles", "--frm", "2026-01-01"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "usage: botvisor backtest" in err
    assert "botvisor backtest: error: unrecognized arguments: --frm 2026-01-01" in err
    assert "{run,check-config" not in err  # not the top-level usage


def test_an_unknown_option_before_any_subcommand_shows_the_top_level_usage(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--bogus"])
    assert done.value.code == 2
    assert "botvisor: error: unrecognized arguments: --bogus" in capsys.readouterr().err
