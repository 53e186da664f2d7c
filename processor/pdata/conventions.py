"""How each LLM tracing convention writes a call: which keys mark an LLM span, hold each field, and hold content.

Tables list keys in order of preference: OTel GenAI (current, then deprecated names), OpenInference, OpenLLMetry
(traceloop), Langfuse. Everything here reads plain Python attribute values; extract.py walks the OTLP messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tracejudge.processor.pdata.llm_span import Message

CONVENTIONS = ("gen_ai", "openinference", "openllmetry", "langfuse", "custom")

# A span is looked at only if one of these keys is among its own attributes.
TRIGGER_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "openinference.span.kind",
    "llm.request.type",
    "langfuse.observation.type",
    "langfuse.observation.model.name",
)
# Each trigger key contains one of these, so a serialized request without any of them has no LLM span.
# Fewer, shorter markers than keys: each is one scan of the payload.
MARKERS = ("gen_ai.", "openinference.span.kind", "llm.request.type", "langfuse.observation.")

# gen_ai.operation.name values that are not one model call generating text.
NON_LLM_OPERATIONS = frozenset(
    {"embeddings", "execute_tool", "create_agent", "invoke_agent", "invoke_workflow", "retrieval"}
)
OPENLLMETRY_LLM_REQUEST_TYPES = frozenset({"chat", "completion"})  # not: embedding, rerank, unknown
OPENLLMETRY_OPERATIONS = {"chat": "chat", "completion": "text_completion"}

# OpenInference writes this in place of hidden inputs and outputs (OPENINFERENCE_HIDE_INPUTS/OUTPUTS).
REDACTED = "__REDACTED__"

STRING_KEYS: Mapping[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name",),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "llm.vendor"),
    "request_model": ("gen_ai.request.model", "llm.request.model", "langfuse.observation.model.name"),
    "response_model": ("gen_ai.response.model", "llm.model_name", "llm.response.model"),
    "response_id": ("gen_ai.response.id",),
    "model_fingerprint": (
        "openai.response.system_fingerprint",
        "gen_ai.openai.response.system_fingerprint",
        "gen_ai.openai.system_fingerprint",
    ),
    "prompt_name": ("gen_ai.prompt.name", "traceloop.prompt.key", "langfuse.observation.prompt.name"),
    "prompt_version": (
        "gen_ai.prompt.version",
        "llm.prompt_template.version",
        "traceloop.prompt.version",
        "langfuse.observation.prompt.version",
    ),
    "conversation_id": ("gen_ai.conversation.id", "session.id", "langfuse.session.id"),
}

TOKEN_KEYS: Mapping[str, tuple[str, ...]] = {
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "llm.usage.prompt_tokens",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "llm.usage.completion_tokens",
    ),
}
# Langfuse writes usage as one JSON object; these are its keys (its own, then OpenAI's).
LANGFUSE_USAGE = "langfuse.observation.usage_details"
LANGFUSE_USAGE_KEYS = {"input_tokens": ("input", "prompt_tokens"), "output_tokens": ("output", "completion_tokens")}

FINISH_REASON_KEYS = (
    "gen_ai.response.finish_reasons",
    "gen_ai.response.finish_reason",
    "llm.finish_reason",
    "llm.response.finish_reason",
)

SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
# Message lists, as JSON text (or OTLP arrays): OTel GenAI current `parts` format and deprecated `gen_ai.prompt`.
INPUT_JSON_KEYS = ("gen_ai.input.messages", "gen_ai.prompt")
OUTPUT_JSON_KEYS = ("gen_ai.output.messages", "gen_ai.completion")
# Flattened message lists: `<prefix><N>.role`, `<prefix><N>.content` (OpenInference: `.message.role` ...).
INPUT_INDEXED_PREFIXES = ("gen_ai.prompt.", "llm.input_messages.", "llm.prompts.")
OUTPUT_INDEXED_PREFIXES = ("gen_ai.completion.", "llm.output_messages.", "llm.completions.")
# Free-form values: an OpenAI request/response as JSON, a message list, or plain text.
INPUT_VALUE_KEYS = ("input.value", "langfuse.observation.input")
OUTPUT_VALUE_KEYS = ("output.value", "langfuse.observation.output")
OPENINFERENCE_PARAMETERS = "llm.invocation_parameters"
DOCUMENTS_PREFIX = "retrieval.documents."
GEN_AI_DOCUMENTS = "gen_ai.retrieval.documents"  # JSON: [{"id": ..., "content": ...}, ...]

# Span events of older GenAI semconv: `gen_ai.<role>.message` and `gen_ai.choice` carry one message each.
EVENT_CONTENT_KEYS = ("gen_ai.event.content", "content", "message")
CHOICE_EVENT = "gen_ai.choice"
MESSAGE_EVENT_SUFFIX = ".message"

Attributes = Mapping[str, object]


def _gen_ai(attrs: Attributes) -> bool | None:
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:
        return operation not in NON_LLM_OPERATIONS
    has_provider = "gen_ai.provider.name" in attrs or "gen_ai.system" in attrs
    has_model = "gen_ai.request.model" in attrs or "gen_ai.response.model" in attrs
    return True if has_provider and has_model else None


def _openinference(attrs: Attributes) -> bool | None:
    kind = attrs.get("openinference.span.kind")
    return str(kind).upper() == "LLM" if kind else None


def _openllmetry(attrs: Attributes) -> bool | None:
    request_type = attrs.get("llm.request.type")
    return request_type in OPENLLMETRY_LLM_REQUEST_TYPES if request_type else None


def _langfuse(attrs: Attributes) -> bool | None:
    kind = attrs.get("langfuse.observation.type")
    if kind:
        return kind == "generation"
    return True if attrs.get("langfuse.observation.model.name") else None


# Each says True (an LLM span), False (a span of another kind) or None (this convention is not on the span).
_VERDICTS: tuple[tuple[str, Callable[[Attributes], bool | None]], ...] = (
    ("gen_ai", _gen_ai),
    ("openinference", _openinference),
    ("openllmetry", _openllmetry),
    ("langfuse", _langfuse),
)


def classify(attrs: Attributes, custom_keys: frozenset[str] = frozenset()) -> str | None:
    """The first convention by which these span attributes describe an LLM call, or None if none does.

    A span that any convention declares to be of another kind (an OpenInference RETRIEVER, a GenAI `execute_tool`,
    an OpenLLMetry `embedding`) is not an LLM span, whatever else it carries. `custom_keys` count last.
    """
    found = None
    for name, verdict in _VERDICTS:
        said = verdict(attrs)
        if said is False:
            return None
        if said and found is None:
            found = name
    if found is None and any(key in attrs for key in custom_keys):
        return "custom"
    return found


def retrieved_documents(attrs: Attributes) -> tuple[str, ...] | None:
    """The documents of a retriever span (OpenInference RETRIEVER, GenAI `retrieval`), or None if it is not one."""
    if str(attrs.get("openinference.span.kind") or "").upper() == "RETRIEVER":
        return indexed_documents(attrs)
    if attrs.get("gen_ai.operation.name") == "retrieval":
        value = attrs.get(GEN_AI_DOCUMENTS)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return (value,) if value.strip() else ()
        items = value if isinstance(value, (list, tuple)) else ()
        found = (as_text(item.get("content")) if isinstance(item, dict) else as_text(item) for item in items)
        return tuple(text for text in found if text)
    return None


def indexed_documents(attrs: Attributes) -> tuple[str, ...]:
    """OpenInference `retrieval.documents.N.document.content`, in index order."""
    documents = (as_text(item.get("document.content")) for _, item in indexed(attrs, DOCUMENTS_PREFIX))
    return tuple(d for d in documents if d)


@dataclass(frozen=True, slots=True)
class Content:
    """What a span says was sent and received, and the finish reasons written beside the outputs."""

    inputs: tuple[Message, ...] = ()
    outputs: tuple[Message, ...] = ()
    finish_reasons: tuple[str, ...] = ()


def attribute_content(attrs: Attributes) -> Content:
    """Content from span attributes: for each direction, the first of JSON lists, indexed keys, free-form values."""
    inputs, _ = _first_messages(attrs, INPUT_JSON_KEYS, INPUT_INDEXED_PREFIXES, INPUT_VALUE_KEYS, "user")
    outputs, finish = _first_messages(attrs, OUTPUT_JSON_KEYS, OUTPUT_INDEXED_PREFIXES, OUTPUT_VALUE_KEYS, "assistant")
    system, _ = messages(attrs.get(SYSTEM_INSTRUCTIONS), "system")
    if system:
        inputs = [Message("system", "\n".join(m.content for m in system if m.content)), *inputs]
    return Content(tuple(inputs), tuple(outputs), tuple(finish))


def event_content(events: Iterable[tuple[str, Attributes]]) -> Content:
    """Content that older GenAI semconv wrote as span events (name, attributes) rather than as attributes."""
    inputs: list[Message] = []
    outputs: list[Message] = []
    finish: list[str] = []
    for name, attrs in events:
        body = next((attrs[k] for k in EVENT_CONTENT_KEYS if k in attrs), None)
        if name == CHOICE_EVENT and body is not None:
            found, reasons = messages(body, "assistant")
            outputs += found
            finish += reasons or as_texts(attrs.get("finish_reason"))
        elif name.endswith(MESSAGE_EVENT_SUFFIX) and body is not None:
            inputs += messages(body, name.split(".")[1])[0]
        else:  # gen_ai.content.prompt / .completion, gen_ai.client.inference.operation.details
            inputs += _first_messages(attrs, INPUT_JSON_KEYS, (), (), "user")[0]
            found, reasons = _first_messages(attrs, OUTPUT_JSON_KEYS, (), (), "assistant")
            outputs, finish = outputs + found, finish + reasons
    return Content(tuple(inputs), tuple(outputs), tuple(finish))


def _first_messages(
    attrs: Attributes, json_keys: Iterable[str], prefixes: Iterable[str], value_keys: Iterable[str], role: str
) -> tuple[list[Message], list[str]]:
    for key in json_keys:
        found, finish = messages(attrs.get(key), role)
        if found:
            return found, finish
    for prefix in prefixes:
        found, finish = _indexed_messages(attrs, prefix, role)
        if found:
            return found, finish
    for key in value_keys:
        found, finish = messages(attrs.get(key), role, free_form=True)
        if found:
            return found, finish
    return [], []


def _indexed_messages(attrs: Attributes, prefix: str, role: str) -> tuple[list[Message], list[str]]:
    found, finish = [], []
    for _, item in indexed(attrs, prefix):
        text = as_text(item.get("content", item.get("message.content")))
        if not text:  # OpenInference multi-part content: message.contents.<M>.message_content.text
            parts = sorted((k, v) for k, v in item.items() if k.endswith(".message_content.text"))
            text = "".join(as_text(v) for _, v in parts)
        found.append(Message(as_text(item.get("role", item.get("message.role"))) or role, text))
        if "finish_reason" in item:
            finish.append(as_text(item["finish_reason"]))
    return found, finish


def indexed(attrs: Attributes, prefix: str) -> list[tuple[int, dict[str, object]]]:
    """`<prefix><N>.<rest>` keys grouped by N, in index order."""
    groups: dict[int, dict[str, object]] = {}
    for key, value in attrs.items():
        if key.startswith(prefix):
            index, dot, rest = key[len(prefix) :].partition(".")
            if dot and index.isdigit():
                groups.setdefault(int(index), {})[rest] = value
    return sorted(groups.items())


def messages(value: object, role: str, free_form: bool = False) -> tuple[list[Message], list[str]]:
    """Messages and finish reasons from JSON text or OTLP structure in any shape the conventions write.

    Shapes: a message list (GenAI `parts`, OpenAI `content`), an OpenAI request (`messages`) or response
    (`choices`), one message, or plain text. With `free_form`, JSON that holds no message is kept as text.
    Objects are tested as `dict` (what JSON and OTLP kvlists decode to), not Mapping: the ABC check is slow.
    """
    if value is None or value == REDACTED:
        return [], []
    structure = value
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return [], []
        try:
            structure = json.loads(stripped) if stripped[0] in "[{" else stripped
        except json.JSONDecodeError:
            structure = stripped
    found: list[Message] = []
    finish: list[str] = []
    for item in _items(structure):
        message, reason = _message(item, role)
        found.append(message)
        if reason:
            finish.append(reason)
    if free_form and isinstance(value, str) and not any(m.content for m in found):
        return [Message(role, value)], finish
    return found, finish


def _items(structure: object) -> list[object]:
    if isinstance(structure, dict):
        for key in ("messages", "choices"):
            if isinstance(structure.get(key), (list, tuple)):
                return list(structure[key])
        return [structure["prompt"]] if isinstance(structure.get("prompt"), str) else [structure]
    if isinstance(structure, (list, tuple)):
        return list(structure)
    return [structure]


def _message(item: object, role: str) -> tuple[Message, str]:
    if not isinstance(item, dict):
        return Message(role, as_text(item)), ""
    reason = as_text(item.get("finish_reason"))
    inner = item.get("message")
    message: Mapping[str, object] = inner if isinstance(inner, dict) else item  # an OpenAI choice's message
    parts = message.get("parts", message.get("content", message.get("text")))
    return Message(as_text(message.get("role")) or role, _part_text(parts)), reason


def _part_text(parts: object) -> str:
    """The text of a content value: a string, or a list of parts of which only the text parts count."""
    if isinstance(parts, (list, tuple)):
        texts = []
        for part in parts:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                texts.append(as_text(part.get("content", part.get("text"))))
        return "".join(texts)
    return as_text(parts)


def as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_texts(value: object) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(as_text(v) for v in value)
    return (as_text(value),) if value not in (None, "") else ()


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
