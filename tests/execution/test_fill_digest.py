"""The digest of a set of fill ids that the ledger and the venue compare in a venue sync
(actors/common/fill_digest.py): order does not matter, a fill folds in and out, and a
missing fill hidden behind a phantom one changes it where the counts do not."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.common import fill_digest
from actors.common.fill_digest import digest, fold

pytestmark = pytest.mark.unit

ids = st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=30)


def test_the_examples_in_the_docstring_hold() -> None:
    result = doctest.testmod(fill_digest)
    assert result.failed == 0 and result.attempted > 0


@given(ids, st.randoms())
def test_the_order_does_not_matter(fill_ids: list[str], rnd: object) -> None:
    shuffled = list(fill_ids)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert digest(shuffled) == digest(fill_ids)


@given(ids, st.text(min_size=1, max_size=12))
def test_a_fill_folds_in_and_out(fill_ids: list[str], extra: str) -> None:
    base = [f for f in fill_ids if f != extra]
    assert fold(digest(base), extra) == digest([*base, extra])
    assert fold(fold(digest(base), extra), extra) == digest(base)


def test_a_phantom_and_a_missing_fill_have_equal_counts_and_different_digests() -> None:
    ledger, venue = ["f0", "f9"], ["f5", "f9"]  # f0 the venue never made; f5 the ledger lacks
    assert len(ledger) == len(venue)
    assert digest(ledger) != digest(venue)
