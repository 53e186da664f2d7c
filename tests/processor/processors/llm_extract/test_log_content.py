"""The join of LLM spans with the content GenAI log records carry: either may come first, retries add nothing twice,
and what waits is bounded in time and number."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tests.support.host import ComponentHost
from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.requests import export_request
from tests.support.waiting import eventually
from tracejudge.processor.component.errors import RetryableError
from tracejudge.processor.pdata.batch import SignalBatch, TraceBatch
from tracejudge.processor.pdata.llm_span import LlmSpan, Message
from tracejudge.processor.pdata.otlp_codec import decode_protobuf
from tracejudge.processor.pdata.signals import SPECS
from tracejudge.processor.processors.llm_extract.log_content import (
    OPERATION_DETAILS,
    ContentJoin,
    LogContentConfig,
    read_events,
)
from tracejudge.processor.processors.llm_extract.processor import LlmExtractConfig, LlmExtractProcessor
from tracejudge.processor.service.service import Service

TRACE, SPAN = "ab" * 16, "cd" * 8


def value(plain: Any) -> AnyValue:
    if isinstance(plain, dict):
        return AnyValue(kvlist_value={"values": [KeyValue(key=k, value=value(v)) for k, v in plain.items()]})
    if isinstance(plain, (list, tuple)):
        return AnyValue(array_value={"values": [value(v) for v in plain]})
    return AnyValue(int_value=plain) if isinstance(plain, int) else AnyValue(string_value=plain)


def record(name: str, attributes: dict[str, Any] | None = None, body: Any = None, span: str = SPAN,
           legacy_name: bool = False, at: int = 1) -> LogRecord:
    """A GenAI event as the SDK writes it (`legacy_name`: the event name in an `event.name` attribute)."""
    attributes = {**(attributes or {}), **({"event.name": name} if legacy_name else {})}
    log_record = LogRecord(time_unix_nano=at, trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(span),
                           event_name="" if legacy_name else name,
                           attributes=[KeyValue(key=k, value=value(v)) for k, v in attributes.items()])
    if body is not None:
        log_record.body.CopyFrom(value(body))
    return log_record


def logs(*records: LogRecord) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(resource_logs=[{"scope_logs": [{"log_records": list(records)}]}])


DETAILS = record(OPERATION_DETAILS, {
    "gen_ai.operation.name": "chat",
    "gen_ai.system_instructions": [{"type": "text", "content": "Be brief."}],
    "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}],
    "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}],
                                "finish_reason": "stop"}]})


def span(span_id: str = SPAN) -> LlmSpan:
    return LlmSpan(TRACE, span_id, "", "app", "gen_ai", operation="chat", request_model="gpt-4o-mini")


def join(**settings: Any) -> ContentJoin:
    return ContentJoin(LogContentConfig(**settings))


def test_operation_details_complete_a_span_that_waited_for_them() -> None:
    content = join()
    assert content.span_arrived(span(), now=0) is None
    ((waited, done),) = content.content_arrived(read_events(logs(DETAILS)), now=1)
    assert waited == span()
    assert done.input_messages == (Message("system", "Be brief."), Message("user", "Capital of France?"))
    assert (done.output_messages, done.finish_reasons) == ((Message("assistant", "Paris."),), ("stop",))
    assert done.content_source == f"log events ({OPERATION_DETAILS})"
    assert content.waiting == 0


def test_content_that_came_first_completes_its_span_once_it_arrives() -> None:
    content = join()
    assert content.content_arrived(read_events(logs(DETAILS)), now=0) == []
    done = content.peek(span())
    assert done is not None and done.output_text == "Paris."
    assert content.peek(span()) == done  # nothing taken until the span's request is accepted
    content.settle((TRACE, SPAN), now=1)
    assert content.peek(span()) is None


def test_per_message_events_with_content_in_the_body_may_straddle_requests() -> None:
    """OpenLLMetry (use_attributes=False) and older openai-v2: one record per message, the event name possibly in
    an `event.name` attribute."""
    content = join()
    content.span_arrived(span(), now=0)
    first = logs(record("gen_ai.system.message", body={"content": "Be brief."}, legacy_name=True, at=1),
                 record("gen_ai.user.message", body={"content": "Capital of France?"}, at=2))
    assert content.content_arrived(read_events(first), now=1) == []  # no answer yet: still waiting
    choice = record("gen_ai.choice", body={"index": 0, "message": {"content": "Paris."}, "finish_reason": "stop"})
    ((_, done),) = content.content_arrived(read_events(logs(choice)), now=2)
    assert [(m.role, m.content) for m in done.input_messages] == [("system", "Be brief."),
                                                                  ("user", "Capital of France?")]
    assert (done.output_text, done.finish_reasons) == ("Paris.", ("stop",))
    assert done.content_source == "log events (gen_ai.system.message, gen_ai.user.message, gen_ai.choice)"


def test_a_retried_request_adds_no_message_twice() -> None:
    content = join()
    user = logs(record("gen_ai.user.message", body={"content": "Capital of France?"}))
    content.content_arrived(read_events(user), now=0)
    content.content_arrived(read_events(user), now=1)  # the client retried a refused request
    content.content_arrived(read_events(logs(record("gen_ai.choice", body={"message": {"content": "Paris."}}))), 2)
    done = content.peek(span())
    assert done is not None and [m.content for m in done.input_messages] == ["Capital of France?"]


def test_a_span_completed_but_refused_downstream_waits_again_for_the_retry() -> None:
    content = join()
    content.span_arrived(span(), now=0)
    ((waited, _),) = content.content_arrived(read_events(logs(DETAILS)), now=1)
    content.wait_again([waited], now=1)
    assert content.waiting == 1
    ((_, done),) = content.content_arrived(read_events(logs(DETAILS)), now=2)  # the retry
    assert done.output_text == "Paris."


def test_content_for_a_span_that_had_its_own_is_not_kept() -> None:
    content = join()
    content.settle((TRACE, SPAN), now=0)  # SPAN_AND_EVENT: the span came with its content
    content.content_arrived(read_events(logs(DETAILS)), now=1)
    assert content.peek(span()) is None


def test_records_that_name_no_span_or_are_no_genai_event_are_ignored() -> None:
    unjoinable = LogRecord(event_name=OPERATION_DETAILS, body=value("no span ids"))
    app_log = record("", body="order 42 paid")
    assert read_events(logs(unjoinable, app_log)) == {}


def test_waiting_is_bounded_in_time_and_number() -> None:
    content = join(wait=30.0, max_spans=2)
    for i, span_id in enumerate(("01" * 8, "02" * 8, "03" * 8)):
        content.span_arrived(span(span_id), now=i)
    (first,) = list(content.expired(now=3))  # the oldest made room
    assert first[0].span_id == "01" * 8 and "max_spans" in first[1]
    assert list(content.expired(now=31)) == []
    (second,) = list(content.expired(now=31.5))
    assert second[0].span_id == "02" * 8 and second[1] == "no log record carried its content within 30 s"
    assert content.waiting == 1


def test_content_waiting_for_its_span_is_bounded_in_bytes_and_time() -> None:
    content = join(wait=10.0, max_mib=1)
    big = "x" * (600 * 1024)
    for i, span_id in enumerate(("01" * 8, "02" * 8)):
        choice = record("gen_ai.choice", body={"message": {"content": big}}, span=span_id)
        content.content_arrived(read_events(logs(choice)), now=i)
    assert content.peek(span("01" * 8)) is None  # the older one went to keep the total under max_mib
    assert content.peek(span("02" * 8)) is not None
    list(content.expired(now=11.5))
    assert content.peek(span("02" * 8)) is None


PIPELINES = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
  otlp/logs:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  llm_extract:
    log_content: {{wait: 1s}}
exporters:
  otlp:
    endpoint: {endpoint}
    tls: {{insecure: true}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract]
      exporters: [otlp]
    logs:
      receivers: [{logs_receiver}]
      exporters: [otlp]
"""


def _request_without_content() -> ExportTraceServiceRequest:
    """One LLM span whose content was not captured."""
    request = export_request(spans=1, llm_every=1)
    llm = request.resource_spans[0].scope_spans[0].spans[0]
    for kv in list(llm.attributes):
        if kv.key in ("gen_ai.input.messages", "gen_ai.output.messages"):
            llm.attributes.remove(kv)
    return request


async def _export_span_without_content(target: str) -> tuple[str, str]:
    request = _request_without_content()
    llm = request.resource_spans[0].scope_spans[0].spans[0]
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.unary_unary(SPECS["traces"].grpc_method)(request.SerializeToString(), timeout=10)
    return llm.trace_id.hex(), llm.span_id.hex()


async def _decisions(service: Service, trace: str, span_id: str) -> list[str]:
    return [d.decision for d in await service.decisions.for_trace(trace) if d.span_id == span_id]


async def test_a_span_waits_for_content_when_a_logs_pipeline_shares_its_receiver_then_is_given_up() -> None:
    async with CaptureServer() as downstream, \
            running(PIPELINES.format(endpoint=downstream.endpoint, logs_receiver="otlp")) as service:
        trace, span_id = await _export_span_without_content(grpc_target(service))
        assert await _decisions(service, trace, span_id) == ["awaiting content"]
        assert metric(service, "tracejudge_llm_spans_awaiting_content", processor="llm_extract") == 1
        assert metric(service, "tracejudge_llm_spans_without_content_total", convention="gen_ai") == 0

        async def given_up() -> bool:  # after log_content.wait
            return await _decisions(service, trace, span_id) == ["awaiting content", "not judgeable: no content"]

        await eventually(given_up, timeout_s=10, what="the span given up on")
        (gave_up,) = [d for d in await service.decisions.for_trace(trace) if "no content" in d.decision]
        assert "within 1 s" in gave_up.detail
        assert metric(service, "tracejudge_llm_spans_without_content_total", convention="gen_ai") == 1


async def test_a_span_does_not_wait_when_no_logs_pipeline_shares_its_receiver() -> None:
    async with CaptureServer() as downstream, \
            running(PIPELINES.format(endpoint=downstream.endpoint, logs_receiver="otlp/logs")) as service:
        trace, span_id = await _export_span_without_content(grpc_target(service))
        assert await _decisions(service, trace, span_id) == ["not judgeable: no content"]
        assert metric(service, "tracejudge_llm_spans_without_content_total", convention="gen_ai") == 1


def _span_without_content() -> TraceBatch:
    return decode_protobuf(_request_without_content().SerializeToString(), "otlp").batch  # type: ignore[return-value]


def _details_for(batch: TraceBatch) -> SignalBatch:
    span = batch.request.resource_spans[0].scope_spans[0].spans[0]
    details = LogRecord()
    details.CopyFrom(DETAILS)
    details.trace_id, details.span_id = span.trace_id, span.span_id
    payload = logs(details).SerializeToString()
    return decode_protobuf(payload, "otlp", "logs").batch  # type: ignore[return-value]


class Downstream:
    """The stages after llm_extract: records what reaches them; `during` runs while the first batch is with them,
    `refuse_late` refuses batches with nothing to forward."""

    def __init__(self) -> None:
        self.batches: list[TraceBatch] = []
        self.during: Callable[[], Awaitable[None]] | None = None
        self.refuse_late = False

    async def consume(self, batch: TraceBatch) -> None:
        if self.refuse_late and not batch.span_count:
            raise RetryableError("sending queue full")
        self.batches.append(batch)
        if self.during is not None:
            during, self.during = self.during, None
            await during()


@pytest.mark.parametrize("refused", [False, True])
async def test_content_that_arrives_while_its_span_is_on_its_way_completes_it_after(refused: bool) -> None:
    host = ComponentHost()
    downstream = Downstream()
    extract = LlmExtractProcessor(host.settings("llm_extract"), LlmExtractConfig(), downstream)
    extract.attach_logs()
    spans = _span_without_content()
    downstream.during = lambda: extract.consume_logs(_details_for(spans))  # the span is not waiting yet
    downstream.refuse_late = refused
    await host.decisions.start()
    try:
        await extract.consume(spans)  # accepted either way: a refusal now would duplicate what was forwarded
        trace = spans.request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        fates = [d.decision for d in await host.decisions.for_trace(trace)]
    finally:
        await host.decisions.shutdown()
    if refused:
        assert [b.span_count for b in downstream.batches] == [1]
        assert fates == ["awaiting content", "dropped: not queued after its content came (RetryableError)"]
    else:
        late = downstream.batches[1]
        assert (late.span_count, late.llm_spans[0].output_text) == (0, "Paris.")
        assert fates == ["awaiting content", "extracted"]
