"""tracejudge.processor: OTLP in, every span forwarded unchanged, LLM spans recognised, checked, sampled and queued
for judging on the way; judge results sent back into the traces. Laid out as the OpenTelemetry Collector is:

    component/   contracts: errors, config decoding, factory, host, telemetry, decision records, storage, SQLite
    pdata/       the data model: TraceBatch, LlmSpan, feedback, samples, evaluations, conventions and extraction
    consumer.py  the interfaces a batch travels through (TracesConsumer, Exporter)
    service/     config, the factory map, pipelines and lifecycle (the Host), decision log
    transport/   what servers share: HTTP sites, TLS, auth settings, the error → status mapping
    receivers/  processors/  exporters/  extensions/   the components, one room each
    cli/         one module per `tracejudge` subcommand, loaded when it runs
"""
