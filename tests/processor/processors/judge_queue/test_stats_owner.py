"""Between the judge workers and the exporters: judged verdicts become stored evaluations (unjudged ones do not), the
one owner of the statistics observes what any writer stored, an alert span the exporters refuse is sent again
with the next round, once accepted, and a standby takes over from the last checkpoint when the owner goes."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.waiting import eventually
from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.queue import JudgeItem
from tracejudge.judge.verdict import Verdict
from tracejudge.processor.component.errors import RetryableError
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.judge_queue.evaluation_writer import EvaluationWriter
from tracejudge.processor.processors.judge_queue.stats_owner import StatsOwner
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.store import StatsStore


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


def writer(path: Path) -> EvaluationWriter:
    return EvaluationWriter(StatsStore(path), "1")


async def caught_up(owner: StatsOwner) -> None:
    await eventually(owner.caught_up, timeout_s=10, what="the owner observing every evaluation")


async def test_refused_alert_spans_go_out_with_the_next_round(tmp_path: Path) -> None:
    exporters = FlakyExporters(refusals=1)
    path = tmp_path / "stats.db"
    owner = StatsOwner(lambda: StatsStore(path), StatsConfig(warmup=50), exporters)
    await owner.start()
    workers = [writer(path), writer(path)]  # as two worker processes: each its own connection
    await workers[0].record([judged(i, 0.2 if i % 10 == 0 else 0.9, "fp_a") for i in range(60)])
    await caught_up(owner)
    for start in range(60, 120, 10):
        await workers[start // 10 % 2].record([judged(i, 0.2 if i % 2 else 0.9, "fp_b")
                                               for i in range(start, start + 10)])
    await eventually(lambda: alert_spans(exporters) == ["tracejudge.alert"], timeout_s=10,
                     what="the alert span, refused once, delivered with a later round")
    await caught_up(owner)
    await workers[1].record([judged(200, 0.9, "fp_b")])
    await caught_up(owner)
    assert alert_spans(exporters) == ["tracejudge.alert"]  # and only once
    await owner.shutdown()
    store = StatsStore(path)
    assert [a.cause for a in store.alerts()] == ["model_change"] and store.count("evaluations") == 121
    store.close()
    for w in workers:
        w.close()


async def test_one_owner_at_a_time_and_a_standby_takes_over_from_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "stats.db"
    first, second = (StatsOwner(lambda: StatsStore(path), StatsConfig(warmup=50), FlakyExporters(0))
                     for _ in range(2))
    await first.start()
    await second.start()
    await eventually(lambda: first.owning or second.owning, what="one of them owning the statistics")
    owner, standby = (first, second) if first.owning else (second, first)
    w = writer(path)
    await w.record([judged(i, 0.9, "fp_a") for i in range(30)])
    await caught_up(owner)
    assert not await standby.caught_up() and not standby.owning
    await owner.shutdown()
    await w.record([judged(i, 0.9, "fp_a") for i in range(30, 40)])
    await caught_up(standby)
    assert standby.owning
    await standby.shutdown()
    w.close()


async def test_only_judged_verdicts_become_evaluations(tmp_path: Path) -> None:
    w = writer(tmp_path / "stats.db")
    await w.record([judged(1, 0.9, "fp_a"), judged(2, None, "fp_a")])
    (batch,) = list(w.store.evaluations())
    (evaluation,) = batch
    assert (evaluation.span_id, evaluation.latency_s, evaluation.tokens, evaluation.model) == (
        f"{1:016x}", 0.5, 50, "gpt-4o")
    w.close()


async def test_drift_reads_the_users_question_not_the_system_prompt(tmp_path: Path) -> None:
    w = writer(tmp_path / "stats.db")
    item, verdict = judged(1, 0.9, "fp_a")
    item.body.update(query="You are a helpful shop assistant.\nWhere is my order?", question="Where is my order?")
    await w.record([(item, verdict)])
    (batch,) = list(w.store.evaluations())
    assert batch[0].query_words == 4
    w.close()


async def test_a_span_time_past_the_stores_integers_is_recorded_not_fatal(tmp_path: Path) -> None:
    """OTLP times are uint64; a start time >= 2^63 used to raise OverflowError in the store on every retry."""
    w = writer(tmp_path / "stats.db")
    item, verdict = judged(1, 0.9, "fp_a")
    item.body.update(start_unix_nano=2**64 - 1, end_unix_nano=2**64 - 1)
    await w.record([(item, verdict)])
    (stored,) = w.store.trace_evaluations(item.trace_id)
    assert stored.time_unix_nano == 2**63 - 1 and stored.score == 0.9
    w.close()
