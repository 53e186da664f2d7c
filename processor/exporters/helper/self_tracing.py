"""Keeps the processor from tracing itself into its own pipeline.

If the process is auto-instrumented (say, started under `opentelemetry-instrument`), gRPC and HTTP client
instrumentations would create spans for our own exports, which would be exported to us, and so on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context

# Instrumentations check this context key (opentelemetry-api exports it under a private name only).
_SUPPRESS_KEYS = (context._SUPPRESS_INSTRUMENTATION_KEY, context._SUPPRESS_HTTP_INSTRUMENTATION_KEY)


@contextmanager
def suppressed() -> Iterator[None]:
    ctx = context.get_current()
    for key in _SUPPRESS_KEYS:
        ctx = context.set_value(key, True, ctx)
    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)
