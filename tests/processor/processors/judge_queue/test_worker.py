"""The judge workers: a poisoned item holds up no other, and is set aside after max_attempts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.host import ComponentHost
from tests.support.waiting import eventually
from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig, NewItem
from tracejudge.judge.tiers import JudgesConfig, TierConfig, build_judges
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.judge_queue.config import WorkerConfig
from tracejudge.processor.processors.judge_queue.metrics import JudgeQueueMetrics
from tracejudge.processor.processors.judge_queue.worker import JudgeWorker

POISON = "00000000000000aa"


class Exporters:
    """Takes evaluation spans, except those of the poisoned span, on which it fails as a bug would."""

    def __init__(self) -> None:
        self.parents: list[str] = []

    async def consume(self, batch: TraceBatch) -> None:
        request = ExportTraceServiceRequest.FromString(batch.payload)
        parents = [s.parent_span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        if POISON in parents:
            raise RuntimeError("cannot export this one")
        self.parents += parents


async def test_a_poisoned_item_is_set_aside_after_max_attempts_and_the_others_are_judged_once(tmp_path: Path) -> None:
    queue = JudgeQueue(str(tmp_path / "judge_queue.db"), JudgeQueueConfig(), "1")
    judges = build_judges(JudgesConfig(local=TierConfig(judge="embedded"), heavy=TierConfig(judge="none")), queue)
    body = {"query": "What is the capital of France?", "response": "Paris.", "documents": ["Paris is the capital."],
            "probability": 1.0, "stratum": "uniform"}
    spans = ["00000000000000a1", POISON, "00000000000000a2"]
    queue.enqueue([NewItem(span, f"{i + 1:032x}", "faithfulness", body) for i, span in enumerate(spans)])
    host = ComponentHost()
    exporters = Exporters()
    worker = JudgeWorker(queue, judges, WorkerConfig(poll_interval=0.01, max_attempts=2, retry_backoff=0.05,
                                                     lease=30), exporters,
                         host.telemetry.metrics(JudgeQueueMetrics), host.sampling_scale, "1")
    await worker.start()
    try:
        await eventually(lambda: queue.waiting() == 0, what="every item done or set aside")
        await asyncio.sleep(0.2)  # nothing comes back
        assert sorted(exporters.parents) == ["00000000000000a1", "00000000000000a2"]
        # recorded with the completion, in the queue's outbox
        decisions = {d.span_id: d.decision for _, d in queue.pending_decisions(10) if d.trace_id == f"{2:032x}"}
        assert decisions == {POISON: "unjudged: RuntimeError"}
        assert host.telemetry.registry.get_sample_value(
            "tracejudge_judge_verdicts_total", {"tier": "none", "metric": "faithfulness", "outcome": "RuntimeError"}
        ) == 1
    finally:
        await worker.shutdown()
        queue.close()
