"""The decision relay: records written with the queue items they describe reach the decision log, once each, even
when a crash comes between the log's commit and the outbox's."""

from __future__ import annotations

from pathlib import Path

from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig, NewItem
from tracejudge.processor.component.decisions import JUDGED, Decision
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.processors.judge_queue.decision_relay import DecisionRelay
from tracejudge.processor.service.decision_log import DecisionLog, read_decisions

TRACE = "ab" * 16


def judged(span: int) -> Decision:
    return Decision(TRACE, f"{span:016x}", JUDGED, "svc", "otel_genai", "m", "v1", 1.0, "faithfulness", "{}")


async def test_records_written_with_the_items_reach_the_log_once_whatever_the_crash(tmp_path: Path) -> None:
    queue = JudgeQueue(str(tmp_path / "judge_queue.db"), JudgeQueueConfig(), "1")
    queue.enqueue([NewItem(f"{n:016x}", TRACE, "faithfulness", {}) for n in range(3)])
    keys = [item.key for item in queue.lease(3, 30)]
    queue.complete(keys, decisions=[judged(n) for n in range(3)])
    queue.close()
    # the items and their records are in the file together
    queue = JudgeQueue(str(tmp_path / "judge_queue.db"), JudgeQueueConfig(), "1")
    assert [record for _, record in queue.pending_decisions(10)] == [judged(n) for n in range(3)]

    log = DecisionLog(str(tmp_path / "decisions.db"), Telemetry())
    await log.start()
    try:
        # a crash after the log committed and before the outbox forgot: the next start relays them again
        await log.write([record for _, record in queue.pending_decisions(10)])
        relay = DecisionRelay(queue, log)
        assert await relay.relay_once() == 3
        assert await relay.relay_once() == 0
    finally:
        await log.shutdown()
        queue.close()
    assert read_decisions(str(tmp_path / "decisions.db"), TRACE) == [judged(n) for n in range(3)]


async def test_a_failing_log_leaves_the_records_in_the_outbox(tmp_path: Path) -> None:
    queue = JudgeQueue(str(tmp_path / "judge_queue.db"), JudgeQueueConfig(), "1")
    queue.enqueue([NewItem("00000000000000a1", TRACE, "faithfulness", {})])
    queue.complete([item.key for item in queue.lease(1, 30)], decisions=[judged(0xa1)])
    log = DecisionLog(str(tmp_path / "decisions.db"), Telemetry())  # never started: every write fails
    try:
        await DecisionRelay(queue, log).drain()
        assert [record for _, record in queue.pending_decisions(10)] == [judged(0xa1)]
    finally:
        queue.close()
