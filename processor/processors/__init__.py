"""Processors: the pipeline stages between receivers and exporters. Each exports its `factory`, which declares
what the stage needs from the batch and what it adds (the service checks the order)."""
