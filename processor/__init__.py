"""tracejudge.processor: OTLP in, every span forwarded unchanged, LLM spans recognised, checked, sampled and
queued for judging on the way; judge results sent back into the traces.

Public names load on first use, so that `judge` and `stats` can import the shared data types
(`tracejudge.processor.llm_span`, `.evaluation`, `.errors`) without pulling in the whole service.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TraceBatch": "batch",
    "Config": "config", "load_config": "config", "parse_config": "config",
    "Component": "consumer", "Fanout": "consumer", "TracesConsumer": "consumer",
    "ConfigError": "errors", "PermanentError": "errors", "RetryableError": "errors", "TracejudgeError": "errors",
    "EvaluationResult": "evaluation",
    "Exporter": "exporter", "QueuedExporter": "exporter", "Sender": "exporter",
    "CONVENTIONS": "extract", "LLM_MARKERS": "extract", "AttributeMap": "extract", "Extractor": "extract",
    "may_contain_llm": "extract",
    "LlmSpan": "llm_span", "Message": "llm_span", "Retrieval": "llm_span",
    "Decision": "decisions", "DecisionLog": "decisions", "read_decisions": "decisions",
    "JudgedSpan": "evaluation_events", "evaluation_request": "evaluation_events",
    "RateScale": "sampling", "Sampler": "sampling", "SamplerConfig": "sampling",
    "Service": "service",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
