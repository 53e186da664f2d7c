"""Grounding in the prompt: a "Context:" block (or <context> tags) in the system prompt or a user message is the
judge's context when the trace retrieved nothing, and the decision record says so."""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from tests.processor.processors.judge_queue.test_stage import EXPORT, VERDICT, judging_config
from tests.support.openai_server import OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.requests import export_request
from tests.support.waiting import eventually
from tracejudge.processor.pdata.llm_span import Message
from tracejudge.processor.processors.judge_queue.prompt_context import DEFAULT_MARKERS, prompt_context

FACTS = "Paris is the capital of France.\nIt has 2.1 million inhabitants."


def test_a_context_block_in_the_system_prompt_ends_where_the_next_part_begins() -> None:
    messages = [Message("system", f"Answer only from the context.\nContext:\n{FACTS}\nQuestion: see below"),
                Message("user", "What is the capital of France?")]
    assert prompt_context(messages, DEFAULT_MARKERS) == (FACTS, "system prompt (Context:)")


def test_tagged_documents_in_a_user_message_count_too() -> None:
    messages = [Message("user", f"<documents>{FACTS}</documents>\nWhat is the capital?")]
    assert prompt_context(messages, DEFAULT_MARKERS) == (FACTS, "user message (<documents>)")


def test_a_prompt_without_a_marker_has_no_context() -> None:
    assert prompt_context([Message("system", "Be brief."), Message("user", "Hi")], DEFAULT_MARKERS) == ("", "")
    assert prompt_context([Message("system", f"Context: {FACTS}")], ()) == ("", "")  # markers turned off


async def test_the_judge_reads_grounding_from_the_prompt_and_the_record_says_so(tmp_path: Path) -> None:
    request = export_request(spans=1, llm_every=1)
    llm = request.resource_spans[0].scope_spans[0].spans[0]
    for kv in llm.attributes:
        if kv.key == "gen_ai.input.messages":
            kv.value.string_value = json.dumps([
                {"role": "system", "parts": [{"type": "text", "content": f"Use the context.\nContext:\n{FACTS}"}]},
                {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}])
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy, \
            running(judging_config(downstream.endpoint, heavy.base_url, tmp_path)) as service, \
            grpc.aio.insecure_channel(grpc_target(service)) as channel:
        await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)

        async def faithfulness() -> list[str]:
            return [d.detail for d in await service.decisions.for_trace(llm.trace_id.hex())
                    if d.metric == "faithfulness" and d.decision == "judged"]

        await eventually(faithfulness, timeout_s=20, what="faithfulness judged")
        (detail,) = await faithfulness()
    assert json.loads(detail)["context"] == "prompt: system prompt (Context:)"
    asked = next(r for r in heavy.requests if "every claim" in r["messages"][0]["content"])
    assert json.loads(asked["messages"][1]["content"])["context"] == FACTS
