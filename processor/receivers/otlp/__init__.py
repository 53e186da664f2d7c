"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON) in front of one pipeline per signal."""

from tracejudge.processor.component.factory import EVERY_SIGNAL, Factory
from tracejudge.processor.receivers.otlp.config import OtlpReceiverConfig
from tracejudge.processor.receivers.otlp.receiver import OtlpReceiver

__all__ = ["OtlpReceiver", "OtlpReceiverConfig", "factory"]

factory = Factory("otlp", "receivers", OtlpReceiverConfig, OtlpReceiver, signals=EVERY_SIGNAL)
