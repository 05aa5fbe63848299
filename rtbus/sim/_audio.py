"""Audio for the simulator: a speech-like output signal and energy-based voice detection.

Invariants:

* Output audio is one deterministic periodic signal (a 200 Hz voice with two harmonics under a
  5 Hz syllable envelope). Its period is 0.2 s, so a chunk is fully described by its offset
  inside one period and its length; chunks are cached by that pair, which keeps load mode
  cheap however long a response is.
* Detection works on 20 ms windows of PCM16 mono 24 kHz. A window is speech when its RMS, in
  dBFS, reaches ``-60 + 60 * threshold`` (threshold 0.5 is -30 dBFS). Audio time is counted in
  samples from the first append of the session, never reset by commit or clear, as the real
  service counts ``audio_start_ms``.
"""

from __future__ import annotations

import base64
import functools
import math
from array import array
from collections.abc import Iterator

import attrs

__all__ = [
    "PCM_RATE",
    "AudioFormat",
    "SpeechStarted",
    "SpeechStopped",
    "VoiceActivityDetector",
    "audio_format",
    "output_chunk",
    "speech_like_pcm16",
]

PCM_RATE = 24_000
_PERIOD_SECONDS = 0.2
_WINDOW_MS = 20


@attrs.frozen
class AudioFormat:
    """A wire audio format: its ``type`` string, sample rate and bytes per sample."""

    type: str
    rate: int
    sample_width: int

    def bytes_for(self, seconds: float) -> int:
        """The byte count of ``seconds`` of audio, whole samples only."""
        return round(seconds * self.rate) * self.sample_width

    def milliseconds(self, byte_count: int) -> float:
        """The duration of ``byte_count`` bytes of audio in this format."""
        return byte_count / self.sample_width / self.rate * 1000


_FORMATS = {
    "audio/pcm": AudioFormat("audio/pcm", PCM_RATE, 2),
    "audio/pcmu": AudioFormat("audio/pcmu", 8_000, 1),
    "audio/pcma": AudioFormat("audio/pcma", 8_000, 1),
}


def audio_format(format_type: str) -> AudioFormat:
    """The format named by a session's ``audio.*.format.type`` (already validated)."""
    return _FORMATS[format_type]


def _speech_sample(t: float) -> float:
    envelope = abs(math.sin(math.pi * t / _PERIOD_SECONDS))
    voice = math.sin(2 * math.pi * 200 * t) + 0.5 * math.sin(2 * math.pi * 400 * t)
    return 0.3 * envelope * (voice + 0.25 * math.sin(2 * math.pi * 600 * t)) / 1.75


def _linear_samples(rate: int) -> list[int]:
    count = round(rate * _PERIOD_SECONDS)
    return [round(32767 * _speech_sample(i / rate)) for i in range(count)]


def _mulaw(sample: int) -> int:
    # G.711 mu-law on the 14-bit value: bias, segment, four mantissa bits, all bits inverted.
    value = sample >> 2
    mask = 0xFF if value >= 0 else 0x7F
    magnitude = min(abs(value), 8159) + 0x21
    segment = min(magnitude.bit_length() - 6, 8)
    if segment == 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ mask


def _alaw(sample: int) -> int:
    # G.711 A-law on the 13-bit magnitude: segment, four mantissa bits, even bits inverted.
    mask = 0xD5 if sample >= 0 else 0x55
    magnitude = (sample if sample >= 0 else -sample - 1) >> 3
    segment = max(magnitude.bit_length() - 5, 0)
    mantissa = (magnitude >> max(segment, 1)) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


@functools.cache
def _period(format_type: str) -> bytes:
    fmt = _FORMATS[format_type]
    samples = _linear_samples(fmt.rate)
    if format_type == "audio/pcmu":
        return bytes(_mulaw(s) for s in samples)
    if format_type == "audio/pcma":
        return bytes(_alaw(s) for s in samples)
    return array("h", samples).tobytes()


def speech_like_pcm16(seconds: float) -> bytes:
    """``seconds`` of the simulator's voice as PCM16 mono 24 kHz (tests use it as speech)."""
    return _chunk("audio/pcm", 0, audio_format("audio/pcm").bytes_for(seconds))


def _chunk(format_type: str, offset: int, length: int) -> bytes:
    period = _period(format_type)
    start = offset % len(period)
    repeats = (start + length) // len(period) + 1
    return (period * repeats)[start : start + length]


@functools.lru_cache(maxsize=256)
def output_chunk(format_type: str, offset: int, length: int) -> str:
    """Base64 of ``length`` bytes of the voice starting ``offset`` bytes into the stream."""
    return base64.b64encode(_chunk(format_type, offset, length)).decode("ascii")


@attrs.frozen
class SpeechStarted:
    """The detector heard speech begin at ``audio_ms`` (session audio time)."""

    audio_ms: int


@attrs.frozen
class SpeechStopped:
    """Speech ended at ``audio_ms``: the end of the last loud window before the silence."""

    audio_ms: int


def _rms_dbfs(window: bytes) -> float:
    samples = array("h", window)
    if not samples:
        return -math.inf
    mean_square = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(mean_square / 32768**2) if mean_square else -math.inf


@attrs.define
class VoiceActivityDetector:
    """Sans-IO server VAD: feed PCM16 bytes, get speech start and stop transitions.

    ``threshold`` and ``silence_duration_ms`` come from the session's ``server_vad`` config and
    may change between feeds (a ``session.update`` mid-stream takes effect on the next window).
    """

    threshold: float = 0.5
    silence_duration_ms: int = 500
    _pending: bytearray = attrs.field(factory=bytearray)
    _windows_seen: int = 0
    _speaking: bool = False
    _last_speech_end_ms: int = 0

    def feed(self, pcm16: bytes) -> Iterator[SpeechStarted | SpeechStopped]:
        """Consume audio; yield each transition found in the complete windows it makes."""
        self._pending += pcm16
        window_bytes = PCM_RATE * _WINDOW_MS // 1000 * 2
        while len(self._pending) >= window_bytes:
            window = bytes(self._pending[:window_bytes])
            del self._pending[:window_bytes]
            transition = self._window(window)
            if transition is not None:
                yield transition

    def _window(self, window: bytes) -> SpeechStarted | SpeechStopped | None:
        start_ms = self._windows_seen * _WINDOW_MS
        self._windows_seen += 1
        loud = _rms_dbfs(window) >= -60 + 60 * self.threshold
        if loud:
            self._last_speech_end_ms = start_ms + _WINDOW_MS
            if not self._speaking:
                self._speaking = True
                return SpeechStarted(start_ms)
            return None
        silent_for = start_ms + _WINDOW_MS - self._last_speech_end_ms
        if self._speaking and silent_for >= self.silence_duration_ms:
            self._speaking = False
            return SpeechStopped(self._last_speech_end_ms)
        return None

    def reset(self) -> None:
        """Forget an utterance in progress (``input_audio_buffer.clear``); time keeps running."""
        self._speaking = False
