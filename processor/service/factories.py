"""Every component type tracejudge knows, by section: its config class and how to build it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tracejudge.judge.checks import ChecksConfig
from tracejudge.processor.component.consumer import TracesConsumer
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.exporters.debug import DebugExporter, DebugExporterConfig
from tracejudge.processor.exporters.helper.queued import ExporterSettings, QueuedExporter, Sender
from tracejudge.processor.exporters.helper.sending_queue import DiskQueue, MemoryQueue, SendingQueue
from tracejudge.processor.exporters.otlp import GrpcSender, OtlpExporterConfig
from tracejudge.processor.exporters.otlphttp import HttpSender, OtlpHttpExporterConfig
from tracejudge.processor.exporters.phoenix import AnnotationSender, PhoenixExporter, PhoenixExporterConfig
from tracejudge.processor.extensions.bearertokenauth import BearerTokenAuth, BearerTokenAuthConfig
from tracejudge.processor.extensions.eval_service import EvalService, EvalServiceConfig
from tracejudge.processor.extensions.file_storage import FileStorage, FileStorageConfig
from tracejudge.processor.extensions.health_check import HealthCheck, HealthCheckConfig
from tracejudge.processor.processors.judge_queue.stage import JudgeQueueProcessor, JudgeQueueStageConfig
from tracejudge.processor.processors.llm_checks import LlmChecksProcessor
from tracejudge.processor.processors.llm_extract.processor import LlmExtractConfig, LlmExtractProcessor
from tracejudge.processor.processors.sampler.processor import LlmSamplerProcessor
from tracejudge.processor.processors.sampler.sampling import RateScale, SamplerConfig
from tracejudge.processor.receivers.otlp.config import OtlpReceiverConfig
from tracejudge.processor.receivers.otlp.receiver import OtlpReceiver
from tracejudge.processor.service.decision_log import DecisionLog

Kind = Literal["receivers", "processors", "exporters", "extensions"]


@dataclass(frozen=True)
class BuildContext:
    """What a component may be given besides its own config."""

    telemetry: Telemetry
    extensions: Mapping[str, Any]  # built extensions by name
    decisions: DecisionLog  # the service's decision log, shared by every stage that decides a span's fate
    sampling_scale: RateScale  # lowered by the judge stage when a budget runs low, read by the sampler


@dataclass(frozen=True)
class Factory:
    config_class: type
    # receivers and processors: (name, config, next, context); exporters and extensions: (name, config, context)
    create: Callable[..., Any]


def _otlp_receiver(name: str, config: OtlpReceiverConfig, next_consumer: TracesConsumer,
                   context: BuildContext) -> OtlpReceiver:
    return OtlpReceiver(name, config, next_consumer, context.telemetry, dict(context.extensions))


def _llm_extract(name: str, config: LlmExtractConfig, next_consumer: TracesConsumer,
                 context: BuildContext) -> LlmExtractProcessor:
    return LlmExtractProcessor(config, next_consumer, context.telemetry, context.decisions)


def _queued(name: str, sender: Sender, config: ExporterSettings, context: BuildContext) -> QueuedExporter:
    queue = config.sending_queue
    open_queue: Callable[[], SendingQueue] = functools.partial(MemoryQueue, queue.queue_size, queue.sizer)
    if queue.storage:
        path = context.extensions[queue.storage].path_for(f"{name}_queue")
        open_queue = functools.partial(DiskQueue, path, queue.queue_size, queue.sizer)
    return QueuedExporter(name, sender, queue, config.retry_on_failure, config.timeout, context.telemetry,
                          open_queue)


def _judge_queue(name: str, config: JudgeQueueStageConfig, next_consumer: TracesConsumer,
                 context: BuildContext) -> JudgeQueueProcessor:
    path = context.extensions[config.storage].path_for(name)
    return JudgeQueueProcessor(path, config, next_consumer, context.telemetry, context.decisions,
                                 context.sampling_scale)


def _otlp_exporter(name: str, config: OtlpExporterConfig, context: BuildContext) -> QueuedExporter:
    return _queued(name, GrpcSender(config), config, context)


def _otlphttp_exporter(name: str, config: OtlpHttpExporterConfig, context: BuildContext) -> QueuedExporter:
    return _queued(name, HttpSender(config), config, context)


FACTORIES: dict[Kind, dict[str, Factory]] = {
    "receivers": {"otlp": Factory(OtlpReceiverConfig, _otlp_receiver)},
    "processors": {
        "llm_extract": Factory(LlmExtractConfig, _llm_extract),
        "llm_checks": Factory(ChecksConfig, lambda name, config, next_consumer, context: LlmChecksProcessor(
            config, next_consumer, context.telemetry)),
        "sampler": Factory(SamplerConfig, lambda name, config, next_consumer, context: LlmSamplerProcessor(
            config, next_consumer, context.telemetry, context.decisions, context.sampling_scale)),
        "judge_queue": Factory(JudgeQueueStageConfig, _judge_queue),
    },
    "exporters": {
        "otlp": Factory(OtlpExporterConfig, _otlp_exporter),
        "otlphttp": Factory(OtlpHttpExporterConfig, _otlphttp_exporter),
        "phoenix": Factory(PhoenixExporterConfig, lambda name, config, context: PhoenixExporter(
            _queued(name, AnnotationSender(config), config, context))),
        "debug": Factory(DebugExporterConfig, lambda name, config, context: DebugExporter(name, config)),
    },
    "extensions": {
        "health_check": Factory(HealthCheckConfig, lambda name, config, context: HealthCheck(config)),
        "bearertokenauth": Factory(BearerTokenAuthConfig, lambda name, config, context: BearerTokenAuth(config)),
        "file_storage": Factory(FileStorageConfig, lambda name, config, context: FileStorage(config)),
        "eval_service": Factory(EvalServiceConfig, lambda name, config, context: EvalService(config)),
    },
}
