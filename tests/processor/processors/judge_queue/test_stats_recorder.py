"""The stats recorder between the judge workers and the exporters: judged verdicts become stored evaluations,
unjudged ones do not, and an alert span the exporters refuse is sent again with the next batch, once accepted."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.queue import JudgeItem
from tracejudge.judge.verdict import Verdict
from tracejudge.processor.component.errors import RetryableError
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.judge_queue.stats_recorder import StatsRecorder
from tracejudge.stats.config import StatsConfig


class FlakyExporters:
    """Refuses the first `refusals` batches as a full sending queue would, then keeps what it gets."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.accepted: list[ExportTraceServiceRequest] = []

    async def consume(self, batch: TraceBatch) -> None:
        if self.refusals:
            self.refusals -= 1
            raise RetryableError("sending queue full")
        self.accepted.append(ExportTraceServiceRequest.FromString(batch.payload))


def judged(i: int, score: float | None, fingerprint: str) -> tuple[JudgeItem, CascadeVerdict]:
    body = {"service": "shop", "prompt_version": "v1", "request_model": "gpt-4o", "response_model": "gpt-4o-2025",
            "model_fingerprint": fingerprint, "probability": 1.0, "stratum": "uniform", "in_uniform": True,
            "start_unix_nano": i * 10**9, "end_unix_nano": i * 10**9 + 5 * 10**8, "input_tokens": 40,
            "output_tokens": 10, "query": "Where is my order?", "response": "It ships today."}
    verdict = Verdict("relevancy", score, "pass" if score and score >= 0.5 else "fail", tier="local",
                      error_type="" if score is not None else "timeout")
    return JudgeItem(i, f"{i:016x}", f"{i:032x}", "relevancy", "1", body, 1), CascadeVerdict(verdict)


def alert_spans(exporters: FlakyExporters) -> list[str]:
    return [span.name for request in exporters.accepted for rs in request.resource_spans
            for ss in rs.scope_spans for span in ss.spans]


async def test_refused_alert_spans_go_out_with_the_next_batch(tmp_path: Path) -> None:
    exporters = FlakyExporters(refusals=1)
    recorder = StatsRecorder(tmp_path / "stats.db", StatsConfig(warmup=50), exporters, "1")
    steady = [judged(i, 0.2 if i % 10 == 0 else 0.9, "fp_a") for i in range(60)]
    worse = [judged(i, 0.2 if i % 2 else 0.9, "fp_b") for i in range(60, 120)]
    assert await recorder.record(steady) == []
    raised = []
    for start in range(0, 60, 10):
        raised += await recorder.record(worse[start:start + 10])
    assert [a.cause for a in raised] == ["model_change"]
    assert alert_spans(exporters) == ["tracejudge.alert"]  # refused once, delivered with a later batch
    assert recorder.tracker.store.undelivered() == []
    await recorder.record([judged(200, 0.9, "fp_b")])
    assert alert_spans(exporters) == ["tracejudge.alert"]  # and only once
    await recorder.close()


async def test_only_judged_verdicts_become_evaluations(tmp_path: Path) -> None:
    recorder = StatsRecorder(tmp_path / "stats.db", StatsConfig(), FlakyExporters(0), "1")
    await recorder.record([judged(1, 0.9, "fp_a"), judged(2, None, "fp_a")])
    (batch,) = list(recorder.tracker.store.evaluations())
    (evaluation,) = batch
    assert (evaluation.span_id, evaluation.latency_s, evaluation.tokens, evaluation.model) == (
        f"{1:016x}", 0.5, 50, "gpt-4o")
    await recorder.close()


async def test_drift_reads_the_users_question_not_the_system_prompt(tmp_path: Path) -> None:
    recorder = StatsRecorder(tmp_path / "stats.db", StatsConfig(), FlakyExporters(0), "1")
    item, verdict = judged(1, 0.9, "fp_a")
    item.body.update(query="You are a helpful shop assistant.\nWhere is my order?", question="Where is my order?")
    await recorder.record([(item, verdict)])
    (batch,) = list(recorder.tracker.store.evaluations())
    assert batch[0].query_words == 4
    await recorder.close()


async def test_a_span_time_past_the_stores_integers_is_recorded_not_fatal(tmp_path: Path) -> None:
    """OTLP times are uint64; a start time >= 2^63 used to raise OverflowError in the store on every retry."""
    recorder = StatsRecorder(tmp_path / "stats.db", StatsConfig(), FlakyExporters(refusals=0), "1")
    item, verdict = judged(1, 0.9, "fp_a")
    item.body.update(start_unix_nano=2**64 - 1, end_unix_nano=2**64 - 1)
    await recorder.record([(item, verdict)])
    (stored,) = recorder.tracker.store.trace_evaluations(item.trace_id)
    assert stored.time_unix_nano == 2**63 - 1 and stored.score == 0.9
    await recorder.close()
