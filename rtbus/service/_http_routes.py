"""The routing table of the HTTP surface: (method, path template) -> handler.

A template is a path whose ``{name}`` segments match any one non-empty segment and hand it to
the handler as ``params[name]``. ``Router.match`` says 404 when no template fits the path and
405 (with ``Allow``) when one fits but not with that method, so a client learns which mistake
it made. The template, never the concrete path, is what metrics and logs name: it is bounded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import attrs

from ._http_wire import HttpError, Request, Response

__all__ = ["Handler", "Route", "Router"]

Handler = Callable[[Request], Awaitable[Response]]


def _segments(template: str) -> tuple[str, ...]:
    return tuple(template.strip("/").split("/"))


@attrs.frozen
class Route:
    """One row of the table.

    ``control`` routes are the control API: they need the bearer token when one is configured
    and are refused (503) once the service drains. ``takes_body`` routes get the JSON body;
    ``raw_body`` routes get the body's bytes as sent (``Request.raw``), whatever its type.
    """

    method: str
    template: str
    handler: Handler
    control: bool = False
    takes_body: bool = False
    raw_body: bool = False
    segments: tuple[str, ...] = attrs.field(init=False)

    @segments.default
    def _split(self) -> tuple[str, ...]:
        return _segments(self.template)

    def params(self, segments: tuple[str, ...]) -> dict[str, str] | None:
        """The template's parameters if ``segments`` fit it, else None."""
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(self.segments, segments, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segment:
                    return None
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params


class Router:
    """Finds the route for a request."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = tuple(routes)

    def template(self, path: str) -> str | None:
        """The template ``path`` fits, whatever the method: what metrics call the route."""
        segments = _segments(path)
        return next((r.template for r in self._routes if r.params(segments) is not None), None)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route and its parameters; raises ``HttpError`` 404 or 405."""
        segments = _segments(path)
        fitting = [(r, p) for r in self._routes if (p := r.params(segments)) is not None]
        for route, params in fitting:
            if route.method == method:
                return route, params
        if not fitting:
            raise HttpError(404, "not_found", f"no route for {path}")
        allowed = ", ".join(sorted({route.method for route, _ in fitting}))
        raise HttpError(
            405,
            "method_not_allowed",
            f"{method} is not allowed on {fitting[0][0].template}; use {allowed}",
            headers={"allow": allowed},
        )
