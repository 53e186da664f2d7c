"""The fan-out that ends every pipeline."""

from __future__ import annotations

from collections.abc import Sequence

from tracejudge.processor.component.errors import RetryableError
from tracejudge.processor.consumer import Exporter
from tracejudge.processor.pdata.batch import TraceBatch


class Fanout:
    """Hands a batch to every exporter of a pipeline, all or none: if any sending queue is full the request
    is refused as retryable and no exporter gets it, so a client's retry never duplicates spans. If one cannot
    write it (a full disk), those that took it already give it back before the refusal."""

    def __init__(self, exporters: Sequence[Exporter]) -> None:
        self._exporters = tuple(exporters)

    async def consume(self, batch: TraceBatch) -> None:
        full = [e.name for e in self._exporters if not e.has_room(batch)]
        if full:
            raise RetryableError(f"sending queue full for exporter(s) {', '.join(full)}; retry later")
        taken: list[tuple[Exporter, object]] = []
        try:
            for exporter in self._exporters:  # no await in this loop: has_room still holds for each
                taken.append((exporter, exporter.enqueue(batch)))
        except BaseException:
            for exporter, receipt in reversed(taken):
                exporter.withdraw(receipt)
            raise
