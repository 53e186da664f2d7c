"""Deterministic checks: how many LLM spans per second they judge, and what `llm_checks` adds to a request.

Prints checks/s on single spans and, per 512-span request with 10% LLM spans, the time of extraction alone against
extraction + checks + re-encoding with the events, in the same run. Run: `python -m bench.checks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.payloads import build_requests
from tracejudge.judge.checks import Checks, ChecksConfig
from tracejudge.processor.pdata.evaluation_events import with_evaluation_events
from tracejudge.processor.pdata.extract import Extractor


def per_call_s(fn: Callable[[], object], seconds: float = 2.0) -> float:
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls


def main() -> None:
    payload = build_requests(512, 0.1, 1)[0]
    request = ExportTraceServiceRequest.FromString(payload)
    extractor, checks = Extractor(), Checks(ChecksConfig(max_answer_chars=4000))
    spans = extractor.extract(request, payload)

    def check_all() -> None:
        for span in spans:
            checks.run(span)

    def extract_check_encode() -> None:
        found = extractor.extract(request, payload)
        evaluations = {s.span_id: checks.run(s) for s in found}
        with_evaluation_events(payload, evaluations, {s.span_id: s.response_id for s in found},
                               {s.span_id: s.end_unix_nano for s in found})

    per_span = per_call_s(check_all) / len(spans)
    extract_only = per_call_s(lambda: extractor.extract(request, payload))
    with_checks = per_call_s(extract_check_encode)
    print(f"deterministic checks: {1 / per_span:,.0f} LLM spans/s on one core ({per_span * 1e6:.1f} µs per span, "
          f"{len(checks.run(spans[0]))} checks each)")
    print(f"512-span request, {len(spans)} LLM spans: extraction {extract_only * 1e3:.2f} ms; extraction + checks + "
          f"events written into the request {with_checks * 1e3:.2f} ms (x{with_checks / extract_only:.2f})")


if __name__ == "__main__":
    main()
