"""tracejudge.processor: OTLP in, every span forwarded unchanged, LLM spans recognised on the way."""

from .batch import TraceBatch
from .config import Config, load_config, parse_config
from .consumer import Component, Fanout, TracesConsumer
from .errors import ConfigError, PermanentError, RetryableError, TracejudgeError
from .exporter import Exporter, QueuedExporter, Sender
from .extract import CONVENTIONS, LLM_MARKERS, AttributeMap, Extractor, may_contain_llm
from .llm_span import LlmSpan, Message
from .service import Service

__all__ = [
    "CONVENTIONS",
    "LLM_MARKERS",
    "AttributeMap",
    "Component",
    "Config",
    "ConfigError",
    "Exporter",
    "Extractor",
    "Fanout",
    "LlmSpan",
    "Message",
    "PermanentError",
    "QueuedExporter",
    "RetryableError",
    "Sender",
    "Service",
    "TraceBatch",
    "TracejudgeError",
    "TracesConsumer",
    "load_config",
    "may_contain_llm",
    "parse_config",
]
