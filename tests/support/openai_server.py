"""A real loopback HTTP server speaking the OpenAI Chat Completions API, with deterministic canned answers and
scripted faults (`fail_next`: a status with headers and body, or a delay; `refuse_json_schema`: answer 400 to
`response_format: json_schema`, as servers without structured output do).

async with OpenAiServer(Completion(content="Paris.")) as server:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test")
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Completion:
    """What the server answers; `model=""` echoes the request's model. Streams split `content` into words."""

    content: str = "Paris is the capital of France."
    model: str = "gpt-4o-mini-2024-07-18"
    id: str = "chatcmpl-canned-0001"
    system_fingerprint: str | None = "fp_canned01"
    finish_reason: str = "stop"
    prompt_tokens: int = 12
    completion_tokens: int = 7
    created: int = 1_700_000_000

    @property
    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": total}


@dataclass(frozen=True, slots=True)
class Fault:
    status: int
    headers: dict[str, str]
    message: str
    delay_s: float


# One fixed answer, or one chosen from the parsed request body.
Answer = Completion | Callable[[dict[str, Any]], Completion]


class OpenAiServer:
    """Serves `POST /v1/chat/completions` on 127.0.0.1 at a free port; `requests` holds every body received."""

    def __init__(self, answer: Answer | None = None) -> None:
        self._answer: Answer = answer if answer is not None else Completion()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.requests: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # time.monotonic() of each request, for rate limits
        self._faults: collections.deque[Fault] = collections.deque()
        self.refuse_json_schema = False

    def fail_next(self, status: int, headers: dict[str, str] | None = None, message: str = "scripted fault",
                  delay_s: float = 0.0, times: int = 1) -> None:
        """The next `times` requests get `status` (after `delay_s`); status 200 with a delay just delays."""
        self._faults.extend([Fault(status, headers or {}, message, delay_s)] * times)

    def clear_faults(self) -> None:
        """Answer normally from now on (requests already waiting out a delay still get their fault)."""
        self._faults.clear()

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client as `base_url`."""
        if self._runner is None:
            raise RuntimeError("the server is not running: use `async with OpenAiServer(...)` or call start()")
        return f"http://127.0.0.1:{self._port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)  # calls still held by a scripted delay: drop
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def shutdown(self) -> None:
        """Idempotent; safe without start()."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> OpenAiServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return _error(400, "`model` and a list of `messages` are required")
        self.requests.append(body)
        self.received_at.append(time.monotonic())
        if self._faults:
            fault = self._faults.popleft()
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)  # a slow server, for client timeouts
            if fault.status != 200:
                return _error(fault.status, fault.message, fault.headers)
        if self.refuse_json_schema and (body.get("response_format") or {}).get("type") == "json_schema":
            return _error(400, "response_format json_schema is not supported by this server")
        answer = self._answer(body) if callable(self._answer) else self._answer
        if not answer.model:
            answer = replace(answer, model=str(body["model"]))
        choices = int(body.get("n") or 1)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, answer, choices, include_usage)
        return web.json_response(_completion(answer, choices))


def _completion(answer: Completion, choices: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": answer.content, "refusal": None}
    return {
        **_envelope(answer, "chat.completion"),
        "choices": [
            {"index": i, "message": message, "finish_reason": answer.finish_reason, "logprobs": None}
            for i in range(choices)
        ],
        "usage": answer.usage,
    }


async def _stream(request: web.Request, answer: Completion, choices: int, include_usage: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for chunk in _chunks(answer, choices, include_usage):
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _chunks(answer: Completion, choices: int, include_usage: bool) -> Iterator[dict[str, Any]]:
    """Role first, then the content word by word, then the finish reason, then (if asked) usage alone."""
    usage_field = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            **_envelope(answer, "chat.completion.chunk"),
            "choices": [
                {"index": i, "delta": delta, "finish_reason": finish_reason, "logprobs": None} for i in range(choices)
            ],
            **usage_field,
        }

    yield chunk({"role": "assistant", "content": ""})
    words = answer.content.split(" ")
    for n, word in enumerate(words):
        yield chunk({"content": word if n == len(words) - 1 else word + " "})
    yield chunk({}, answer.finish_reason)
    if include_usage:
        yield {**_envelope(answer, "chat.completion.chunk"), "choices": [], "usage": answer.usage}


def _envelope(answer: Completion, kind: str) -> dict[str, Any]:
    return {
        "id": answer.id,
        "object": kind,
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": answer.system_fingerprint,
        "service_tier": "default",
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return web.json_response({"error": error}, status=status, headers=headers)
