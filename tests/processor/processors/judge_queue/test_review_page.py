"""The review page in a real headless Chromium: sign in with the admin token, label a verdict, see it counted — and
the label stored as reviewer feedback, which calibration reads."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc

from tests.processor.processors.judge_queue.test_stage import EXPORT, VERDICT, judging_config
from tests.support.browser import Browser, chromedriver_binary
from tests.support.openai_server import OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.requests import export_request
from tests.support.waiting import eventually

TOKEN = "s3cret-admin"


def reviewing_config(downstream: str, heavy: str, data: Path) -> str:
    """The judging pipeline with every verdict sent for review, the admin site behind a bearer token."""
    config = judging_config(downstream, heavy, data, metrics_address="127.0.0.1:0")
    review = f'    review: {{path: "{data}/review.jsonl", min_confidence: 1.0}}\n'
    config = config.replace("    decision_wait: 0s\n", "    decision_wait: 0s\n" + review)
    config = config.replace('      address: "127.0.0.1:0"\n',
                            '      address: "127.0.0.1:0"\n      auth: {authenticator: bearertokenauth}\n')
    config = config.replace("extensions:\n  file_storage:", f"extensions:\n  bearertokenauth:\n    token: {TOKEN}\n"
                                                              "  file_storage:")
    return config.replace("  extensions: [file_storage]", "  extensions: [file_storage, bearertokenauth]")


async def test_a_reviewer_signs_in_labels_a_verdict_and_sees_it_counted(tmp_path: Path) -> None:
    driver = chromedriver_binary()
    request = export_request(spans=1, llm_every=1)
    llm = request.resource_spans[0].scope_spans[0].spans[0]
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy, \
            running(reviewing_config(downstream.endpoint, heavy.base_url, tmp_path)) as service, \
            grpc.aio.insecure_channel(grpc_target(service)) as channel:
        await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
        await eventually(lambda: (tmp_path / "review.jsonl").exists(), timeout_s=20, what="a verdict to review")
        with Browser(driver, tmp_path) as browser:
            await browser.open()
            try:
                await browser.go(f"http://127.0.0.1:{service.metrics_port}/review")
                assert "/login" in await browser.url()  # no token yet
                await browser.type("input[name=token]", TOKEN)
                await browser.click("form button")
                await browser.shows("#labelled", "0 verdict(s) labelled by reviewers")  # signed in, back on /review
                assert (await browser.url()).endswith("/review"), await browser.source()
                await browser.type("li.review input[name=note]", "the answer is not in the context")
                await browser.click("li.review button[value=fail]")
                await browser.shows("#labelled", "1 verdict(s) labelled by reviewers")  # the page the label leads to
                assert await browser.text("li.review .done") == "labelled fail"
            finally:
                await browser.close()
        stage = service.processors["judge_queue"]
        (label,) = [f for f in stage.stats_store.feedback(llm.trace_id.hex()) if f.source == "reviewer"]
        assert label.labels[0][1] is False and label.comment == "the answer is not in the context"


async def test_a_label_for_no_trace_is_refused_naming_the_field(tmp_path: Path) -> None:
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy, \
            running(reviewing_config(downstream.endpoint, heavy.base_url, tmp_path)) as service, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        url = f"http://127.0.0.1:{service.metrics_port}/review/label"
        async with http.post(url, data={"trace_id": "nope", "metric": "faithfulness", "passed": "fail"}) as response:
            assert response.status == 400
            assert "label.trace_id: 'nope' is not a trace id" in (await response.json())["error"]
        async with http.post(url, data={"trace_id": "ab" * 16, "metric": "faithfulness"}) as response:
            assert response.status == 400 and "passed (pass or fail)" in (await response.json())["error"]
        async with aiohttp.ClientSession() as anonymous, anonymous.post(url, data={}) as response:
            assert response.status == 401  # not a browser page: no sign-in redirect
