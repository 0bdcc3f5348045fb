"""Fixtures the backtest tests share: the candle files and the shipped config, written once
a module (tests/support/backtest_data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backtest_data import config_in, write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:data:`~tests.support.backtest_data.STEPS` candles of each symbol, in a folder."""
    return write_data(tmp_path_factory.mktemp("candles") / "data")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped config, its state in a folder of its own."""
    return config_in(tmp_path_factory.mktemp("config"))
