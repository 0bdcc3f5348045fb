"""botvisor's supervision runtime: supervised pykka actors, generic, with no trading imports."""

from supervisor.actor import SupervisedActor
from supervisor.backoff import Backoff, IntensityWindow
from supervisor.clock import Clock, ManualClock, SystemClock
from supervisor.context import ActorContext
from supervisor.error_handler import Decision, Directive, ErrorHandler, Rule, Severity
from supervisor.errors import (
    ActorCrashed,
    ActorNotRunning,
    AskTimeout,
    HandlerTimeout,
    MailboxFull,
    RateLimited,
    RestartIntensityExceeded,
    StartFailed,
    UnknownActor,
    WouldDeadlock,
)
from supervisor.events import EventBus, EventKind, EventRecorder, SupervisionEvent
from supervisor.lifecycle import ChildState
from supervisor.runtime import Runtime
from supervisor.spec import (
    ChildSpec,
    Fallback,
    Intensity,
    RestartType,
    Strategy,
    SupervisorSpec,
)
from supervisor.supervisor import ChildInfo, Supervisor
from supervisor.tree_view import TreeNode

__all__ = [
    "ActorContext",
    "ActorCrashed",
    "ActorNotRunning",
    "AskTimeout",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "ChildState",
    "Clock",
    "Decision",
    "Directive",
    "ErrorHandler",
    "EventBus",
    "EventKind",
    "EventRecorder",
    "Fallback",
    "HandlerTimeout",
    "Intensity",
    "IntensityWindow",
    "MailboxFull",
    "ManualClock",
    "RateLimited",
    "RestartIntensityExceeded",
    "RestartType",
    "Rule",
    "Runtime",
    "Severity",
    "StartFailed",
    "Strategy",
    "SupervisedActor",
    "SupervisionEvent",
    "Supervisor",
    "SupervisorSpec",
    "SystemClock",
    "TreeNode",
    "UnknownActor",
    "WouldDeadlock",
]
