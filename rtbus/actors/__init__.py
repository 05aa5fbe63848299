"""Actors, mailboxes and supervisors: OTP supervision on trio.

This layer knows nothing of Realtime, WebSockets or the bus; the service wires supervision
events to them through ``SupervisorSpec.on_event``.
"""

from rtbus._backoff import Backoff as Backoff

from ._actor import ActorContext as ActorContext
from ._actor import ActorFn as ActorFn
from ._actor import ChildSpec as ChildSpec
from ._actor import RestartType as RestartType
from ._child import ChildInfo as ChildInfo
from ._child import ChildState as ChildState
from ._events import ActorExited as ActorExited
from ._events import ActorFailed as ActorFailed
from ._events import ActorGaveUp as ActorGaveUp
from ._events import ActorRestarted as ActorRestarted
from ._events import ActorStarted as ActorStarted
from ._events import EventObserver as EventObserver
from ._events import ExitReason as ExitReason
from ._events import SupervisionEvent as SupervisionEvent
from ._events import SupervisorGaveUp as SupervisorGaveUp
from ._exceptions import ChildStartFailed as ChildStartFailed
from ._exceptions import DuplicateChild as DuplicateChild
from ._exceptions import Fatal as Fatal
from ._exceptions import RestartIntensityExceeded as RestartIntensityExceeded
from ._exceptions import SupervisionError as SupervisionError
from ._exceptions import UnknownChild as UnknownChild
from ._mailbox import Mailbox as Mailbox
from ._mailbox import MailboxStatistics as MailboxStatistics
from ._restart import RestartIntensity as RestartIntensity
from ._strategy import Strategy as Strategy
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorSpec as SupervisorSpec
from ._supervisor import SupervisorStatistics as SupervisorStatistics
from ._supervisor import serve_supervisor as serve_supervisor

__all__ = [
    "ActorContext",
    "ActorExited",
    "ActorFailed",
    "ActorFn",
    "ActorGaveUp",
    "ActorRestarted",
    "ActorStarted",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "ChildStartFailed",
    "ChildState",
    "DuplicateChild",
    "EventObserver",
    "ExitReason",
    "Fatal",
    "Mailbox",
    "MailboxStatistics",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "RestartType",
    "Strategy",
    "SupervisionError",
    "SupervisionEvent",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorSpec",
    "SupervisorStatistics",
    "UnknownChild",
    "serve_supervisor",
]
