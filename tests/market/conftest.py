"""The market tests' shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_venues import FakeBinanceStream


@pytest.fixture
def stream() -> Iterator[FakeBinanceStream]:
    """A fake Binance kline websocket on 127.0.0.1, closed after the test."""
    fake = FakeBinanceStream()
    yield fake
    fake.close()
