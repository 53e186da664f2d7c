"""Property-based fuzzing of what reads a client's bytes in-process: the OTLP decoders refuse anything they cannot
take with a PermanentError (a 400), never another exception (a 500); whatever the attribute values, extraction and
the checks never raise for a request: a span that breaks them is reported as unprocessable."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from tests.support.otlp_strategies import mutated, otlp_json, requests
from tracejudge.judge.checks import Checks, ChecksConfig
from tracejudge.processor.component.errors import PermanentError
from tracejudge.processor.pdata.extract import Extractor
from tracejudge.processor.pdata.otlp_codec import decode_json, decode_protobuf


@given(st.one_of(requests(), mutated(), st.binary(max_size=512)))
def test_the_protobuf_decoder_takes_or_refuses_but_never_fails(body: bytes) -> None:
    with contextlib.suppress(PermanentError):
        decode_protobuf(body, "otlp")


@given(st.one_of(otlp_json(), st.binary(max_size=256)))
def test_the_json_decoder_takes_or_refuses_but_never_fails(body: bytes) -> None:
    with contextlib.suppress(PermanentError):
        decode_json(body, "otlp")


@given(requests())
def test_extraction_and_checks_never_fail_a_request(body: bytes) -> None:
    decoded = decode_protobuf(body, "otlp")
    extracted = Extractor().extract_all(decoded.batch.request)
    checks = Checks(ChecksConfig(citations_required_above_chars=10))
    for span in extracted.llm_spans:
        checks.run(span)
