"""The fan-out that ends every pipeline, and the tap that shows a logs pipeline's batches to the traces stages
that read LLM content from log records."""

from __future__ import annotations

from collections.abc import Sequence

from tracejudge.processor.component.errors import RetryableError
from tracejudge.processor.consumer import Batch, Consumer, Exporter, LogContentJoin
from tracejudge.processor.pdata.batch import SignalBatch


class Fanout:
    """Hands a batch to every exporter of a pipeline, all or none: if any sending queue is full the request
    is refused as retryable and no exporter gets it, so a client's retry never duplicates spans. If one cannot
    write it (a full disk), those that took it already give it back before the refusal."""

    def __init__(self, exporters: Sequence[Exporter]) -> None:
        self._exporters = tuple(exporters)

    async def consume(self, batch: Batch) -> None:
        if not batch.item_count:  # a batch that only carries LLM spans completed later: nothing to forward
            return
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


class LogContentTap:
    """At the end of a logs pipeline, before its fan-out: the traces stages take a batch's LLM content first, so a
    refusal by either side refuses the request and its retry duplicates nothing downstream."""

    def __init__(self, readers: Sequence[LogContentJoin], next_consumer: Consumer) -> None:
        self._readers = tuple(readers)
        self._next = next_consumer

    async def consume(self, batch: SignalBatch) -> None:
        for reader in self._readers:
            await reader.consume_logs(batch)
        await self._next.consume(batch)
