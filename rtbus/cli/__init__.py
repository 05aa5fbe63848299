"""The ``rtbus`` command.

``rtbus serve [--config FILE] [--http HOST:PORT] [--log-format json|logfmt] [--log-level L]``
    Run the service. With no config it runs on the embedded default: the simulated Realtime
    server as upstream, in process, and a demo workload of a few sessions holding voice turns.
    HTTP (``/metrics``, ``/healthz``, ``/readyz``, the control API) listens on 127.0.0.1:9464.
    SIGTERM or SIGINT drains it (sessions finish their response and close with 1000) and it
    exits 0; a second signal stops it at once (exit 1).
``rtbus config check FILE``
    Check a config file (with the environment applied): exit 0 with a one-line summary, or
    exit 2 with every problem, each naming its key.
``rtbus tail [--url URL] [--token T] [--types ...] [--session ...] [--json]``
    Follow a running service's bus: one readable line per event with the wall-clock time it
    was received (audio deltas summarised by size, transcripts as text, function calls as
    ``name(arguments)``, colours on a terminal unless ``NO_COLOR``), or JSON lines for
    ``jq``. It says when it lost the service and when it is back.
``rtbus top [--url URL] [--token T] [--interval S] [--once]``
    A running service live: sessions with state, events/s, reconnects and last error; the
    bus's queues and drops by overflow policy. ``--once`` prints one view, for scripts.
``rtbus sim ...``
    Run the simulated Realtime server alone (as ``python -m rtbus.sim`` does).
``rtbus bench [--out FILE] [NAME ...]``
    Run the benchmarks (the checkout's ``bench/`` package) and print, or write, their table.
``rtbus --version``
    The installed version.

``tail`` and ``top`` find the service with ``--url``, else ``$RTBUS_URL``, else
http://127.0.0.1:9464, and its token with ``--token`` or ``$RTBUS_HTTP_TOKEN``.

Exit status: 0 on success, 1 when the service failed, 2 for a usage or configuration error
and for a service that could not start (one line says why).
"""

from ._main import main as main

__all__ = ["main"]
