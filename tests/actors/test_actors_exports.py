"""The public surface of rtbus.actors, and the layering rule that keeps it below the rest."""

from __future__ import annotations

import ast
from pathlib import Path

import rtbus.actors

PUBLIC = {
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
    "Fatal",
    "EventObserver",
    "ExitReason",
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
}

FORBIDDEN = ("rtbus.protocol", "rtbus.transport", "rtbus.bus", "rtbus.emitter", "prometheus")


def test_public_names_are_exactly_the_intended_ones() -> None:
    public = {name for name in dir(rtbus.actors) if not name.startswith("_")}
    assert public == PUBLIC


def test_event_types_are_in_the_actor_namespace() -> None:
    types = {
        getattr(rtbus.actors, name).type
        for name in PUBLIC
        if name.startswith(("Actor", "SupervisorGaveUp"))
        and hasattr(getattr(rtbus.actors, name), "type")
    }
    assert types == {
        "rtbus.actor.started",
        "rtbus.actor.exited",
        "rtbus.actor.failed",
        "rtbus.actor.restarted",
        "rtbus.actor.gave_up",
        "rtbus.actor.supervisor_gave_up",
    }


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            modules.add(f"rtbus.{node.module or ''}")
    return modules


def test_actors_know_nothing_of_realtime_transport_bus_or_metrics() -> None:
    package = Path(rtbus.actors.__file__).parent
    for path in package.glob("*.py"):
        for module in imported_modules(path):
            assert not module.startswith(FORBIDDEN), f"{path.name} imports {module}"
