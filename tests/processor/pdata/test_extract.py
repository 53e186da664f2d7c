"""Extraction of LLM spans from OTLP requests built by the real OTel SDK and its own OTLP encoder."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata.conventions import TRIGGER_KEYS
from tracejudge.processor.pdata.extract import LLM_MARKERS, AttributeMap, Extractor, may_contain_llm
from tracejudge.processor.pdata.llm_span import LlmSpan, Message

T0 = 1_700_000_000_000_000_000
Attributes = Mapping[str, Any]


class Recorder:
    """Spans recorded through the SDK, encoded exactly as its OTLP exporters would send them."""

    def __init__(self, resource: Attributes | None = None) -> None:
        self._exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "checkout", **(resource or {})}))
        provider.add_span_processor(SimpleSpanProcessor(self._exporter))
        self._tracer = provider.get_tracer("tests")

    def span(
        self,
        attributes: Attributes,
        *,
        name: str = "llm call",
        events: Sequence[tuple[str, Attributes]] = (),
        status: Status | None = None,
    ) -> None:
        span = self._tracer.start_span(name, attributes=attributes, start_time=T0)
        for event_name, event_attributes in events:
            span.add_event(event_name, event_attributes, timestamp=T0 + 1_000)
        if status is not None:
            span.set_status(status)
        span.end(end_time=T0 + 1_500_000_000)

    def request(self) -> ExportTraceServiceRequest:
        return encode_spans(self._exporter.get_finished_spans())


def extract(recorder: Recorder, extractor: Extractor | None = None) -> tuple[LlmSpan, ...]:
    """Extract, checking on the way that the prescan agrees and that the request is left as it was."""
    extractor = extractor or Extractor()
    request = recorder.request()
    payload = request.SerializeToString()
    spans = extractor.extract(request)
    assert request.SerializeToString() == payload
    if spans:
        assert may_contain_llm(payload, extractor.markers)
    return spans


def one(recorder: Recorder, extractor: Extractor | None = None) -> LlmSpan:
    spans = extract(recorder, extractor)
    assert len(spans) == 1, spans
    return spans[0]


GEN_AI_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.usage.input_tokens": 42,
    "gen_ai.usage.output_tokens": 7,
    "openai.response.system_fingerprint": "fp_1",
    "gen_ai.conversation.id": "conv-9",
    "gen_ai.prompt.name": "capitals",
    "gen_ai.prompt.version": "v3",
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
    "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}]
    ),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "Paris."}, {"type": "tool_call", "name": "lookup"}],
                "finish_reason": "stop",
            }
        ]
    ),
}


def test_otel_genai_span_is_normalised_with_every_field() -> None:
    recorder = Recorder(resource={"deployment.environment": "prod", "tier": "resource"})
    recorder.span({**GEN_AI_CHAT, "tier": "span"}, status=Status(StatusCode.ERROR, "rate limited"))

    span = one(recorder)

    assert span.convention == "gen_ai"
    assert (span.operation, span.provider) == ("chat", "openai")
    assert (span.request_model, span.response_model) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (span.model_fingerprint, span.response_id) == ("fp_1", "chatcmpl-1")
    assert (span.prompt_name, span.prompt_version, span.conversation_id) == ("capitals", "v3", "conv-9")
    assert (span.input_tokens, span.output_tokens, span.finish_reasons) == (42, 7, ("stop",))
    assert span.input_messages == (Message("system", "Be brief."), Message("user", "Capital of France?"))
    assert span.output_messages == (Message("assistant", "Paris."),)
    assert (span.status, span.status_message, span.service) == ("error", "rate limited", "checkout")
    assert span.latency_s == pytest.approx(1.5)
    assert len(span.trace_id) == 32 and span.trace_id == span.trace_id.lower()
    assert len(span.span_id) == 16 and span.parent_span_id == ""
    assert span.attributes["tier"] == "span" and span.attributes["deployment.environment"] == "prod"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert isinstance(span.attributes, MappingProxyType)


def test_deprecated_genai_names_are_read() -> None:
    recorder = Recorder()
    recorder.span(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 3,
            "gen_ai.openai.response.system_fingerprint": "fp_old",
            "gen_ai.prompt": json.dumps([{"role": "user", "content": "Hi"}]),
            "gen_ai.completion": json.dumps([{"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]),
        }
    )

    span = one(recorder)

    assert (span.convention, span.provider, span.request_model) == ("gen_ai", "openai", "gpt-4")
    assert (span.input_tokens, span.output_tokens, span.model_fingerprint) == (10, 3, "fp_old")
    assert span.input_messages == (Message("user", "Hi"),)
    assert span.output_messages == (Message("assistant", "Hello"),)


def test_indexed_prompt_and_completion_attributes_are_read_in_index_order() -> None:
    recorder = Recorder()
    recorder.span(
        {
            "gen_ai.system": "OpenAI",
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "second",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "first",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "answer",
            "gen_ai.completion.0.finish_reason": "length",
            "gen_ai.openai.system_fingerprint": "fp_idx",
            "traceloop.prompt.key": "greeter",
            "traceloop.prompt.version": 4,
            "llm.usage.total_tokens": 9,
        }
    )

    span = one(recorder)

    assert span.convention == "gen_ai"  # gen_ai.system + a model: GenAI is preferred over the traceloop aliases
    assert span.input_messages == (Message("system", "first"), Message("user", "second"))
    assert span.output_messages == (Message("assistant", "answer"),)
    assert span.finish_reasons == ("length",)
    assert (span.model_fingerprint, span.prompt_name, span.prompt_version) == ("fp_idx", "greeter", "4")


def test_openllmetry_names_before_genai_are_an_openllmetry_span() -> None:
    recorder = Recorder()
    recorder.span(
        {
            "llm.request.type": "completion",
            "llm.vendor": "OpenAI",
            "llm.request.model": "gpt-3.5-turbo-instruct",
            "llm.response.model": "gpt-3.5-turbo-instruct-0914",
            "llm.prompts.0.content": "Say hi",
            "llm.completions.0.content": "hi",
            "llm.usage.prompt_tokens": 2,
            "llm.usage.completion_tokens": 1,
        }
    )

    span = one(recorder)

    assert (span.convention, span.operation, span.provider) == ("openllmetry", "text_completion", "OpenAI")
    assert (span.request_model, span.response_model) == ("gpt-3.5-turbo-instruct", "gpt-3.5-turbo-instruct-0914")
    assert span.input_messages == (Message("user", "Say hi"),)
    assert span.output_messages == (Message("assistant", "hi"),)
    assert (span.input_tokens, span.output_tokens) == (2, 1)


def test_content_in_span_events_of_older_semconv_is_read() -> None:
    recorder = Recorder()
    base = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "m"}
    recorder.span(
        base,
        events=[
            ("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"role": "user", "content": "Q1"}])}),
            ("gen_ai.content.completion", {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "A1"}])}),
        ],
    )
    recorder.span(
        base,
        events=[
            ("gen_ai.system.message", {"gen_ai.event.content": json.dumps({"content": "Be brief."})}),
            ("gen_ai.user.message", {"gen_ai.event.content": json.dumps({"role": "user", "content": "Q2"})}),
            (
                "gen_ai.choice",
                {"gen_ai.event.content": json.dumps({"finish_reason": "stop", "message": {"content": "A2"}})},
            ),
        ],
    )

    first, second = extract(recorder)

    assert (first.input_text, first.output_text) == ("Q1", "A1")
    assert second.input_messages == (Message("system", "Be brief."), Message("user", "Q2"))
    assert second.output_messages == (Message("assistant", "A2"),)
    assert second.finish_reasons == ("stop",)


OPENINFERENCE_LLM = {
    "openinference.span.kind": "LLM",
    "llm.provider": "openai",
    "llm.system": "openai",
    "llm.model_name": "gpt-4o-2024-08-06",
    "llm.invocation_parameters": json.dumps({"model": "gpt-4o", "temperature": 0}),
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.contents.0.message_content.type": "text",
    "llm.input_messages.0.message.contents.0.message_content.text": "Describe ",
    "llm.input_messages.0.message.contents.1.message_content.type": "image",
    "llm.input_messages.0.message.contents.2.message_content.text": "this.",
    "llm.token_count.prompt": 30,
    "llm.token_count.completion": 5,
    "llm.prompt_template.version": "tmpl-2",
    "retrieval.documents.0.document.content": "doc zero",
    "retrieval.documents.1.document.content": "doc one",
    "session.id": "session-1",
    "output.value": "A cat.",
    "output.mime_type": "text/plain",
}


def test_openinference_llm_span_is_normalised() -> None:
    recorder = Recorder()
    recorder.span(OPENINFERENCE_LLM, status=Status(StatusCode.OK))

    span = one(recorder)

    assert (span.convention, span.provider, span.status) == ("openinference", "openai", "ok")
    assert (span.request_model, span.response_model) == ("gpt-4o", "gpt-4o-2024-08-06")
    assert span.input_messages == (Message("user", "Describe this."),)
    assert span.output_messages == (Message("assistant", "A cat."),)
    assert (span.input_tokens, span.output_tokens, span.prompt_version) == (30, 5, "tmpl-2")
    assert span.documents == ("doc zero", "doc one")
    assert span.conversation_id == "session-1"


def test_openinference_json_values_stand_in_for_messages_and_redacted_values_are_no_content() -> None:
    body = {"id": "chatcmpl-7", "model": "gpt-4o-x", "system_fingerprint": "fp_oi", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello!"}}]}  # fmt: skip
    recorder = Recorder()
    recorder.span(
        {
            "openinference.span.kind": "LLM",
            "input.value": json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
            "input.mime_type": "application/json",
            "output.value": json.dumps(body),
            "output.mime_type": "application/json",
        }
    )
    recorder.span({"openinference.span.kind": "LLM", "input.value": "__REDACTED__", "output.value": "__REDACTED__"})

    shown, hidden = extract(recorder)

    assert shown.input_messages == (Message("user", "Hi"),)
    assert shown.output_messages == (Message("assistant", "Hello!"),)
    assert (shown.response_id, shown.model_fingerprint, shown.response_model) == ("chatcmpl-7", "fp_oi", "gpt-4o-x")
    assert shown.finish_reasons == ("stop",)
    assert (hidden.input_messages, hidden.output_messages, hidden.has_content) == ((), (), False)


@pytest.mark.parametrize(
    "attributes",
    [
        {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "d", "llm.model_name": "m"},
        {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small"},
        {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai", "gen_ai.request.model": "te-3"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"},
        {"langfuse.observation.type": "span", "langfuse.observation.input": "x"},
        {"llm.request.type": "embedding", "gen_ai.system": "openai", "gen_ai.request.model": "ada"},
        {"openinference.span.kind": "RETRIEVER", "gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
        {"gen_ai.provider.name": "openai"},  # a provider but no model: not recognisably a call
        {"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat/completions"},
    ],
)
def test_spans_that_are_not_llm_calls_yield_nothing(attributes: Attributes) -> None:
    recorder = Recorder()
    recorder.span(attributes)

    assert extract(recorder) == ()


def test_langfuse_generation_is_normalised() -> None:
    recorder = Recorder()
    recorder.span(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "claude-3-5-sonnet",
            "langfuse.observation.prompt.name": "support-answer",
            "langfuse.observation.prompt.version": 12,
            "langfuse.observation.input": json.dumps([{"role": "user", "content": "Where is my order?"}]),
            "langfuse.observation.output": json.dumps({"role": "assistant", "content": "It ships today."}),
            "langfuse.observation.usage_details": json.dumps({"input": 20, "output": 6, "total": 26}),
            "langfuse.session.id": "lf-session",
            "langfuse.trace.name": "support",
        }
    )

    span = one(recorder)

    assert (span.convention, span.request_model) == ("langfuse", "claude-3-5-sonnet")
    assert (span.prompt_name, span.prompt_version, span.conversation_id) == ("support-answer", "12", "lf-session")
    assert span.input_messages == (Message("user", "Where is my order?"),)
    assert span.output_messages == (Message("assistant", "It ships today."),)
    assert (span.input_tokens, span.output_tokens) == (20, 6)


def test_langfuse_output_that_is_not_a_message_is_kept_as_text() -> None:
    recorder = Recorder()
    output = json.dumps({"answer": 42})
    recorder.span({"langfuse.observation.model.name": "m", "langfuse.observation.output": output})

    span = one(recorder)

    assert span.output_messages == (Message("assistant", output),)


CUSTOM = AttributeMap(
    {
        "request_model": "app.llm.model",
        "input": "app.llm.prompt",
        "output": "app.llm.answer",
        "prompt_version": "app.prompt.sha",
        "service": "app.graph",
        "output_tokens": "app.llm.tokens_out",
    }
)


def test_custom_map_recognises_spans_no_convention_describes() -> None:
    recorder = Recorder(resource={"app.graph": "refund-graph"})
    recorder.span(
        {
            "app.llm.model": "local-llama",
            "app.llm.prompt": "Refund order 7?",
            "app.llm.answer": "Yes.",
            "app.prompt.sha": "3f2a",
            "app.llm.tokens_out": "2",
        }
    )
    extractor = Extractor(CUSTOM)
    payload = recorder.request().SerializeToString()

    span = one(recorder, extractor)

    assert span.convention == "custom"
    assert (span.request_model, span.prompt_version, span.service) == ("local-llama", "3f2a", "refund-graph")
    assert span.input_messages == (Message("user", "Refund order 7?"),)
    assert span.output_messages == (Message("assistant", "Yes."),)
    assert span.output_tokens == 2
    assert not may_contain_llm(payload) and may_contain_llm(payload, extractor.markers)
    assert Extractor().extract(recorder.request()) == ()


def test_custom_map_overrides_what_a_convention_gave() -> None:
    recorder = Recorder()
    recorder.span({**GEN_AI_CHAT, "app.prompt.sha": "sha-9"})
    recorder.span(GEN_AI_CHAT)  # without the custom attribute the convention's value stays

    overridden, kept = extract(recorder, Extractor(CUSTOM))

    assert (overridden.convention, overridden.prompt_version) == ("gen_ai", "sha-9")
    assert overridden.output_messages == (Message("assistant", "Paris."),)
    assert kept.prompt_version == "v3"


def test_a_recognised_span_without_content_is_still_a_record() -> None:
    recorder = Recorder()
    no_content = {k: v for k, v in GEN_AI_CHAT.items() if "messages" not in k and "instructions" not in k}
    recorder.span(no_content)

    span = one(recorder)

    assert (span.has_content, span.input_messages, span.output_messages) == (False, (), ())
    assert (span.request_model, span.input_tokens, span.finish_reasons) == ("gpt-4o-mini", 42, ("stop",))


def test_only_llm_spans_are_extracted_in_request_order() -> None:
    recorder = Recorder()
    recorder.span({"http.route": "/ask"}, name="GET /ask")
    recorder.span(GEN_AI_CHAT, name="chat a")
    recorder.span(OPENINFERENCE_LLM, name="chat b")
    recorder.span({"db.system": "sqlite"}, name="SELECT")

    assert [s.name for s in extract(recorder)] == ["chat a", "chat b"]


def test_retriever_spans_of_both_conventions_yield_their_documents() -> None:
    recorder = Recorder()
    recorder.span({"openinference.span.kind": "RETRIEVER", "retrieval.documents.1.document.content": "second",
                   "retrieval.documents.0.document.content": "first", "retrieval.documents.0.document.id": "d0"},
                  name="retrieve")
    recorder.span({"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb",
                   "gen_ai.retrieval.documents": json.dumps([{"id": "a", "content": "GenAI doc"}, {"id": "b"}])},
                  name="retrieval kb")
    recorder.span({"gen_ai.operation.name": "retrieval"}, name="retrieval without captured documents")
    recorder.span(GEN_AI_CHAT, name="chat")
    request = recorder.request()
    llm_spans, retrievals, _ = Extractor().extract_all(request, request.SerializeToString())
    assert [s.name for s in llm_spans] == ["chat"]
    assert [r.documents for r in retrievals] == [("first", "second"), ("GenAI doc",)]
    assert retrievals[0].start_unix_nano == T0 and len(retrievals[0].trace_id) == 32


def test_prescan_finds_no_marker_in_requests_without_llm_spans() -> None:
    recorder = Recorder()
    recorder.span({"http.route": "/ask", "llm": "not a key we look for"}, name="GET /ask")

    assert not may_contain_llm(recorder.request().SerializeToString())


def test_every_key_that_makes_a_span_a_candidate_contains_a_prescan_marker() -> None:
    for key in TRIGGER_KEYS:
        assert any(marker in key.encode() for marker in LLM_MARKERS), key


def test_attribute_map_validation_names_the_yaml_path() -> None:
    with pytest.raises(ConfigError) as error:
        AttributeMap({"prompt_versoin": "app.sha", "input": ""}).validate("processors.extract.attributes")

    assert error.value.problems == [
        "processors.extract.attributes.prompt_versoin: unknown field (known: " + ", ".join(AttributeMap.FIELDS) + ")",
        "processors.extract.attributes.input: must be the name of a span or resource attribute",
    ]
    AttributeMap({"prompt_version": "app.sha"}).validate("attributes")
    with pytest.raises(ConfigError):
        Extractor(AttributeMap({"model": "app.model"}))


def test_extraction_cost_per_span_is_small_on_a_mostly_non_llm_request() -> None:
    recorder = Recorder()
    for i in range(512):
        if i % 10 == 0:
            recorder.span(GEN_AI_CHAT)
        else:
            recorder.span({f"http.attribute_{a}": f"value {a}" for a in range(8)}, name=f"op {i}")
    request = recorder.request()
    extractor = Extractor()

    started = time.perf_counter()
    spans = extractor.extract(request)
    elapsed_s = time.perf_counter() - started

    assert len(spans) == 52
    assert elapsed_s / 512 < 200e-6  # measured ~10 µs/span; the bound only catches a pathological regression
