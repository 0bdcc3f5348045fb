"""Loading ``config.yaml``: typed models, one clear message per bad key, specs out.

Every key is validated; an error names the key's path (``tree.children[1].restart``) and
the reason. Children are named by import path (``package.module:Class``); an actor class
that declares a pydantic ``Settings`` model gets its ``settings`` validated at load time, so
``botvisor check-config`` finds a bad actor setting before anything starts.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from supervisor.actor import SupervisedActor
from supervisor.backoff import Backoff
from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity
from supervisor.host.chaos import ChaosModel, ChaosPlan
from supervisor.host.config_translators import GROUP as TRANSLATORS_GROUP
from supervisor.host.config_translators import apply_translators, entry_point_values
from supervisor.host.logs import printable
from supervisor.host.session import SessionService
from supervisor.spec import (
    ActorFactory,
    ChildSpec,
    Fallback,
    Intensity,
    RestartType,
    Strategy,
    SupervisorSpec,
)

__all__ = [
    "ACTOR_PACKAGES_GROUP",
    "MAX_DEPTH",
    "MAX_VALUES",
    "BotConfig",
    "ConfigError",
    "ControlModel",
    "Imports",
    "build_tree",
    "load_config",
    "trusted_packages",
]

# Installed distributions name the packages whose modules `check-config` may import (their
# top-level code is the bot's own) with an entry point in this group, e.g.
#   [project.entry-points."botvisor.actor_packages"]
#   actors = "actors"
# The packages of config translators count too, and the runtime's own package always does.
ACTOR_PACKAGES_GROUP = "botvisor.actor_packages"
MAX_DEPTH = 64  # nesting levels a config file may have (the shipped one uses 8)
MAX_VALUES = 100_000  # values a config may hold once its aliases are expanded
MAX_NUMBER = 10**9  # the largest count or number of seconds the runtime's sections take


class ConfigError(Exception):
    """A configuration problem; ``problems`` lists ``(key path, reason)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {printable(key)}: {printable(reason, 500)}"
                          for key, reason in problems)
        super().__init__(f"invalid configuration in {printable(source, 500)}:\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class IntensityModel(_Model):
    """``intensity``: at most ``max_restarts`` restarts in ``within_seconds``."""

    max_restarts: int = Field(5, ge=0, le=MAX_NUMBER)
    within_seconds: float = Field(60.0, gt=0, le=MAX_NUMBER)


class BackoffModel(_Model):
    """``backoff``: delays between restarts of a failing child."""

    initial: float = Field(0.1, ge=0, le=MAX_NUMBER)
    maximum: float = Field(30.0, ge=0, le=MAX_NUMBER)
    multiplier: float = Field(2.0, ge=1, le=MAX_NUMBER)
    jitter: float = Field(0.1, ge=0, le=MAX_NUMBER)
    reset_after: float = Field(60.0, ge=0, le=MAX_NUMBER)


class RuleModel(_Model):
    """One ``errors:`` rule: how to treat an exception class."""

    severity: Literal["info", "warning", "error", "critical"]
    directive: Literal["resume", "restart", "stop", "escalate", "fallback"]
    retryable: bool = False


class FallbackModel(_Model):
    """``fallback``: the actor run in a failing child's place."""

    actor: str
    settings: dict[str, Any] = Field(default_factory=dict)
    after: int = Field(3, ge=1, le=MAX_NUMBER)
    retry_primary_after: float | None = Field(60.0, gt=0, le=MAX_NUMBER)
    description: str = ""


class NodeModel(_Model):
    """A child: a worker (``actor``) or a supervisor (``children``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    actor: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    shutdown: float = Field(5.0, ge=0, le=MAX_NUMBER)
    start_timeout: float = Field(10.0, gt=0, le=MAX_NUMBER)
    handler_deadline: float | None = Field(None, gt=0, le=MAX_NUMBER)
    mailbox_limit: int | None = Field(100_000, ge=1, le=MAX_NUMBER)
    fallback: FallbackModel | None = None
    drain_on_stop: bool = False
    thread: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    urgent: bool = False
    # supervisor fields
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] | None = None
    intensity: IntensityModel | None = None
    backoff: BackoffModel | None = None
    children: list[NodeModel] | None = None


class TreeModel(_Model):
    """``tree``: the root supervisor and its children."""

    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    intensity: IntensityModel = IntensityModel()
    backoff: BackoffModel = BackoffModel()
    shutdown: float = Field(5.0, ge=0, le=MAX_NUMBER)
    children: list[NodeModel] = Field(default_factory=list)


class RuntimeModel(_Model):
    """``runtime``: process-wide settings."""

    name: str = "root"
    ask_timeout: float = Field(5.0, gt=0, le=MAX_NUMBER)
    monitor_interval: float = Field(0.5, gt=0, le=MAX_NUMBER)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    event_history: int = Field(1000, ge=10, le=MAX_NUMBER)
    # Once the tree is up, move every object alive into the collector's permanent
    # generation (see supervisor.host.gc_freeze): full collections then stop pausing every
    # thread for tens of milliseconds.
    gc_freeze: bool = True
    # A SessionService run along with `botvisor run` ("package.module:Class"), built with the
    # run's options (``report``: the --report path or None): the live view, the end-of-run
    # summary and the report. None: no observer.
    observer: str | None = None
    # The directory the bot's state lives in: `botvisor run` holds an exclusive lock on it
    # (state_dir/botvisor.lock) for as long as it runs, so two bots never share one.
    state_dir: str = Field("state", min_length=1)

    @field_validator("observer")
    @classmethod
    def _observer_importable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            imports = (info.context or {}).get("imports", RUN_IMPORTS)
            if imports.may_import(value):
                _service_class(value)
            else:
                _locate_class(value)
        return value

    def observers(self, **options: Any) -> list[SessionService]:
        """The observer service (none when ``observer`` is unset), built with ``options``."""
        if self.observer is None:
            given = sorted(k for k, v in options.items() if v is not None)
            if given:
                logging.getLogger("botvisor").warning(
                    "runtime.observer is not set: ignoring the %s option", ", ".join(given))
            return []
        return [_service_class(self.observer)(**options)]


class HealthModel(_Model):
    """``health``: when the tree counts as unhealthy (the systemd watchdog stops then)."""

    # Seconds a permanent child may be down; more restarts of one child than max_restarts
    # in restart_window is a crash loop.
    down_grace: float = Field(30.0, ge=0, le=MAX_NUMBER)
    max_restarts: int = Field(5, ge=0, le=MAX_NUMBER)
    restart_window: float = Field(300.0, gt=0, le=MAX_NUMBER)


class MetricsModel(_Model):
    """``metrics``: an optional Prometheus endpoint, on a loopback address only."""

    enabled: bool = False
    host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)


# The control socket's own commands; an operator command group (``control.targets``) may not
# take one of these names.
CONTROL_COMMANDS = ("ping", "status", "tree", "stop", "start", "restart", "reload")


class ControlModel(_Model):
    """``control``: the operator's control socket (``botvisor status``, ``stop NAME``...).

    The socket is ``$RUNTIME_DIRECTORY/botvisor.sock`` under systemd, else
    ``run/botvisor.sock`` beside the config file; mode 0600, owner's uid only.
    """

    enabled: bool = True  # serve the control socket during `botvisor run`
    # Operator command group -> the actor that answers it with an OperatorCommand:
    # `botvisor NAME ...` asks the actor named by targets.NAME. Not set: each installed
    # operator command plug-in's own target (supervisor/host/operator_plugins.py).
    targets: dict[str, str] = Field(default_factory=dict)
    # What `botvisor status` shows from the actors' published snapshots, as "actor.field";
    # a missing actor or field is left out. Not set: the fields the plug-ins name.
    status_fields: tuple[str, ...] = ()
    # Connections served at once; a new one beyond evicts the one idle longest.
    max_clients: int = Field(64, ge=1, le=1024)
    # Seconds a connection may wait between requests, and a new one has to send its first
    # whole request line.
    idle_timeout: float = Field(60.0, gt=0, le=86400)
    request_timeout: float = Field(5.0, gt=0, le=3600)
    # Seconds for an actor to answer, or a reload.
    command_timeout: float = Field(30.0, gt=0, le=86400)

    @field_validator("targets")
    @classmethod
    def _targets_are_names(cls, value: dict[str, str]) -> dict[str, str]:
        for group, actor in value.items():
            if group in CONTROL_COMMANDS:
                raise ValueError(f"{group!r} is a built-in control command")
            if not group.replace("_", "").replace("-", "").isalnum() or not actor:
                raise ValueError(f"{group!r}: {actor!r} is not a command name and an actor")
        return value

    @field_validator("status_fields")
    @classmethod
    def _fields_are_dotted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            actor, _, field = item.partition(".")
            if not actor or not field:
                raise ValueError(f"{item!r} must be 'actor.field'")
        return value


class BotConfig(_Model):
    """The whole configuration file."""

    runtime: RuntimeModel = RuntimeModel()
    metrics: MetricsModel = MetricsModel()
    health: HealthModel = HealthModel()
    control: ControlModel = ControlModel()
    errors: dict[str, RuleModel] = Field(default_factory=dict)
    tree: TreeModel = TreeModel()
    chaos: ChaosModel = ChaosModel()  # fault injection, off unless enabled (or --chaos)

    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """What config translators changed (old keys moved to their new homes)."""
        return list(self._notes)

    def chaos_plan(self, *, force: bool = False, seed: int | None = None) -> ChaosPlan | None:
        """The fault plan for the runtime: None unless ``chaos.enabled`` or ``force``
        (``--chaos``); ``seed`` (``--chaos-seed``) overrides the section's."""
        if not (self.chaos.enabled or force):
            return None
        return self.chaos.plan(seed=seed)

    def error_handler(self) -> ErrorHandler:
        return ErrorHandler(
            {
                name: Rule(Severity.parse(r.severity), Directive(r.directive), r.retryable)
                for name, r in self.errors.items()
            }
        )


@dataclass(frozen=True, slots=True)
class Imports:
    """Which modules a config's import paths may be imported from while it is loaded.

    ``execute`` (``botvisor run``): every one. Otherwise (``check-config``) only modules of
    the ``trusted`` top-level packages, or already imported; any other module is found and
    read without running it (:func:`_locate_class`), and its actor's settings are checked
    when it runs.
    """

    execute: bool = True
    trusted: frozenset[str] = frozenset()

    def may_import(self, path: str) -> bool:
        module_name = path.partition(":")[0]
        return (self.execute or module_name in sys.modules
                or module_name.split(".")[0] in self.trusted)


RUN_IMPORTS = Imports()


def trusted_packages() -> frozenset[str]:
    """The top-level packages whose code ``check-config`` may run: the runtime's own, and
    those installed distributions declare (``botvisor.actor_packages`` entry points, and
    the packages of ``botvisor.config_translators``)."""
    names = {"supervisor"}
    for group in (ACTOR_PACKAGES_GROUP, TRANSLATORS_GROUP):
        for value in entry_point_values(group):
            names.add(value.partition(":")[0].split(".")[0].strip())
    return frozenset(n for n in names if n)


def _split_path(path: str) -> tuple[str, str]:
    module_name, _, attr = path.partition(":")
    if (not module_name or not attr or not attr.isidentifier()
            or not all(part.isidentifier() for part in module_name.split("."))):
        raise ValueError("must be an import path like 'package.module:Class'")
    return module_name, attr


def _import_class(path: str, base: type) -> Any:
    """The subclass of ``base`` at import path ``package.module:Class``; ValueError names
    what is wrong with the path."""
    module_name, attr = _split_path(path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # the module's own code failed
        raise ValueError(f"importing {module_name!r} failed: {type(exc).__name__}: "
                         f"{exc}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{path!r} is not a {base.__name__} class")
    return cls


def _find_module(module_name: str) -> ModuleSpec | None:
    """Where ``module_name`` would be imported from, found without running any package's
    code (each level searched in its parent's directories)."""
    parts = module_name.split(".")
    spec = PathFinder.find_spec(parts[0], sys.path)
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = PathFinder.find_spec(".".join(parts[: i + 1]),
                                    list(spec.submodule_search_locations))
    return spec


def _locate_class(path: str) -> None:
    """Check that the module of ``path`` exists and defines its name at top level, reading
    its source with ``ast`` (nothing of it runs); ValueError says what is wrong."""
    module_name, attr = _split_path(path)
    spec = _find_module(module_name)
    if spec is None:
        raise ValueError(f"cannot find module {module_name!r}")
    origin = spec.origin
    if origin is None or not origin.endswith(".py"):
        return  # compiled or namespace: only importing it can tell; `run` does
    try:
        source = Path(origin).read_bytes()
        tree = ast.parse(source, filename=origin)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"cannot read module {module_name!r} ({origin}): "
                         f"{type(exc).__name__}: {exc}") from None
    if attr not in _top_level_names(tree.body):
        raise ValueError(f"module {module_name!r} ({origin}) defines no {attr!r}")


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, ast.If | ast.Try | ast.With):
            names |= _top_level_names(stmt.body)
            for extra in ("orelse", "finalbody"):
                names |= _top_level_names(getattr(stmt, extra, []))
            for handler in getattr(stmt, "handlers", []):
                names |= _top_level_names(handler.body)
    return names


def _service_class(path: str) -> Any:
    """The SessionService subclass at import path ``path`` (ValueError naming the problem)."""
    return _import_class(path, SessionService)


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


def _count_values(raw: Any) -> int:
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


# -- loading ---------------------------------------------------------------------------------
def load_config(path: str | Path, *, imports: Imports = RUN_IMPORTS
                ) -> tuple[BotConfig, SupervisorSpec]:
    """Read, validate and build; raises ConfigError naming every bad key.

    ``imports`` says which actor modules may be imported (all, for a run; see
    :class:`Imports` for ``check-config``).
    """
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
    if raw is None:
        raise ConfigError(source, [("(file)", "is empty: a config needs at least "
                                              "tree.children")])
    config, spec = parse_config(raw, source, imports=imports)
    if not config.tree.children:  # a file, unlike a test's mapping, is meant to run a bot
        raise ConfigError(source, [("tree.children", "the tree has no actors")])
    return config, spec


def parse_config(raw: Any, source: str = "<config>", *, imports: Imports = RUN_IMPORTS
                 ) -> tuple[BotConfig, SupervisorSpec]:
    if not isinstance(raw, dict):
        raise ConfigError(source, [("(top level)", "must be a mapping of keys to values")])
    if _count_values(raw) > MAX_VALUES:
        raise ConfigError(source, [("(file)", f"holds more than {MAX_VALUES} values once its "
                                              "aliases are expanded (or an alias refers to "
                                              "itself)")])
    # Keys starting with "x-" hold YAML anchors shared by several sections (as in compose files).
    raw = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.startswith("x-"))}
    translated = apply_translators(raw)  # older formats, via installed plug-ins
    if translated.problems:
        raise ConfigError(source, translated.problems)
    raw = translated.raw
    try:
        config = BotConfig.model_validate(raw, context={"imports": imports})
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None
    except RecursionError:
        raise ConfigError(source, [("(file)", "nested too deeply")]) from None
    config._notes.extend(translated.notes)
    problems: list[tuple[str, str]] = []
    spec = build_tree(config, problems, imports=imports, notes=config._notes)
    if not problems:
        problems.extend(config.chaos.problems([config.runtime.name, *spec.all_ids()],
                                              _deadlines(spec)))
    if problems:
        raise ConfigError(source, problems)
    return config, spec


def _deadlines(spec: SupervisorSpec) -> dict[str, float | None]:
    """Every worker's handler deadline, by name (for the chaos section's checks)."""
    out: dict[str, float | None] = {}
    for child in spec.children:
        if child.supervisor is not None:
            out.update(_deadlines(child.supervisor))
        else:
            out[child.id] = child.handler_deadline
    return out


def _problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        key = (prefix + _loc(err["loc"])).rstrip(".")
        msg = printable(err["msg"], 300)
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append((key or "(top level)", msg))
    return out


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{printable(part, 80)}" if text else printable(part, 80)
    return text


# -- building specs --------------------------------------------------------------------------
def build_tree(config: BotConfig, problems: list[tuple[str, str]], *,
               imports: Imports = RUN_IMPORTS, notes: list[str] | None = None
               ) -> SupervisorSpec:
    """The root's SupervisorSpec; every problem found is appended to ``problems`` (and
    what could not be checked without importing, to ``notes``)."""
    tree = config.tree
    handler = config.error_handler()
    seen: dict[str, str] = {config.runtime.name: "runtime.name"}
    _check_names(tree.children, "tree.children", seen, problems)
    build = _Build(handler, problems, imports, notes if notes is not None else [])
    children = tuple(
        c for i, node in enumerate(tree.children)
        if (c := _child(node, f"tree.children[{i}]", build)) is not None
    )
    spec = SupervisorSpec(
        strategy=Strategy(tree.strategy),
        intensity=Intensity(tree.intensity.max_restarts, tree.intensity.within_seconds),
        backoff=Backoff(**tree.backoff.model_dump()),
        children=children if not problems else (),
        error_handler=handler,
    )
    return spec


@dataclass(frozen=True, slots=True)
class _Build:
    """What building one tree's specs shares: the error handler, where problems and notes
    go, and which modules may be imported."""

    handler: ErrorHandler
    problems: list[tuple[str, str]]
    imports: Imports
    notes: list[str]


def _check_names(
    nodes: list[NodeModel], where: str, seen: dict[str, str], problems: list[tuple[str, str]]
) -> None:
    for i, node in enumerate(nodes):
        key = f"{where}[{i}].name"
        if node.name in seen:
            problems.append((key, f"{node.name!r} is already used at {seen[node.name]}"))
        else:
            seen[node.name] = key
        if node.children:
            _check_names(node.children, f"{where}[{i}].children", seen, problems)


def _child(node: NodeModel, where: str, build: _Build) -> ChildSpec | None:
    problems = build.problems
    is_sup = node.children is not None
    if is_sup == (node.actor is not None):
        problems.append((where, "needs exactly one of 'actor' (a worker) or 'children' "
                                "(a supervisor)"))
        return None
    if not is_sup:
        for key in ("strategy", "intensity", "backoff"):
            if getattr(node, key) is not None:
                problems.append((f"{where}.{key}", "only a supervisor (with 'children') "
                                                   "takes this key"))
        factory = _factory(node.actor or "", node.settings, f"{where}", build)
        fallback = None
        if node.fallback is not None:
            fb = node.fallback
            fb_factory = _factory(fb.actor, fb.settings, f"{where}.fallback", build)
            if fb_factory is not None:
                fallback = Fallback(fb_factory, fb.after, fb.retry_primary_after,
                                    fb.description or fb.actor)
        if node.urgent and node.thread is None:
            problems.append((f"{where}.urgent", "urgent needs a shared thread (thread: NAME)"))
            return None
        if factory is None:
            return None
        return _spec(where, problems, lambda: ChildSpec(
            id=node.name,
            factory=factory,
            restart=RestartType(node.restart),
            shutdown=node.shutdown,
            start_timeout=node.start_timeout,
            handler_deadline=node.handler_deadline,
            mailbox_limit=node.mailbox_limit,
            fallback=fallback,
            drain_on_stop=node.drain_on_stop,
            thread=node.thread,
            urgent=node.urgent,
            settings=dict(node.settings),
        ))
    if node.fallback is not None:
        problems.append((f"{where}.fallback", "a supervisor cannot have a fallback"))
    if node.thread is not None:
        problems.append((f"{where}.thread", "a supervisor runs on its own thread"))
    if node.urgent:
        problems.append((f"{where}.urgent", "a supervisor runs on its own thread"))
    kids = tuple(
        c for i, sub in enumerate(node.children or [])
        if (c := _child(sub, f"{where}.children[{i}]", build)) is not None
    )
    if problems:
        return None  # a supervisor's spec checks its children again: nothing more to say
    intensity = node.intensity or IntensityModel()
    backoff = node.backoff or BackoffModel()
    return _spec(where, problems, lambda: ChildSpec(
        id=node.name,
        supervisor=SupervisorSpec(
            strategy=Strategy(node.strategy or "one_for_one"),
            intensity=Intensity(intensity.max_restarts, intensity.within_seconds),
            backoff=Backoff(**backoff.model_dump()),
            children=kids,
            error_handler=build.handler,
        ),
        restart=RestartType(node.restart),
        shutdown=node.shutdown,
        start_timeout=node.start_timeout,
    ))


def _spec(where: str, problems: list[tuple[str, str]],
          make: Callable[[], ChildSpec]) -> ChildSpec | None:
    """``make()``, with a spec's own refusal (ValueError) as a problem at ``where``."""
    try:
        return make()
    except ValueError as exc:
        problems.append((where, str(exc)))
        return None


def _factory(path: str, settings: dict[str, Any], where: str, build: _Build
             ) -> ActorFactory | None:
    problems = build.problems
    if not build.imports.may_import(path):
        try:
            _locate_class(path)
        except ValueError as exc:
            problems.append((f"{where}.actor", str(exc)))
            return None
        build.notes.append(f"{where}.actor: {printable(path)} is outside the trusted "
                           "packages, so it was not imported; its settings are checked "
                           "when it runs")
        return _not_imported(path)
    try:
        cls: type[SupervisedActor] = _import_class(path, SupervisedActor)
    except ValueError as exc:
        problems.append((f"{where}.actor", str(exc)))
        return None
    settings_model = getattr(cls, "Settings", None)
    if isinstance(settings_model, type) and issubclass(settings_model, BaseModel):
        try:
            validated = settings_model.model_validate(settings)
        except ValidationError as exc:
            problems.extend(_problems(exc, prefix=f"{where}.settings."))
            return None
        except RecursionError:
            problems.append((f"{where}.settings", "nested too deeply"))
            return None
        except Exception as exc:  # a Settings validator's own bug
            problems.append((f"{where}.settings", f"could not be checked: "
                                                  f"{type(exc).__name__}: {exc}"))
            return None
        return lambda: cls(validated)
    if settings:
        problems.append((f"{where}.settings", f"{path} takes no settings"))
        return None
    return cls


def _not_imported(path: str) -> ActorFactory:
    def factory() -> SupervisedActor:
        raise RuntimeError(f"{path} was only located by check-config, not imported")
    return factory
