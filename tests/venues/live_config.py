"""The live-exchange example of docs/live-exchange.md, put into the shipped config.yaml.

The doc shows the children to put in place of the shipped ones of the same name (the
``exchange``, and the pipeline's ``market``) and error rules to add; :func:`with_example`
does exactly that, so the tests run what a user following the doc would run.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "live-exchange.md"


def documented_example() -> dict[str, Any]:
    """The doc's first ``yaml`` block, parsed."""
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None, "docs/live-exchange.md has no yaml example"
    example = yaml.safe_load(block.group(1))
    assert isinstance(example, dict)
    return example


def shipped() -> dict[str, Any]:
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def with_example(example: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shipped config with ``example``'s (the doc's) error rules added and each of its
    children in place of the shipped child of that name (a supervisor's, by name inside)."""
    example = copy.deepcopy(documented_example() if example is None else example)
    raw = shipped()
    raw.setdefault("errors", {}).update(example.get("errors") or {})
    _replace(raw["tree"]["children"], example["tree"]["children"])
    return raw


def child(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    """The child at ``path`` (names from the root) of a config's tree, to edit in place."""
    node: dict[str, Any] = raw["tree"]
    for name in path:
        node = next(c for c in node["children"] if c["name"] == name)
    return node


def write(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _replace(children: list[dict[str, Any]], replacements: list[dict[str, Any]]) -> None:
    for new in replacements:
        at = next(i for i, c in enumerate(children) if c["name"] == new["name"])
        if "actor" not in new and "children" in new:  # a supervisor: replace inside it
            _replace(children[at]["children"], new["children"])
        else:
            children[at] = new
