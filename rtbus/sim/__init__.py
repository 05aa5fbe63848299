"""A simulated OpenAI Realtime server: the default upstream, the test double, the bench load.

``server = await nursery.start(rtbus.sim.serve_sim, "127.0.0.1", 0)`` starts one on a free
port; ``server.url`` (``http://127.0.0.1:PORT/v1``) is a ``base_url`` for any OpenAI client,
which connects to ``ws://127.0.0.1:PORT/v1/realtime?model=...``. The Azure paths
``/openai/realtime`` and ``/openai/v1/realtime`` (``deployment=`` or ``model=``) are served
too. ``python -m rtbus.sim --port 8765`` runs one alone.

It speaks the GA protocol as the real service does, and every event it sends validates
against the ``openai`` package's ``RealtimeServerEvent``: ``session.created`` on connect;
``session.update``; input audio
(append, commit, clear) with server VAD by RMS energy over 20 ms windows; conversation items
(create with ``previous_item_id``, retrieve, delete, truncate); responses in audio (real PCM16
24 kHz speech-like audio, paced) or text, function calls when a function tool's name appears
in the user's text, cancellation, ``rate_limits.updated``; and ``error`` events worded like the
real ones. Every client event is checked by ``rtbus.protocol``'s own models and the server's
rules (one schema), and a refusal carries the server's code and dotted ``param``
(``unknown_parameter`` at ``response.extra``). See ``SimOptions`` for pacing (real time, a
speed factor, or unpaced for load).

Faults
------
Scripted for every connection with ``SimOptions.faults``, for one connection with
``?sim_fault=SPEC`` (repeatable) in the URL, or at random with ``SimOptions.fault_rate`` and
``seed``. ``SPEC`` is ``kind[:arg][:key=value]...``, triggered ``after_events=N`` (after the
N-th event sent; default 1, right after ``session.created``) or ``after_seconds=T``:

``close[:CODE]``
    Close the WebSocket with ``CODE`` (default 1011) and ``reason=...``.
``drop``
    Abort the TCP connection (RST): no close frame, the client sees 1006.
``stall[:SECONDS]``
    Stop sending and stop reading the socket; after ``SECONDS`` (default: until the server
    stops) drop the connection. For keepalive and timeout tests.
``malformed``
    Send one frame that is not JSON (a truncated event), then carry on.
``notype``
    Send one JSON object with no ``type`` field, then carry on.
``oversized[:BYTES]``
    Send one valid JSON frame of ``BYTES`` bytes (default 2 MiB, past trio-websocket's 1 MiB
    default limit) of type ``sim.oversized``, then carry on.
``error[:CODE]``
    Send an ``error`` event; ``server_error`` (the default) is sent as the real one is
    (``type: server_error``, ``code: null``), any other code as an ``invalid_request_error``.
``expire``
    Send the real ``session_expired`` error ("Your session hit the maximum duration of 60
    minutes.") and close with 1001. ``SimOptions.max_session_seconds`` does this on time.

Calls
-----
The same port serves the calls REST API (``POST /v1/realtime/calls``, ``.../{id}/accept``,
``reject``, ``hangup``, ``refer``, ``POST /v1/realtime/client_secrets``) and the call control
WebSocket ``/v1/realtime?call_id=...``. ``SimServer.place_call(Dial(...))`` rings a SIP call and
sends a signed ``realtime.call.incoming`` webhook to ``SimOptions.webhook_url`` (duplicates,
redeliveries and bad signatures on demand; ``call_rate`` places calls on its own). Once
accepted, the call's caller speaks ``caller_turns`` times and hangs up, which closes the
WebSocket with 1000 ``call ended``. ``docs/calls.md`` describes it all.

Not simulated
-------------
Semantic VAD is treated as energy VAD; VAD runs on ``audio/pcm`` input only (G.711 input is
buffered and committed, never detected); ``idle_timeout_ms``, image input and a
``response.create``'s own ``input`` items (item references too) are accepted and have no
effect. MCP tools are refused as ``invalid_value`` rather than accepted and never acted on.
With input transcription on, every user audio item "says" ``input_transcript``.

A transcription session (``?intent=transcription``, no model) starts as ``type:
transcription``; each commit (manual or by VAD) gives ``input_audio_buffer.committed``, then
the transcript as one ``...input_audio_transcription.delta`` and ``.completed``. It never
responds: ``response.*`` and ``conversation.item.*`` events are refused, and so is a
``session.update`` of the other kind (in either kind of session).

A ``sim_fault`` that cannot be parsed refuses the handshake with HTTP 400; a configured
``api_key`` that the handshake does not carry (``Authorization: Bearer`` or ``api-key``)
refuses it with HTTP 401.
"""

from ._audio import speech_like_pcm16 as speech_like_pcm16
from ._faults import Fault as Fault
from ._faults import FaultKind as FaultKind
from ._options import SimOptionFields as SimOptionFields
from ._options import SimOptions as SimOptions
from ._options import SimStatistics as SimStatistics
from ._phone import Delivery as Delivery
from ._phone import Dial as Dial
from ._server import SimServer as SimServer
from ._server import serve_sim as serve_sim
from ._session import SessionSettings as SessionSettings
from ._session import SimSession as SimSession

__all__ = [
    "Delivery",
    "Dial",
    "Fault",
    "FaultKind",
    "SessionSettings",
    "SimOptionFields",
    "SimOptions",
    "SimServer",
    "SimSession",
    "SimStatistics",
    "serve_sim",
    "speech_like_pcm16",
]
