"""Generate the Grafana dashboard, ``grafana/dashboards/rtbus.json``, from the tables below.

Run ``.venv/bin/python tools/gen_dashboard.py`` after changing a panel; it rewrites the JSON.
``tests/deploy/test_deploy_dashboard.py`` regenerates in memory and fails when the checked-in
file differs, and checks that every query names only metrics in the catalogue (what
``rtbus.metrics`` and the HTTP, calls, gateway and Redis parts export; ``CATALOGUE`` there).

Why plain dicts rather than grafana-foundation-sdk: the dashboard is a few dozen timeseries
panels with one template variable, and the dicts are the JSON Grafana imports, so what the
code says is what Grafana reads, with no builder vocabulary between them.

Invariants:

* Every panel queries the ``$datasource`` template variable, so the file imports into any
  Grafana as it is and the provisioned copy (``grafana/provisioning``) needs no edits.
* Rates use ``$__rate_interval`` (at least four scrape intervals, so a rate never has one
  sample); that is the only Grafana macro the queries use.
* Labels in legends are the catalogue's bounded ones (state, type, policy, reason, ...).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "grafana" / "dashboards" / "rtbus.json"
UID = "rtbus"
GRID_WIDTH = 24
PANEL_HEIGHT = 8
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"


@dataclass(frozen=True)
class Query:
    """One PromQL expression and the legend Grafana gives each of its series."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A timeseries (or stat) panel: ``width`` is in Grafana's 24-column grid."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    width: int = 8
    kind: str = "timeseries"
    stack: bool = False


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right and wrapped at the grid's width."""

    title: str
    panels: tuple[Panel, ...]


def rate(metric: str, by: str = "", selector: str = "") -> str:
    """``sum by (by) (rate(metric{selector}[$__rate_interval]))``."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{selector}{RATE}))"


def quantile(q: float, histogram: str, by: str = "") -> str:
    """The ``q`` quantile of a histogram over the rate interval, summed over instances."""
    labels = ", ".join(["le", *filter(None, [by])])
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{RATE})))"


def percentiles(histogram: str, by: str = "", legend: str = "") -> tuple[Query, ...]:
    """The p50 and p99 of a histogram, one series each."""
    prefix = f"{legend} " if legend else ""
    return (
        Query(quantile(0.5, histogram, by), f"{prefix}p50"),
        Query(quantile(0.99, histogram, by), f"{prefix}p99"),
    )


OVERVIEW = Row(
    "Overview",
    (
        Panel(
            "Sessions by state",
            "Live sessions by state, read at scrape time. Reconnecting ones are restarting "
            "with backoff; failed ones hit a fatal error and are not retried.",
            (Query("sum by (state) (rtbus_sessions)", "{{state}}"),),
            stack=True,
        ),
        Panel(
            "Server events",
            "Server events per second by type (rtbus.session.* are rtbus's lifecycle events).",
            (Query(rate("rtbus_server_events_total", "type"), "{{type}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Client events",
            "Client events sent upstream per second by type.",
            (Query(rate("rtbus_client_events_total", "type"), "{{type}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Server errors",
            "Server `error` events per second by type and code. Most leave the session open; "
            "fatal ones (bad key, quota) fail the session.",
            (Query(rate("rtbus_server_errors_total", "type, code"), "{{type}} {{code}}"),),
            unit="ops",
        ),
        Panel(
            "Session failures",
            "Sessions that failed for good, by reason (not retried).",
            (Query(rate("rtbus_session_failures_total", "reason"), "{{reason}}"),),
            unit="ops",
        ),
        Panel(
            "Actor restarts",
            "Restarts by supervisor and outcome; gave_up means the supervisor passed its "
            "restart intensity and failed to its parent.",
            (
                Query(
                    rate("rtbus_actor_restarts_total", "supervisor, outcome"),
                    "{{supervisor}} {{outcome}}",
                ),
                Query(rate("rtbus_actor_failures_total", "supervisor"), "{{supervisor}} failures"),
            ),
            unit="ops",
        ),
        Panel(
            "Actors given up on",
            "Sessions and workers removed for good past their own restart budget, by "
            "supervisor, and the envelopes workers given up on never handled.",
            (
                Query(rate("rtbus_actor_gave_up_total", "supervisor"), "{{supervisor}} gave up"),
                Query(
                    rate("rtbus_worker_envelopes_lost_total", "reason"),
                    "envelopes lost ({{reason}})",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Supervisor remaining intensity",
            "Restarts each supervisor may still make in its period before it gives up.",
            (
                Query(
                    "min by (supervisor) (rtbus_supervisor_remaining_intensity)",
                    "{{supervisor}}",
                ),
            ),
        ),
        Panel(
            "Version",
            "Instances running each version.",
            (Query("count by (version) (rtbus_build_info)", "{{version}}"),),
            kind="stat",
            width=4,
        ),
        Panel(
            "Ready sessions",
            "Sessions connected and ready right now.",
            (Query('sum(rtbus_sessions{state="ready"})', "ready"),),
            kind="stat",
            width=4,
        ),
    ),
)

LATENCY = Row(
    "Latency",
    (
        Panel(
            "Frame to subscriber",
            "From a frame's arrival to the metrics subscriber taking it off the bus. The "
            "objective is p99 under 25 ms (alert RtbusFrameToSubscriberSlow).",
            percentiles("rtbus_frame_to_subscriber_seconds"),
            unit="s",
        ),
        Panel(
            "Time to first audio",
            "From the user's speech stopping (or response.created when there was no speech) "
            "to the first output audio delta: what a voice agent's user hears as lag.",
            percentiles("rtbus_time_to_first_audio_seconds"),
            unit="s",
        ),
        Panel(
            "Response duration",
            "response.created to response.done, by final status.",
            percentiles("rtbus_response_duration_seconds", "status", "{{status}}"),
            unit="s",
        ),
        Panel(
            "Decode time per frame",
            "Mean time spent decoding one received WebSocket frame.",
            (
                Query(
                    f"{rate('rtbus_decode_seconds_sum')}"
                    f" / {rate('rtbus_websocket_received_frames_total')}",
                    "mean",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Responses",
            "Responses finished per second, by status.",
            (Query(rate("rtbus_response_duration_seconds_count", "status"), "{{status}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Time stopped by the garbage collector",
            "The share of time Python's garbage collector stopped the whole process, by "
            "generation: a full collection (2) holds every session at once, for 0.1-0.3 s "
            "at 1,000-2,000 sessions. [service] gc_threshold sets how often the youngest "
            "generation is collected (rtbus_gc_pause_seconds).",
            (Query(rate("rtbus_gc_pause_seconds_sum", "generation"), "gen {{generation}}"),),
            unit="percentunit",
            stack=True,
        ),
    ),
)

BUS = Row(
    "Bus",
    (
        Panel(
            "Published and delivered",
            "Envelopes published onto the bus and delivered to subscriptions, per second.",
            (
                Query(rate("rtbus_bus_published_total"), "published"),
                Query(rate("rtbus_bus_delivered_total"), "delivered"),
            ),
            unit="ops",
        ),
        Panel(
            "Queue depth",
            "Envelopes queued in subscriptions, summed by overflow policy (scrape time).",
            (Query("sum by (policy) (rtbus_bus_queue_depth)", "{{policy}}"),),
        ),
        Panel(
            "Fullest queue",
            "The fullest subscription's queued/maxsize by policy. A `block` one near 1 holds "
            "its publishers back.",
            (Query("max by (policy) (rtbus_bus_queue_fill_ratio_max)", "{{policy}}"),),
            unit="percentunit",
        ),
        Panel(
            "Lag: drops by policy",
            "Envelopes dropped for slow subscribers per second (the lag drop_oldest and "
            "drop_newest subscribers see), by policy.",
            (Query(rate("rtbus_bus_dropped_total", "policy"), "{{policy}}"),),
            unit="ops",
        ),
        Panel(
            "Publishers waiting",
            "Publishers held back by a full `block` subscription right now.",
            (Query("sum(rtbus_bus_publishers_waiting)", "waiting"),),
        ),
        Panel(
            "Longest blocked publisher",
            "How long the longest-waiting publisher has been held by a full `block` "
            "subscription (scrape time); past `[bus] block_timeout_seconds` a remote one is cut.",
            (Query("max(rtbus_bus_publisher_blocked_seconds_max)", "blocked"),),
            unit="s",
        ),
        Panel(
            "Subscribers disconnected",
            "Subscriptions closed by their policy per second: `too_slow` (a `block` one past its "
            "block_timeout), `overflow` (`disconnect`).",
            (Query(rate("rtbus_bus_subscribers_disconnected_total", "reason"), "{{reason}}"),),
            unit="ops",
        ),
        Panel(
            "Subscriptions",
            "Open subscriptions by overflow policy.",
            (Query("sum by (policy) (rtbus_bus_subscriptions)", "{{policy}}"),),
            stack=True,
        ),
    ),
)

UPSTREAM = Row(
    "Upstream",
    (
        Panel(
            "Reconnects by reason",
            "Upstream reconnects per second by reason; `recycled` is planned (sessions are "
            "renewed before the server's limit), the rest are not.",
            (Query(rate("rtbus_upstream_reconnects_total", "reason"), "{{reason}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Disconnects by reason",
            "Lost upstream connections per second by reason.",
            (Query(rate("rtbus_upstream_disconnects_total", "reason"), "{{reason}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Close codes",
            "WebSocket close codes of lost or ended connections (`none`: no close frame).",
            (Query(rate("rtbus_upstream_close_codes_total", "code"), "{{code}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Connects",
            "Upstream connections opened per second.",
            (Query(rate("rtbus_upstream_connects_total"), "connects"),),
            unit="ops",
        ),
        Panel(
            "Rate limits remaining",
            "What the last rate_limits.updated said is left, as a share of the limit.",
            (
                Query(
                    "min by (name) (rtbus_rate_limit_remaining / rtbus_rate_limit_limit)",
                    "{{name}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "WebSocket bytes",
            "Bytes received from and sent to the upstream per second.",
            (
                Query(rate("rtbus_websocket_received_bytes_total"), "received"),
                Query(rate("rtbus_websocket_sent_bytes_total"), "sent"),
            ),
            unit="Bps",
        ),
    ),
)

CONVERSATIONS = Row(
    "Conversations",
    (
        Panel(
            "Resumes by reason",
            "Conversations restored into a new upstream session per second, by why the last "
            "one ended; every reconnect and actor restart resumes.",
            (Query(rate("rtbus_session_resumes_total", "reason"), "{{reason}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Resume wait",
            "How long callers waited from a lost connection to their conversation restored.",
            percentiles("rtbus_session_resume_wait_seconds"),
            unit="s",
        ),
        Panel(
            "Items restored and dropped",
            "Conversation items given back to new upstream sessions, and items the record's "
            "bound let go (summarised when a hook is set), per second.",
            (
                Query(rate("rtbus_session_items_restored_total"), "restored"),
                Query(rate("rtbus_session_items_dropped_total"), "dropped"),
            ),
            unit="ops",
        ),
        Panel(
            "Recycles and their pause",
            "Upstream sessions replaced before their limit (make-before-break) per second, "
            "and the p99 pause at the switch.",
            (
                Query(rate("rtbus_session_recycles_total"), "recycles/s"),
                Query(quantile(0.99, "rtbus_session_recycle_pause_seconds"), "pause p99 (s)"),
            ),
        ),
    ),
)

REDIS = Row(
    "Redis",
    (
        Panel(
            "Redis up",
            "1 while the bridge holds a Redis connection.",
            (Query("min(rtbus_redis_up)", "up"),),
            kind="stat",
            width=4,
        ),
        Panel(
            "Publish buffer",
            "Envelopes waiting to be written to Redis.",
            (Query("sum(rtbus_redis_publish_buffered)", "buffered"),),
            width=4,
        ),
        Panel(
            "Stream length",
            "Entries in each stream.",
            (Query("max by (stream) (rtbus_redis_stream_length)", "{{stream}}"),),
        ),
        Panel(
            "Pending",
            "Entries delivered to a consumer group and not yet acknowledged.",
            (
                Query(
                    "max by (stream, group) (rtbus_redis_pending)",
                    "{{stream}} {{group}}",
                ),
            ),
        ),
        Panel(
            "Oldest pending age",
            "How long the oldest unacknowledged entry has waited, by stream and group.",
            (
                Query(
                    "max by (stream, group) (rtbus_redis_oldest_pending_seconds)",
                    "{{stream}} {{group}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Reclaimed and dead-lettered",
            "Stuck entries reclaimed from dead consumers, and entries past the delivery cap "
            "moved to the dead-letter stream, per second.",
            (
                Query(
                    rate("rtbus_redis_reclaimed_total", "stream, group"),
                    "{{stream}} {{group}} reclaimed",
                ),
                Query(
                    rate("rtbus_redis_dead_lettered_total", "stream, group"),
                    "{{stream}} {{group}} dead-lettered",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Trimmed before ack",
            "Entries the stream's length cap removed before their group acknowledged them: "
            "events lost to that group.",
            (
                Query(
                    rate("rtbus_redis_trimmed_before_ack_total", "stream, group"),
                    "{{stream}} {{group}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Lost by Redis",
            "Entries Redis acknowledged and later lost (a restart without persistence, a "
            "failover, a flush), by stream and reason; events a consumer group never got "
            "(gaps in a session's seq); groups found gone and made again, per second.",
            (
                Query(rate("rtbus_redis_lost_total", "stream, reason"), "{{stream}} {{reason}}"),
                Query(
                    rate("rtbus_redis_consumer_lost_total", "group, reason"),
                    "{{group}} {{reason}}",
                ),
                Query(
                    rate("rtbus_redis_groups_recreated_total", "stream, group"),
                    "{{stream}} {{group}} recreated",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Published and dropped",
            "Envelopes written to each stream, and dropped because the publish buffer was "
            "full, per second.",
            (
                Query(rate("rtbus_redis_published_total", "stream"), "{{stream}}"),
                Query(
                    rate("rtbus_redis_publish_dropped_total", "policy"),
                    "dropped {{policy}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Redis errors",
            "Failed Redis commands per second by operation.",
            (Query(rate("rtbus_redis_errors_total", "operation"), "{{operation}}"),),
            unit="ops",
        ),
    ),
)

GATEWAY = Row(
    "Gateway and HTTP",
    (
        Panel(
            "Gateway connections",
            "Out-of-process subscribers connected to the WebSocket gateway.",
            (Query("sum(rtbus_gateway_connections)", "connections"),),
        ),
        Panel(
            "Gateway frames",
            "Gateway frames per second, in (from workers) and out (to workers), and the "
            "WebSocket messages that carry the frames out (a burst goes in a few batches).",
            (
                Query(rate("rtbus_gateway_frames_total", "direction"), "{{direction}}"),
                Query(rate("rtbus_gateway_messages_sent_total"), "messages out"),
            ),
            unit="ops",
        ),
        Panel(
            "Gateway errors",
            "Error frames the gateway sent, by code; connections it refused before serving "
            "them, by reason (a bad upgrade, the token, the version); and connections it "
            "ended because a client stopped reading (a write did not go out in time).",
            (
                Query(rate("rtbus_gateway_errors_total", "code"), "{{code}}"),
                Query(rate("rtbus_gateway_refused_total", "reason"), "refused: {{reason}}"),
                Query(rate("rtbus_gateway_stalled_total"), "stalled"),
            ),
            unit="ops",
        ),
        Panel(
            "HTTP requests",
            "Requests per second by route template, method and status.",
            (
                Query(
                    rate("rtbus_http_requests_total", "route, method, status"),
                    "{{method}} {{route}} {{status}}",
                ),
            ),
            unit="reqps",
            width=24,
        ),
    ),
)

CALLS = Row(
    "Calls",
    (
        Panel(
            "Calls",
            "Calls per second by outcome: accepted (a call session attached), rejected by a "
            "route, referred, failed (the accept or the call session failed), ended.",
            (Query(rate("rtbus_calls_total", "outcome"), "{{outcome}}"),),
            unit="ops",
        ),
        Panel(
            "Calls held",
            "Calls with a call session now.",
            (Query("sum(rtbus_calls_active)", "calls"),),
        ),
        Panel(
            "Webhook to accepted",
            "From a call's webhook arriving to the upstream answering the accept.",
            percentiles("rtbus_webhook_to_accept_seconds"),
            unit="s",
        ),
        Panel(
            "Webhook verifications",
            "Webhook deliveries by verdict: bad_signature and stale are refused (forged, "
            "misconfigured secret, or a replay); busy were answered 503 to be redelivered.",
            (Query(rate("rtbus_webhook_verifications_total", "result"), "{{result}}"),),
            unit="ops",
        ),
        Panel(
            "Calls API errors",
            "Calls API requests that failed, by endpoint and HTTP status (none: no answer).",
            (
                Query(
                    rate("rtbus_calls_api_errors_total", "endpoint, status"),
                    "{{endpoint}} {{status}}",
                ),
            ),
            unit="ops",
            width=16,
        ),
    ),
)

ROWS = (OVERVIEW, LATENCY, BUS, UPSTREAM, CONVERSATIONS, CALLS, REDIS, GATEWAY)


def _targets(queries: Sequence[Query]) -> list[dict[str, Any]]:
    # refIds A, B, ...: Grafana requires them unique within a panel.
    return [
        {
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend,
            "refId": chr(ord("A") + index),
        }
        for index, query in enumerate(queries)
    ]


def _timeseries_options(panel: Panel) -> dict[str, Any]:
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _stat_options(panel: Panel) -> dict[str, Any]:
    return {
        "colorMode": "value",
        "graphMode": "none",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "value_and_name",
    }


_OPTIONS = {"timeseries": _timeseries_options, "stat": _stat_options}


def _field_defaults(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.kind == "timeseries":
        stacking = {"mode": "normal" if panel.stack else "none", "group": "A"}
        defaults["custom"] = {"fillOpacity": 10, "stacking": stacking}
    return defaults


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": _field_defaults(panel), "overrides": []},
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": _OPTIONS[panel.kind](panel),
        "targets": _targets(panel.queries),
        "title": panel.title,
        "type": panel.kind,
    }


def _row_header(row: Row, panel_id: int, y: int) -> dict[str, Any]:
    return {
        "collapsed": False,
        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
        "id": panel_id,
        "panels": [],
        "title": row.title,
        "type": "row",
    }


def _layout(rows: Sequence[Row]) -> Iterator[dict[str, Any]]:
    """Rows top to bottom, each panel right of the last, wrapping at the grid's width."""
    panel_id, y = 1, 0
    for row in rows:
        yield _row_header(row, panel_id, y)
        panel_id, x, y = panel_id + 1, 0, y + 1
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y = 0, y + PANEL_HEIGHT
            yield _panel(panel, panel_id, x, y)
            panel_id, x = panel_id + 1, x + panel.width
        y += PANEL_HEIGHT


def _datasource_variable() -> dict[str, Any]:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    return {
        "annotations": {"list": []},
        "description": "rtbus: Realtime sessions, the bus, upstream, Redis and the gateway. "
        "Generated by tools/gen_dashboard.py: edit that, then run it; do not edit this file.",
        "editable": True,
        "graphTooltip": 1,
        "links": [],
        "panels": list(_layout(ROWS)),
        "refresh": "10s",
        "schemaVersion": 39,
        "tags": ["rtbus"],
        "templating": {"list": [_datasource_variable()]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "rtbus",
        "uid": UID,
        "version": 1,
    }


def generate() -> str:
    """The file's text: the dashboard as indented JSON with a final newline."""
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(generate())
    print(f"wrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
