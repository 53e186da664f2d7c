"""The one interface between pipeline stages, and the fan-out that ends every pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tracejudge.processor.component.errors import RetryableError
from tracejudge.processor.exporters.helper.queued import Exporter
from tracejudge.processor.pdata.batch import TraceBatch


class TracesConsumer(Protocol):
    """A pipeline stage. `consume` returns once the batch is safely in every downstream queue, and raises
    PermanentError (the input is bad) or RetryableError (try again later) otherwise. The batch is shared and
    immutable: a stage that changes it passes a new one to its `next`; a stage that drops it doesn't call next."""

    async def consume(self, batch: TraceBatch) -> None: ...


class Component(Protocol):
    """Lifecycle of everything the service builds. `start` returns quickly; `shutdown` is idempotent, safe
    without `start`, and drains what was accepted."""

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class Fanout:
    """Hands a batch to every exporter of a pipeline, all or none: if any sending queue is full the request
    is refused as retryable and no exporter gets it, so a client's retry never duplicates spans."""

    def __init__(self, exporters: Sequence[Exporter]) -> None:
        self._exporters = tuple(exporters)

    async def consume(self, batch: TraceBatch) -> None:
        full = [e.name for e in self._exporters if not e.has_room(batch)]
        if full:
            raise RetryableError(f"sending queue full for exporter(s) {', '.join(full)}; retry later")
        for exporter in self._exporters:  # no await in this loop: has_room still holds for each
            exporter.enqueue(batch)
