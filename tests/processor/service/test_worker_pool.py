"""Judge worker processes started by the service: a worker killed with kill -9 while it holds leases loses nothing
(its items are judged once, after the leases expire, by the worker started again), and the workers' metrics reach
the service's /metrics labelled by process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import aiohttp
import grpc

from tests.processor.processors.judge_queue.test_stage import EXPORT, VERDICT, judging_config, rag_trace, results
from tests.support.metrics import scraped
from tests.support.openai_server import OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.waiting import eventually
from tracejudge.processor.component.decisions import JUDGED


async def test_a_worker_killed_while_it_holds_leases_loses_nothing_and_judges_nothing_twice(tmp_path: Path) -> None:
    traces = [rag_trace() for _ in range(3)]
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        heavy.fail_next(200, delay_s=20, times=100)  # every call hangs: the worker sits on its leases
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path, local="none",
                                metrics_address="127.0.0.1:0", processes=1)
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            pool = service.worker_pool
            assert pool is not None
            (worker,) = pool.workers
            for request, _ in traces:
                await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: len(heavy.requests) >= 2, timeout_s=30, what="judge calls in flight")
            assert worker.process is not None
            os.kill(worker.process.pid, signal.SIGKILL)
            heavy.clear_faults()
            stage = service.processors["judge_queue"]
            await eventually(lambda: worker.starts == 2, timeout_s=30, what="the worker started again")
            await stage.idle(60)  # the leases ran out (2 s) and the new worker judged every item
            expected = {(llm.span_id, metric) for _, llm in traces for metric in ("faithfulness", "relevancy")}
            await eventually(lambda: results(downstream) == expected, what="every item's evaluation span")
            evaluations = [e for batch in stage.stats_store.evaluations() for e in batch]
            assert sorted((e.span_id, e.metric) for e in evaluations) == sorted(
                (llm.span_id.hex(), metric) for llm, metric in ((llm, m) for _, llm in traces
                                                                for m in ("faithfulness", "relevancy")))
            for _, llm in traces:
                judged = [(d.metric, d.decision) for d in await service.decisions.for_trace(llm.trace_id.hex())
                          if d.decision == JUDGED]
                assert sorted(judged) == [("faithfulness", JUDGED), ("relevancy", JUDGED)]  # each once


async def test_the_workers_metrics_reach_the_services_metrics_labelled_by_process(tmp_path: Path) -> None:
    request, _ = rag_trace()
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path, local="none",
                                metrics_address="127.0.0.1:0", processes=2)
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await service.processors["judge_queue"].idle(60)
            assert await scraped(service, "tracejudge_judge_verdicts_total", tier="heavy", outcome="judged") == 2
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{service.metrics_port}/metrics",
                    headers={"Accept": "application/openmetrics-text"}) as response:
                text = await response.text()
            processes = {line.split('process="')[1].split('"')[0] for line in text.splitlines()
                         if line.startswith("tracejudge_judge_queue_waiting{")}
            assert processes == {"worker1", "worker2"} and text.count("# TYPE tracejudge_judge_queue_waiting ") == 1
