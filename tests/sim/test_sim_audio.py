"""Audio: the synthesized voice, G.711 encoding, and energy-based voice detection."""

from __future__ import annotations

import base64
import math
from array import array

import pytest

from rtbus.sim import speech_like_pcm16
from rtbus.sim._audio import (
    SpeechStarted,
    SpeechStopped,
    VoiceActivityDetector,
    _alaw,
    _mulaw,
    audio_format,
    output_chunk,
)

SAMPLES = [0, 1, -1, 100, -100, 1000, -1000, 8000, -8000, 32767, -32768]


def test_mulaw_matches_the_reference_encoder() -> None:
    # Expected values from CPython's audioop.lin2ulaw (removed in 3.13).
    expected = [255, 255, 126, 242, 114, 206, 78, 160, 32, 128, 0]
    assert [_mulaw(s) for s in SAMPLES] == expected


def test_alaw_matches_the_reference_encoder() -> None:
    # Expected values from CPython's audioop.lin2alaw (removed in 3.13).
    expected = [213, 213, 85, 211, 83, 250, 122, 138, 10, 170, 42]
    assert [_alaw(s) for s in SAMPLES] == expected


def rms_dbfs(pcm: bytes) -> float:
    samples = array("h", pcm)
    return 10 * math.log10(sum(s * s for s in samples) / len(samples) / 32768**2)


def test_the_voice_is_loud_enough_to_be_speech_and_not_clipped() -> None:
    pcm = speech_like_pcm16(1.0)
    assert len(pcm) == 48_000
    assert -25 < rms_dbfs(pcm) < -10
    assert max(abs(s) for s in array("h", pcm)) < 32767


def test_chunks_continue_the_signal_across_boundaries() -> None:
    whole = speech_like_pcm16(0.5)
    pieces = b"".join(
        base64.b64decode(output_chunk("audio/pcm", offset, 4800))
        for offset in range(0, 24_000, 4800)
    )
    assert pieces == whole


@pytest.mark.parametrize(("fmt", "per_100ms"), [("audio/pcm", 4800), ("audio/pcmu", 800)])
def test_format_byte_rates(fmt: str, per_100ms: int) -> None:
    assert audio_format(fmt).bytes_for(0.1) == per_100ms
    assert audio_format(fmt).milliseconds(per_100ms) == pytest.approx(100)


def test_detector_reports_speech_then_silence() -> None:
    detector = VoiceActivityDetector(threshold=0.5, silence_duration_ms=300)
    transitions = list(detector.feed(bytes(9600) + speech_like_pcm16(0.6) + bytes(48 * 400)))
    assert transitions == [SpeechStarted(audio_ms=220), SpeechStopped(audio_ms=780)]


def test_detector_needs_the_whole_silence_duration() -> None:
    detector = VoiceActivityDetector(threshold=0.5, silence_duration_ms=300)
    assert list(detector.feed(speech_like_pcm16(0.4))) == [SpeechStarted(audio_ms=20)]
    # The voice fades out over its last 20 ms window, so silence starts at 380 ms.
    assert list(detector.feed(bytes(48 * 260))) == []
    assert list(detector.feed(bytes(48 * 40))) == [SpeechStopped(audio_ms=380)]


def test_detector_threshold_maps_to_dbfs() -> None:
    quiet_tone = array("h", [round(400 * math.sin(i / 5)) for i in range(4800)]).tobytes()
    # About -38.3 dBFS: speech for threshold 0.3 (-42 dBFS), not for 0.5 (-30 dBFS).
    assert list(VoiceActivityDetector(threshold=0.5).feed(quiet_tone)) == []
    assert list(VoiceActivityDetector(threshold=0.3).feed(quiet_tone)) == [SpeechStarted(0)]


def test_detector_handles_odd_sized_appends() -> None:
    detector = VoiceActivityDetector()
    pcm = speech_like_pcm16(0.2)
    found = [
        t for start in range(0, len(pcm), 333) for t in detector.feed(pcm[start : start + 333])
    ]
    assert found == [SpeechStarted(audio_ms=20)]
