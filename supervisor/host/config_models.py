"""The typed models of ``config.yaml``: every section and key, with its bounds.

Each model forbids unknown keys and is frozen; a bad value is reported by pydantic with
its key path. What needs imports (actor classes, their settings, the observer) is checked
when the specs are built (:mod:`supervisor.host.config_build`), not here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from supervisor.error_handler import Directive, ErrorHandler, Rule, Severity
from supervisor.host.chaos import ChaosModel, ChaosPlan

__all__ = [
    "CONTROL_COMMANDS",
    "MAX_NUMBER",
    "BackoffModel",
    "BotConfig",
    "ControlModel",
    "FallbackModel",
    "HealthModel",
    "IntensityModel",
    "MetricsModel",
    "NodeModel",
    "RuleModel",
    "RuntimeModel",
    "TreeModel",
]

MAX_NUMBER = 10**9  # the largest count or number of seconds the runtime's sections take


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
    linger: float = Field(2.0, ge=0, le=MAX_NUMBER)
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
    # run's options (config_build.observers): the live view, the end-of-run summary and the
    # report. None: no observer.
    observer: str | None = None
    # The directory the bot's state lives in: `botvisor run` holds an exclusive lock on it
    # (state_dir/botvisor.lock) for as long as it runs, so two bots never share one.
    state_dir: str = Field("state", min_length=1)


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
