"""Our own exports run with OpenTelemetry instrumentation suppressed, as instrumentations check it."""

from __future__ import annotations

from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled, is_instrumentation_enabled

from tracejudge.processor.exporters.helper.self_tracing import suppressed


def test_instrumentations_see_themselves_switched_off_inside_suppressed() -> None:
    assert is_instrumentation_enabled() and is_http_instrumentation_enabled()
    with suppressed():
        assert not is_instrumentation_enabled()
        assert not is_http_instrumentation_enabled()
    assert is_instrumentation_enabled() and is_http_instrumentation_enabled()
