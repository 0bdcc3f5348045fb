"""Loading ``config.yaml``: typed models, one clear message per bad key, specs out.

Every key is validated; an error names the key's path (``tree.children[1].restart``) and
the reason. Children are named by import path (``package.module:Class``); an actor class
that declares a pydantic ``Settings`` model gets its ``settings`` validated at load time, so
``botvisor check-config`` finds a bad actor setting before anything starts.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from supervisor.actor import SupervisedActor
from supervisor.backoff import Backoff
from supervisor.chaos import ChaosModel, ChaosPlan
from supervisor.config_translators import apply_translators
from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity
from supervisor.session import SessionService
from supervisor.spec import (
    ActorFactory,
    ChildSpec,
    Fallback,
    Intensity,
    RestartType,
    Strategy,
    SupervisorSpec,
)

__all__ = ["BotConfig", "ConfigError", "ControlModel", "build_tree", "load_config"]


class ConfigError(Exception):
    """A configuration problem; ``problems`` lists ``(key path, reason)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {key}: {reason}" for key, reason in problems)
        super().__init__(f"invalid configuration in {source}:\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntensityModel(_Model):
    """``intensity``: at most ``max_restarts`` restarts in ``within_seconds``."""

    max_restarts: int = Field(5, ge=0)
    within_seconds: float = Field(60.0, gt=0)


class BackoffModel(_Model):
    """``backoff``: delays between restarts of a failing child."""

    initial: float = Field(0.1, ge=0)
    maximum: float = Field(30.0, ge=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.1, ge=0)
    reset_after: float = Field(60.0, ge=0)


class RuleModel(_Model):
    """One ``errors:`` rule: how to treat an exception class."""

    severity: Literal["info", "warning", "error", "critical"]
    directive: Literal["resume", "restart", "stop", "escalate", "fallback"]
    retryable: bool = False


class FallbackModel(_Model):
    """``fallback``: the actor run in a failing child's place."""

    actor: str
    settings: dict[str, Any] = Field(default_factory=dict)
    after: int = Field(3, ge=1)
    retry_primary_after: float | None = Field(60.0, gt=0)
    description: str = ""


class NodeModel(_Model):
    """A child: a worker (``actor``) or a supervisor (``children``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    actor: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    shutdown: float = Field(5.0, ge=0)
    start_timeout: float = Field(10.0, gt=0)
    handler_deadline: float | None = Field(None, gt=0)
    mailbox_limit: int | None = Field(100_000, ge=1)
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
    shutdown: float = Field(5.0, ge=0)
    children: list[NodeModel] = Field(default_factory=list)


class RuntimeModel(_Model):
    """``runtime``: process-wide settings."""

    name: str = "root"
    ask_timeout: float = Field(5.0, gt=0)
    monitor_interval: float = Field(0.5, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    event_history: int = Field(1000, ge=10)
    # Once the tree is up, move every object alive into the collector's permanent
    # generation (see supervisor.gc_freeze): full collections then stop pausing every
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
    def _observer_importable(cls, value: str | None) -> str | None:
        if value is not None:
            _service_class(value)
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

    down_grace: float = Field(30.0, ge=0)  # seconds a permanent child may be down
    max_restarts: int = Field(5, ge=0)  # more restarts of one child than this in the
    restart_window: float = Field(300.0, gt=0)  # window is a crash loop


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
    # `botvisor breaker open` asks the actor named by targets.breaker.
    targets: dict[str, str] = Field(default_factory=lambda: {
        "breaker": "breaker", "positions": "positions", "alerts": "alerts"})
    # What `botvisor status` shows from the actors' published snapshots, as "actor.field";
    # a missing actor or field is left out.
    status_fields: tuple[str, ...] = (
        "breaker.state", "breaker.reason", "positions.equity", "positions.cash",
        "positions.realized_pnl", "positions.unrealized_pnl", "positions.open_positions",
    )
    max_clients: int = Field(64, ge=1, le=1024)  # connections served at once; more are refused
    idle_timeout: float = Field(60.0, gt=0)  # seconds a connection may wait between requests
    command_timeout: float = Field(30.0, gt=0)  # seconds for an actor to answer, or a reload

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


def _import_class(path: str, base: type) -> Any:
    """The subclass of ``base`` at import path ``package.module:Class``; ValueError names
    what is wrong with the path."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError("must be an import path like 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{path!r} is not a {base.__name__} class")
    return cls


def _service_class(path: str) -> Any:
    """The SessionService subclass at import path ``path`` (ValueError naming the problem)."""
    return _import_class(path, SessionService)


# -- loading ---------------------------------------------------------------------------------
def load_config(path: str | Path) -> tuple[BotConfig, SupervisorSpec]:
    """Read, validate and build; raises ConfigError naming every bad key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [("(file)", exc.strerror or str(exc))]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [(where, f"not valid YAML: {reason}")]) from None
    return parse_config(raw if raw is not None else {}, source)


def parse_config(raw: Any, source: str = "<config>") -> tuple[BotConfig, SupervisorSpec]:
    if not isinstance(raw, dict):
        raise ConfigError(source, [("(top level)", "must be a mapping of keys to values")])
    # Keys starting with "x-" hold YAML anchors shared by several sections (as in compose files).
    raw = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.startswith("x-"))}
    translated = apply_translators(raw)  # older formats, via installed plug-ins
    if translated.problems:
        raise ConfigError(source, translated.problems)
    raw = translated.raw
    try:
        config = BotConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None
    config._notes.extend(translated.notes)
    problems: list[tuple[str, str]] = []
    spec = build_tree(config, problems)
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
        key = prefix + _loc(err["loc"])
        msg = err["msg"]
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
            text += f".{part}" if text else str(part)
    return text


# -- building specs --------------------------------------------------------------------------
def build_tree(config: BotConfig, problems: list[tuple[str, str]]) -> SupervisorSpec:
    """The root's SupervisorSpec; every problem found is appended to ``problems``."""
    tree = config.tree
    handler = config.error_handler()
    children = tuple(
        c for i, node in enumerate(tree.children)
        if (c := _child(node, f"tree.children[{i}]", handler, problems)) is not None
    )
    seen: dict[str, str] = {config.runtime.name: "runtime.name"}
    _check_names(tree.children, "tree.children", seen, problems)
    spec = SupervisorSpec(
        strategy=Strategy(tree.strategy),
        intensity=Intensity(tree.intensity.max_restarts, tree.intensity.within_seconds),
        backoff=Backoff(**tree.backoff.model_dump()),
        children=children if not problems else (),
        error_handler=handler,
    )
    return spec


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


def _child(
    node: NodeModel, where: str, handler: ErrorHandler, problems: list[tuple[str, str]]
) -> ChildSpec | None:
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
        factory = _factory(node.actor or "", node.settings, f"{where}", problems)
        fallback = None
        if node.fallback is not None:
            fb = node.fallback
            fb_factory = _factory(fb.actor, fb.settings, f"{where}.fallback", problems)
            if fb_factory is not None:
                fallback = Fallback(fb_factory, fb.after, fb.retry_primary_after,
                                    fb.description or fb.actor)
        if node.urgent and node.thread is None:
            problems.append((f"{where}.urgent", "urgent needs a shared thread (thread: NAME)"))
            return None
        if factory is None:
            return None
        return ChildSpec(
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
        )
    if node.fallback is not None:
        problems.append((f"{where}.fallback", "a supervisor cannot have a fallback"))
    if node.thread is not None:
        problems.append((f"{where}.thread", "a supervisor runs on its own thread"))
    if node.urgent:
        problems.append((f"{where}.urgent", "a supervisor runs on its own thread"))
    kids = tuple(
        c for i, sub in enumerate(node.children or [])
        if (c := _child(sub, f"{where}.children[{i}]", handler, problems)) is not None
    )
    intensity = node.intensity or IntensityModel()
    backoff = node.backoff or BackoffModel()
    return ChildSpec(
        id=node.name,
        supervisor=SupervisorSpec(
            strategy=Strategy(node.strategy or "one_for_one"),
            intensity=Intensity(intensity.max_restarts, intensity.within_seconds),
            backoff=Backoff(**backoff.model_dump()),
            children=kids,
            error_handler=handler,
        ),
        restart=RestartType(node.restart),
        shutdown=node.shutdown,
        start_timeout=node.start_timeout,
    )


def _factory(
    path: str, settings: dict[str, Any], where: str, problems: list[tuple[str, str]]
) -> ActorFactory | None:
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
        return lambda: cls(validated)
    if settings:
        problems.append((f"{where}.settings", f"{path} takes no settings"))
        return None
    return cls
