"""Exporters: where every pipeline ends. Each module exports its `factory`; helper/ is what the network exporters
share (the sending queue, retries, self-tracing suppression)."""
