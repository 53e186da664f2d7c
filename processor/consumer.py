"""The interfaces a batch travels through: every stage is a TracesConsumer, every pipeline ends in Exporters."""

from __future__ import annotations

from typing import Protocol

from tracejudge.processor.pdata.batch import TraceBatch


class TracesConsumer(Protocol):
    """A pipeline stage. `consume` returns once the batch is safely in every downstream queue, and raises
    PermanentError (the input is bad) or RetryableError (try again later) otherwise. The batch is shared and
    immutable: a stage that changes it passes a new one to its `next`; a stage that drops it doesn't call next."""

    async def consume(self, batch: TraceBatch) -> None: ...


class Exporter(Protocol):
    """The end of a pipeline. A fan-out first asks every exporter `has_room`, then calls `enqueue` on each
    without awaiting in between, so a batch is either in every exporter's queue or in none. After `enqueue`
    the exporter owns delivery; a failure is counted and logged, never reported back to the client."""

    name: str

    def has_room(self, batch: TraceBatch) -> bool: ...

    def enqueue(self, batch: TraceBatch) -> object:
        """Take the batch; returns what `withdraw` needs to take it back."""
        ...

    def withdraw(self, receipt: object) -> None:
        """Take back a batch `enqueue` just took, before any await (another exporter of the fan-out could not
        take it: the request is refused, and its retry must not duplicate it here)."""
        ...

    def pending(self) -> int:
        """Requests accepted and not yet delivered or given up on (0 for an exporter without a queue)."""
        ...

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...
