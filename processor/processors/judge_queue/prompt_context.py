"""Grounding that an application puts in the prompt instead of in retriever spans: a block after a marker such as
"Context:" or "Documents:", or between <context> tags, in the system prompt or a user message. It is the judge's
context for a span whose trace retrieved nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracejudge.processor.pdata.llm_span import Message

DEFAULT_MARKERS = ("Context:", "Documents:", "Sources:", "<context>", "<documents>")
# where a "Context:" block ends: the next line that opens another part of the prompt
_NEXT_PART = re.compile(r"^\s*(question|query|user|answer|instructions?|task)\s*:", re.IGNORECASE | re.MULTILINE)


def prompt_context(messages: Sequence[Message], markers: Sequence[str]) -> tuple[str, str]:
    """(the grounding text, where it was: `system prompt (Context:)`), or ("", "") if no message holds a marker.
    System messages are looked at first, then user messages, each marker in order."""
    ordered = [m for m in messages if m.role == "system"] + [m for m in messages if m.role == "user"]
    for message in ordered:
        lowered = message.content.lower()  # once per message: every span of the receive path comes here
        for marker in markers:
            text = _block(message.content, lowered, marker)
            if text:
                where = "system prompt" if message.role == "system" else "user message"
                return text, f"{where} ({marker})"
    return "", ""


def _block(content: str, lowered: str, marker: str) -> str:
    start = lowered.find(marker.lower())
    if start < 0:
        return ""
    rest = content[start + len(marker):]
    if marker.startswith("<") and marker.endswith(">"):  # <context> … </context>
        end = lowered[start + len(marker):].find("</" + marker[1:].lower())
        return (rest if end < 0 else rest[:end]).strip()
    following = _NEXT_PART.search(rest)
    return (rest if following is None else rest[:following.start()]).strip()
