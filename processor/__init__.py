"""tracejudge.processor: OTLP in, every span forwarded unchanged, LLM spans recognised, checked, sampled and queued
for judging on the way; judge results sent back into the traces. Laid out as the OpenTelemetry Collector is:

    component/   contracts: errors, config decoding, consumer, factory, host
    pdata/       the data model: TraceBatch, LlmSpan, conventions and extraction, evaluations, OTLP codec
    service/     config, the factory map, pipelines, lifecycle, telemetry
    receivers/  processors/  exporters/  extensions/   the components, one room each
    cli/         one module per `tracejudge` subcommand
"""
