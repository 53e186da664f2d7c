"""The interfaces a batch travels through: every stage is a Consumer (of traces: a TracesConsumer), every
pipeline ends in Exporters."""

from __future__ import annotations

from typing import Any, Protocol

from tracejudge.processor.pdata.batch import SignalBatch, TraceBatch

# What flows through a pipeline of each signal: a traces pipeline carries TraceBatches, logs and metrics
# pipelines SignalBatches. Exporters and signal-blind stages (memory_limiter) take either.
Batch = TraceBatch | SignalBatch


class Consumer(Protocol):
    """A stage of a pipeline of any signal, as the receiver and the service see it: it takes the signal's batches
    (TraceBatch or SignalBatch), under the contract written on TracesConsumer."""

    async def consume(self, batch: Any) -> None: ...


class TracesConsumer(Protocol):
    """A pipeline stage. `consume` returns once the batch is safely in every downstream queue, and raises
    PermanentError (the input is bad) or RetryableError (try again later) otherwise. The batch is shared and
    immutable: a stage that changes it passes a new one to its `next`; a stage that drops it doesn't call next."""

    async def consume(self, batch: TraceBatch) -> None: ...


class LogContentJoin(Protocol):
    """Offered as `log_content` by a traces stage that completes LLM spans with the content instrumentations put
    in log records. The service hands it every logs batch of a logs pipeline that shares a receiver with its traces
    pipeline, before that batch goes further, and calls `attach_logs` once at build time when there is one."""

    def attach_logs(self) -> None:
        """A logs pipeline feeds this stage: LLM spans without content may wait for theirs."""
        ...

    async def consume_logs(self, batch: SignalBatch) -> None:
        """Take the LLM content of a logs batch; raises like `consume` if what it completes cannot be taken on."""
        ...


class Exporter(Protocol):
    """The end of a pipeline. A fan-out first asks every exporter `has_room`, then calls `enqueue` on each
    without awaiting in between, so a batch is either in every exporter's queue or in none. After `enqueue`
    the exporter owns delivery; a failure is counted and logged, never reported back to the client."""

    name: str

    def has_room(self, batch: Batch) -> bool: ...

    def enqueue(self, batch: Batch) -> object:
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
