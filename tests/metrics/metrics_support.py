"""Shared helpers for the metrics tests: scrapes read back through prometheus_client's own
text parser (what Prometheus would see)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from rtbus import Service

VOICE_TURN: dict[str, Any] = {
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}
}

Labels = frozenset[tuple[str, str]]


class Scrape:
    """One scrape of a service's registry, parsed back from the text exposition."""

    def __init__(self, service: Service) -> None:
        self.text = prometheus_client.generate_latest(service.metrics.registry).decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.samples: dict[str, dict[Labels, float]] = {}
        for family in self.families.values():
            for sample in family.samples:
                labels = frozenset(sample.labels.items())
                self.samples.setdefault(sample.name, {})[labels] = sample.value

    def value(self, metric: str, /, **labels: str) -> float:
        """The sample ``metric{labels}``; 0 when the series is absent (a counter not yet hit)."""
        return self.samples.get(metric, {}).get(frozenset(labels.items()), 0.0)

    def by(self, name: str, label: str) -> Mapping[str, float]:
        """Every sample of ``name`` (with one label), by that label's value."""
        return {dict(key)[label]: value for key, value in self.samples.get(name, {}).items()}

    def counters(self) -> dict[tuple[str, Labels], float]:
        """Every counter sample (``_total``), keyed by name and labels."""
        return {
            (name, labels): value
            for name, rows in self.samples.items()
            if name.endswith("_total")
            for labels, value in rows.items()
        }
