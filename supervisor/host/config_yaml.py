"""Reading a config file's YAML safely: one document, checked before it is built.

PyYAML's safe loader takes silently or crashes on what a config file must not hold: a key
given twice in one mapping, nesting deeper than MAX_DEPTH, an integer too long to convert,
aliases that expand to more than MAX_VALUES values. :func:`read_document` refuses each with
a ConfigError naming the line or key path; it never runs code from the file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml

from supervisor.host.config_errors import ConfigError
from supervisor.host.logs import printable

__all__ = ["MAX_DEPTH", "MAX_VALUES", "count_values", "read_document"]

MAX_DEPTH = 64  # nesting levels a config file may have (the shipped one uses 8)
MAX_VALUES = 100_000  # values a config may hold once its aliases are expanded


def read_document(path: str | Path) -> Any:
    """The document in the file at ``path`` (None when it is empty); ConfigError names
    the line, column or key path of what cannot be read."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, [("(file)", exc.strerror or str(exc))]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(source, [(f"line {line}, column {column}",
                                    f"not UTF-8 text (byte 0x{data[exc.start]:02x})")]) from None
    try:
        raw = _read_yaml(text, source)
    except _TooDeep as exc:
        raise ConfigError(source, [(printable(exc.where), f"nested more than {MAX_DEPTH} "
                                   f"levels deep (line {exc.line})")]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(source, [(f"line {line}, column {column}",
                                    f"not valid YAML: the character #x{code:04x} is not "
                                    "allowed")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(exc, "problem", None) or str(exc).split("\n")[0]
        raise ConfigError(source, [(where, f"not valid YAML: {reason}")]) from None
    except RecursionError:
        raise ConfigError(source, [("(file)", "nested too deeply")]) from None
    return raw


def count_values(raw: Any) -> int:
    """How many values ``raw`` holds with its aliases expanded, counting to MAX_VALUES + 1
    at most (a mapping that contains itself counts without end)."""
    count = 0
    stack = [raw]
    while stack and count <= MAX_VALUES:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


class _TooDeep(Exception):
    """A YAML document nested deeper than MAX_DEPTH, at key path ``where``."""

    def __init__(self, where: str, line: int) -> None:
        super().__init__(where, line)
        self.where = where
        self.line = line


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what it would otherwise take silently or crash on:
    a key given twice in one mapping, nesting deeper than MAX_DEPTH, an integer too long
    for Python to convert."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []  # key path of the node being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        if isinstance(index, int):
            part = f"[{index}]"
        elif isinstance(index, yaml.ScalarNode):
            part = f".{index.value}"
        else:
            part = ""  # a key, or the document
        self._path.append(part)
        try:
            if len(self._path) > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooDeep("".join(self._path[:8]).lstrip(".") + "...", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _value in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or \
                        key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: the base class says so
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {printable(key)!r} (first at line "
                        f"{first})", key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.constructor.SafeConstructor, node: Any) -> int:
    """PyYAML's int, with text too long to convert a YAML error at the node."""
    try:
        value: int = loader.construct_yaml_int(node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"not a usable integer ({str(exc).split(':')[0]})",
            node.start_mark) from None
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)  # type: ignore[type-var]

if yaml.__with_libyaml__:
    class _CLoader(yaml.CSafeLoader):
        """libyaml's safe loader; the depth and duplicate keys are checked before it
        composes and constructs (:func:`_check_depth`, :func:`_node_problems`)."""

    _CLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)  # type: ignore[type-var]


_CONTAINER_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CONTAINER_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, *_CONTAINER_START)


def _check_depth(text: str, loader_class: Any = None) -> None:
    """Raise _TooDeep, naming the key path, when the YAML nests deeper than MAX_DEPTH.

    Reads only the parser's events (libyaml's when installed, fast and not recursive), so
    that the composer, which recurses, never sees a document that deep. libyaml refuses
    1,000 levels itself, before its events reach that deep: the pure-Python parser (not
    recursive either) then finds where.
    """
    if loader_class is None:
        if not yaml.__with_libyaml__:
            return  # the pure-Python _Loader checks the depth as it composes
        try:
            _check_depth(text, yaml.CSafeLoader)
        except yaml.YAMLError as exc:
            if "nesting depth" not in str(exc):
                raise
            cut = _flow_too_deep(text)
            if cut is not None:  # the pure-Python parser is quadratic in flow depth: only
                with contextlib.suppress(yaml.YAMLError):  # up to the level too many
                    _check_depth(text[: cut + 1], yaml.SafeLoader)
            raise
        return
    # per open container: [is a mapping, nodes seen in it, last key, path part]
    stack: list[list[Any]] = []
    for event in yaml.parse(text, Loader=loader_class):
        if isinstance(event, _NODE_EVENTS):
            part = ""
            if stack:
                top = stack[-1]
                if top[0]:  # a mapping: keys and values alternate
                    if top[1] % 2 == 0:
                        top[2] = getattr(event, "value", "?")
                    else:
                        part = f".{top[2]}"
                else:
                    part = f"[{top[1]}]"
                top[1] += 1
            if isinstance(event, _CONTAINER_START):
                stack.append([isinstance(event, yaml.MappingStartEvent), 0, None, part])
                if len(stack) > MAX_DEPTH:
                    where = "".join(str(entry[3]) for entry in stack[:8]).lstrip(".")
                    mark = event.start_mark
                    raise _TooDeep(where + "...", mark.line + 1 if mark else 0)
        elif isinstance(event, _CONTAINER_END):
            stack.pop()


def _read_yaml(text: str, source: str) -> Any:
    """The document in ``text`` (None when empty), checked for depth, duplicate keys and
    integers too long before it is constructed; YAML errors and _TooDeep propagate."""
    _check_depth(text)
    loader = _fast_loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problems = _node_problems(node)
        if problems:
            raise ConfigError(source, problems)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _flow_too_deep(text: str) -> int | None:
    """Where flow brackets (``[``, ``{``, outside quotes and comments) first open more than
    MAX_DEPTH levels, roughly as YAML reads them; None if nowhere."""
    depth = 0
    quote = ""
    i, end = 0, len(text)
    while i < end:
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'" and depth:
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            newline = text.find("\n", i)
            i = end if newline < 0 else newline
            continue
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i
        elif ch in "]}" and depth:
            depth -= 1
        i += 1
    return None


def _fast_loader(text: str) -> Any:
    """libyaml's safe loader (refusing integers too long to convert) when installed, else
    the pure-Python _Loader."""
    if yaml.__with_libyaml__:
        return _CLoader(text)
    return _Loader(text)


_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_DIGITS = 4300  # Python's limit for converting text to int (sys.int_info)


def _node_problems(root: yaml.Node) -> list[tuple[str, str]]:
    """Keys given twice in one mapping, and integers too long to convert, by key path;
    each node is looked at once (an alias is not followed again)."""
    problems: list[tuple[str, str]] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, where = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    key = str(key_node.value)
                    path = f"{where}.{key}" if where else key
                    line = key_node.start_mark.line + 1
                    if key in lines:
                        problems.append((printable(path), f"given twice (line {lines[key]} "
                                                          f"and line {line})"))
                    lines.setdefault(key, line)
                else:
                    path = where or "(top level)"
                stack.append((value_node, path))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node.value))
        elif node.tag == _INT_TAG:
            digits = sum(ch.isdigit() for ch in str(node.value))
            if digits > _INT_DIGITS:
                problems.append((printable(where or "(top level)"),
                                 f"an integer of {digits} digits is too long "
                                 f"(line {node.start_mark.line + 1})"))
    return sorted(problems)

