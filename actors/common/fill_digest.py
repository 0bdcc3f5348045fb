"""A digest of a set of fill ids, which two sides compute on their own and compare.

The ledger and the venue each fold the ids of the fills they hold into one 64-bit number;
equal sets give equal digests whatever the order, and a fill added is folded in without
reading the others again (:func:`fold`). Counts alone cannot tell a fill missing from one
side when the other side has one too many (a phantom); the digests can. Pure.

>>> digest(["f1", "f2"]) == digest(["f2", "f1"]) == fold(digest(["f1"]), "f2")
True
>>> digest([]) == 0 and digest(["f1", "f2"]) != digest(["f1", "f3"])
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["digest", "fold"]


def fold(current: int, fill_id: str) -> int:
    """``current`` with ``fill_id`` added (or, applied again, taken out)."""
    h = hashlib.blake2b(fill_id.encode(), digest_size=8).digest()
    return current ^ int.from_bytes(h, "big")


def digest(fill_ids: Iterable[str]) -> int:
    """The digest of a set of distinct fill ids (0 for none)."""
    out = 0
    for fill_id in fill_ids:
        out = fold(out, fill_id)
    return out
