"""Reading the service's own Prometheus metrics in tests."""

from __future__ import annotations

from tracejudge.processor.service.service import Service


def metric(service: Service, name: str, **labels: str) -> float:
    """The current value of one sample, 0 when it was never set."""
    return service.telemetry.registry.get_sample_value(name, labels) or 0.0
