"""The demo's LLM provider: an OpenAI-compatible chat completions server on loopback that answers support questions
from the documentation in the prompt — rightly (a sentence of it) or wrongly (a made-up one) — and reports a model
fingerprint, as OpenAI does. The demo changes its behaviour between chapters: `wrong_share`, and `fingerprint` for a
silent model swap under an unchanged model name."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tracejudge.processor.cli.demo.app import TOPICS
from tracejudge.processor.transport.http_site import HttpSite

MODEL = "gpt-4o-mini-2024-07-18"


@dataclass
class Behaviour:
    fingerprint: str = "fp_a"
    wrong_share: float = 0.1  # of answers that are made up


class DemoProvider:
    def __init__(self, seed: int) -> None:
        self.behaviour = Behaviour()
        self._rng = random.Random(seed)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._site = HttpSite(app, "127.0.0.1:0")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._site.port}/v1"

    async def start(self) -> None:
        await self._site.start()

    async def shutdown(self) -> None:
        await self._site.shutdown()

    async def _complete(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        topic = next((t for t in TOPICS.values() if t.document in prompt), None)
        if topic is None:
            answer = "I can only answer questions about Acme's documentation."
        else:
            wrong = self._rng.random() < self.behaviour.wrong_share
            answer = self._rng.choice(topic.wrong if wrong else topic.right)
        words = len(prompt.split())
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL, "system_fingerprint": self.behaviour.fingerprint,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": words, "completion_tokens": len(answer.split()),
                      "total_tokens": words + len(answer.split())},
        })  # fmt: skip
