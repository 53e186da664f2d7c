"""Receivers: where spans enter a pipeline. Each exports its `factory` (one today: otlp)."""
