"""The `llm_extract` processor: LLM spans of every convention as LlmSpan records, retriever documents, the
feedback apps record in span attributes, and LLM content from log records joined to its span."""

from tracejudge.processor.component.factory import Factory
from tracejudge.processor.processors.llm_extract.processor import LlmExtractConfig, LlmExtractProcessor

__all__ = ["LlmExtractConfig", "LlmExtractProcessor", "factory"]

factory = Factory("llm_extract", "processors", LlmExtractConfig, LlmExtractProcessor, offers=frozenset({"log_content"}),
                  adds=frozenset({"llm_spans", "retrievals", "feedback"}))
