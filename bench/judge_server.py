"""A loopback OpenAI-compatible judge for the benchmark: answers every chat completion with a fixed verdict.

The same server the tests use (tests/support/openai_server.py), in a process of its own so its CPU is not counted
as tracejudge's. Run: `python -m bench.judge_server`; it prints `base_url URL` once serving.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.support.openai_server import Completion, OpenAiServer

from .procs import Child, python_module

VERDICT = Completion(content='{"score": 0.8, "label": "pass", "explanation": "supported"}', prompt_tokens=600,
                     completion_tokens=20)


@asynccontextmanager
async def judge_server() -> AsyncIterator[str]:
    """This program in a process of its own; yields its base URL."""
    child = await Child.start("loopback judge", python_module("bench.judge_server"))
    try:
        match, _ = await child.wait_for(r"^base_url (\S+)$", timeout_s=30)
        yield match.group(1)
    finally:
        await child.stop()


async def serve() -> None:
    async with OpenAiServer(VERDICT) as server:
        print(f"base_url {server.base_url}", flush=True)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()


if __name__ == "__main__":
    asyncio.run(serve())
