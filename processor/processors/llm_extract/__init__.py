"""The `llm_extract` processor: LLM spans of every convention as LlmSpan records, retriever documents, and the
feedback apps record in span attributes."""

from tracejudge.processor.component.factory import Factory
from tracejudge.processor.processors.llm_extract.processor import LlmExtractConfig, LlmExtractProcessor

__all__ = ["LlmExtractConfig", "LlmExtractProcessor", "factory"]

factory = Factory("llm_extract", "processors", LlmExtractConfig, LlmExtractProcessor,
                  adds=frozenset({"llm_spans", "retrievals", "feedback"}))
