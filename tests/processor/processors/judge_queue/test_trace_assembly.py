"""Trace assembly: items wait for their trace to finish arriving, and retriever documents from any batch of the
trace become the context of the LLM spans that started after them; memory stays bounded."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracejudge.judge.queue import Document
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.llm_span import Retrieval
from tracejudge.processor.processors.judge_queue.trace_assembly import TraceAssembly, context_for

TRACE = "ab" * 16
ROOT = "01" * 8


def batch(*spans: tuple[str, str, str], retrievals: tuple[Retrieval, ...] = ()) -> TraceBatch:
    """`spans` as (trace id, span id, parent span id), hex."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id, span_id, parent in spans:
        scope.spans.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id),
                        parent_span_id=bytes.fromhex(parent))
    return TraceBatch(request.SerializeToString(), request, len(spans), retrievals=retrievals)


def test_items_wait_for_the_root_span_plus_the_decision_wait_or_at_most_the_longest_wait() -> None:
    assembly = TraceAssembly(decision_wait_s=2.0, max_decision_wait_s=30.0)
    assembly.arrive(batch((TRACE, "02" * 8, ROOT)), [TRACE], now=100.0)
    assert assembly.ready_at(TRACE, 100.0) == 130.0  # no root yet: the longest wait
    arrival = assembly.arrive(batch((TRACE, ROOT, "")), [], now=105.0)  # the root ends: 2 s of quiet, then judge
    assert arrival.holds == {TRACE: 107.0}
    arrival = assembly.arrive(batch((TRACE, "03" * 8, ROOT)), [], now=106.5)  # more spans: the quiet starts again
    assert arrival.holds == {TRACE: 108.5}
    other = "cd" * 16  # a trace whose root came first is ready after the decision wait
    assembly.arrive(batch((other, ROOT, "")), [], now=200.0)
    assert assembly.ready_at(other, 200.5) == 202.5


def test_documents_retrieved_before_the_llm_span_arrives_are_committed_with_its_items() -> None:
    assembly = TraceAssembly(decision_wait_s=2.0, max_decision_wait_s=30.0)
    early = Retrieval(TRACE, "04" * 8, 10, ("Paris is the capital of France.",))
    assert assembly.arrive(batch((TRACE, "04" * 8, ROOT), retrievals=(early,)), [], now=1.0).documents == []
    arrival = assembly.arrive(batch((TRACE, "05" * 8, ROOT)), [TRACE], now=2.0)  # the LLM span is sampled
    assert arrival.documents == [Document(TRACE, "04" * 8, 0, 10, "Paris is the capital of France.")]
    late = Retrieval(TRACE, "06" * 8, 30, ("Later.",))  # after the trace has items: committed at once
    assert assembly.arrive(batch((TRACE, "06" * 8, ROOT), retrievals=(late,)), [], now=3.0).documents == [
        Document(TRACE, "06" * 8, 0, 30, "Later.")]


def test_memory_is_bounded_by_max_traces() -> None:
    assembly = TraceAssembly(decision_wait_s=2.0, max_decision_wait_s=30.0, max_traces=10)
    for i in range(100):
        trace = f"{i:032x}"
        assembly.arrive(batch((trace, ROOT, ""), retrievals=(Retrieval(trace, ROOT, 0, ("doc",)),)), [], now=i)
    assert len(assembly._roots) == 10 and len(assembly._documents) == 10
    assert assembly.arrive(batch((f"{0:032x}", "02" * 8, ROOT)), [f"{0:032x}"], now=101).documents == []
    assert assembly.arrive(batch((f"{99:032x}", "02" * 8, ROOT)), [f"{99:032x}"], now=101).documents != []


def test_context_is_the_spans_own_documents_then_those_retrieved_before_it_started_each_once() -> None:
    documents = [Document(TRACE, "04" * 8, 0, 10, "A"), Document(TRACE, "04" * 8, 1, 10, "own"),
                 Document(TRACE, "07" * 8, 0, 99, "after the LLM span")]
    assert context_for(["own"], documents, start_unix_nano=50) == "own\n\nA"
