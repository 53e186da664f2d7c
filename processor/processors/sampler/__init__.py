"""The `sampler` processor: which LLM spans to judge, each with its recorded inclusion probability."""

from tracejudge.processor.component.factory import Factory
from tracejudge.processor.processors.sampler.processor import LlmSamplerProcessor
from tracejudge.processor.processors.sampler.sampling import Sampler, SamplerConfig

__all__ = ["LlmSamplerProcessor", "Sampler", "SamplerConfig", "factory"]

# rules may target spans whose checks failed: llm_checks, if listed, runs first
factory = Factory("sampler", "processors", SamplerConfig, LlmSamplerProcessor, needs=frozenset({"llm_spans"}),
                  uses=frozenset({"evaluations"}), adds=frozenset({"samples"}))
