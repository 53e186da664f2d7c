"""`tracejudge demo`: the whole loop in about a minute, with no application of your own.

Starts the processor from an embedded config (every port on 127.0.0.1, picked free), an OpenAI-compatible provider
on loopback (demo_provider) and, chapter by chapter, a support bot instrumented with the OpenTelemetry SDK and the
official OpenAI instrumentation (demo_app) whose users give feedback through the EvalService. The story: steady
traffic, a silent model swap under the same model name, a prompt edit, input drift — each should raise an alert
with its cause. Then it prints what was judged, the alerts, whether the judge predicts the users' thumbs-down, and
where to look. Exit 1 if an expected cause was not raised.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tracejudge.processor.cli.demo.provider import DemoProvider
from tracejudge.processor.service.config import parse_config
from tracejudge.processor.service.service import Service
from tracejudge.stats.calibration import calibrate
from tracejudge.stats.records import FEEDBACK_STRATUM, INPUT_DRIFT, MODEL_CHANGE, PROMPT_CHANGE, Alert, Evaluation
from tracejudge.stats.store import Store

# the official instrumentation records prompts and answers only when asked to: judging needs them
APP_ENVIRONMENT = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}
CONFIG = """# written by `tracejudge demo`; read it with tracejudge alerts / report / calibration --config <this file>
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
processors:
  llm_extract:
    attributes: {{prompt_version: app.prompt.version}}
  llm_checks: {{}}
  sampler: {{seed: {seed}, rate: 0.5}}
  judge_queue:
    storage: file_storage
    metrics: [faithfulness]
    decision_wait: 0s
    max_decision_wait: 5s
    workers: {{count: 1, poll_interval: 50ms, batch_size: 32}}
    judges:
      local: {{judge: embedded}}
    review: {{path: "{data}/review.jsonl", min_confidence: 0.2}}
    # tuned for a short demo (the defaults want more traffic): smaller warm-up, comparisons and drift windows
    stats: {{warmup: 40, min_n: 20, drift_window: 30}}
exporters:
{exporters}
extensions:
  file_storage: {{directory: "{data}"}}
  eval_service:
    grpc: {{endpoint: "127.0.0.1:0"}}
    http: {{endpoint: "127.0.0.1:0"}}
service:
  extensions: [file_storage, eval_service]
  telemetry:
    metrics: {{address: ""}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, llm_checks, sampler, judge_queue]
      exporters: [{exporter_names}]
"""


@dataclass(frozen=True)
class Chapter:
    title: str
    story: str
    prompt_version: str
    topics: tuple[str, ...]
    fingerprint: str
    wrong_share: float  # of the provider's answers that are made up
    expected: str  # the alert cause it should raise ("" for none)


FIRST_TOPICS = ("shipping", "passwords", "plans")
CHAPTERS = (
    Chapter("steady traffic", "prompt v1; gpt-4o-mini answers with fingerprint fp_a and makes up 1 answer in 10",
            "v1", FIRST_TOPICS, "fp_a", 0.1, ""),
    Chapter("a silent model swap", "same prompt, same model name; the provider now serves fingerprint fp_b, "
            "which makes up 3 answers in 5", "v1", FIRST_TOPICS, "fp_b", 0.6, MODEL_CHANGE),
    Chapter("a prompt edit", "the team ships prompt v2 (\"friendly, add helpful details\"): 3 answers in 4 are "
            "made up", "v2", FIRST_TOPICS, "fp_b", 0.75, PROMPT_CHANGE),
    Chapter("input drift", "enterprise customers arrive with long questions about the API and security",
            "v2", ("api", "security"), "fp_b", 0.75, INPUT_DRIFT),
)


def add_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--calls", type=int, default=120, help="LLM calls per chapter (default: %(default)s)")
    demo.add_argument("--data", help="directory for the demo's stores and config (default: a new temporary one, "
                      "kept so that you can explore it afterwards)")
    demo.add_argument("--otlp-endpoint", metavar="HOST:PORT", help="also forward every span (app, evaluations, "
                      "alerts) to this OTLP/gRPC endpoint, e.g. Jaeger's localhost:4317")
    demo.add_argument("--phoenix", metavar="URL", help="also forward to Arize Phoenix at URL (e.g. "
                      "http://localhost:6006): spans over OTLP/HTTP, scores as annotations")
    demo.add_argument("--seed", type=int, default=7)


def demo_config(data: Path, seed: int, otlp_endpoint: str | None, phoenix: str | None) -> str:
    exporters = {"debug": "  debug: {verbosity: basic}"}
    if otlp_endpoint:
        exporters["otlp/backend"] = f'  otlp/backend: {{endpoint: "{otlp_endpoint}", tls: {{insecure: true}}}}'
    if phoenix:
        exporters["otlphttp/phoenix"] = f'  otlphttp/phoenix: {{endpoint: "{phoenix}"}}'
        exporters["phoenix"] = f'  phoenix: {{endpoint: "{phoenix}"}}'
    return CONFIG.format(seed=seed, data=data, exporters="\n".join(exporters.values()),
                         exporter_names=", ".join(exporters))


def run(args: argparse.Namespace) -> int:
    if args.calls < 100:
        print("tracejudge demo: --calls must be at least 100 (the statistics need that much traffic per chapter)",
              file=sys.stderr)
        return 2
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="tracejudge-demo-"))
    data.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="    ! %(message)s")
    try:
        return asyncio.run(play(data, args.calls, args.seed, args.otlp_endpoint, args.phoenix, sys.stdout))
    except OSError as e:
        print(f"tracejudge demo could not run: {e}", file=sys.stderr)
        return 1


async def play(data: Path, calls: int, seed: int, otlp_endpoint: str | None, phoenix: str | None,
               out: IO[str]) -> int:
    text = demo_config(data, seed, otlp_endpoint, phoenix)
    config_path = data / "demo-config.yaml"
    config_path.write_text(text, encoding="utf-8")
    say = Narrator(out)
    say(f"tracejudge demo: stores and config in {data}")
    provider = DemoProvider(seed)
    service = Service(parse_config(text, {}))
    await provider.start()
    try:
        say("starting the processor (embedded config; the local judge is the shipped MiniLM model) ...")
        await service.start()
        stage = service.processors["judge_queue"]
        endpoint = f"127.0.0.1:{service.receivers['otlp'].grpc.port}"
        eval_service = f"127.0.0.1:{service.extensions['eval_service'].grpc_port}"
        spans: list[tuple[Chapter, int, int]] = []
        for number, chapter in enumerate(CHAPTERS, start=1):
            say(f"\n[{number}/{len(CHAPTERS)}] {chapter.title}: {chapter.story}")
            provider.behaviour.fingerprint, provider.behaviour.wrong_share = chapter.fingerprint, chapter.wrong_share
            started = time.time_ns()
            await run_app(endpoint, provider.base_url, eval_service, chapter, calls, seed + number)
            await stage.idle(timeout_s=300)
            spans.append((chapter, started, time.time_ns()))
            say(f"    {calls} calls answered, exported and judged (evaluations so far: {stage.stats_store.last_seq()})")
        if otlp_endpoint or phoenix:
            say("\nwaiting for your backends to take every span (Phoenix takes a few hundred a second) ...")
            left = await service.delivered(timeout_s=300)
            if left:
                say(f"    {left} request(s) still undelivered after 5 minutes: they are given up on at shutdown")
        say("")
        return summarise(stage.stats_store, spans, config_path, out)
    finally:
        await service.shutdown()
        await provider.shutdown()


async def run_app(endpoint: str, provider: str, eval_service: str, chapter: Chapter, calls: int, seed: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracejudge.processor.cli.demo.app", "--endpoint", endpoint, "--provider", provider,
        "--eval-service", eval_service, "--prompt-version", chapter.prompt_version, "--topics",
        ",".join(chapter.topics), "--calls", str(calls), "--seed", str(seed), stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ) | APP_ENVIRONMENT)
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise OSError(f"the demo app failed (exit {process.returncode}): {errors.decode(errors='replace')[-2000:]}")


class Narrator:
    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def __call__(self, line: str) -> None:
        print(line, file=self._out, flush=True)


def summarise(store: Store, spans: list[tuple[Chapter, int, int]], config_path: Path, out: IO[str]) -> int:
    say = Narrator(out)
    evaluations = [e for batch in store.evaluations() for e in batch]
    strata = Counter("sampled (uniform)" if e.in_uniform else "feedback-triggered" if e.stratum.startswith(
        FEEDBACK_STRATUM) else "sampled (targeted rules)" for e in evaluations)
    say(f"judged {len(evaluations)} LLM spans: " + ", ".join(f"{n} {kind}" for kind, n in sorted(strata.items())))
    for chapter, start, end in spans:
        scores = [e.score for e in evaluations if start <= e.time_unix_nano <= end and e.in_uniform]
        mean = f"{sum(scores) / len(scores):.2f}" if scores else "-"
        say(f"    {chapter.title:<22} mean faithfulness {mean} over {len(scores)} uniform-sample spans")
    feedback = store.feedback()
    kinds = Counter(f.reason or ("thumbs_up" if f.thumbs > 0 else "other") for f in feedback)
    say(f"users gave {len(feedback)} pieces of feedback: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    alerts = store.alerts()
    say(f"\nalerts ({len(alerts)}), as tracejudge.alert spans to the exporters and in `tracejudge alerts`:")
    for alert in alerts:
        say(f"  [{alert.cause}] {alert.series} via {alert.detector}: {alert.summary}")
        if alert.baseline or alert.current:
            say(f"      {alert.baseline or '-'} -> {alert.current}; example trace {_example(alert)}")
    raised = {a.cause for a in alerts}
    missing = [c.expected for c in CHAPTERS if c.expected and c.expected not in raised]
    for chapter in CHAPTERS:
        if chapter.expected:
            mark = "raised " if chapter.expected in raised else "MISSING"
            say(f"  [{mark}] {chapter.title} -> {chapter.expected}")
    for result in calibrate(store):
        outcome = result.outcome
        if outcome is not None:
            say(f"\ncalibration: the {result.metric} judge predicts the users' complaints with AUROC "
                f"{outcome.value:.2f} (95% CI {outcome.ci_low:.2f}-{outcome.ci_high:.2f}; {result.n_unhappy} "
                f"unhappy vs {result.n_control} {result.control} traces)")
        if result.warning:
            say(f"calibration warning: {result.warning}")
    _where_to_look(say, config_path, _example_trace(evaluations))
    return 1 if missing else 0


def _example(alert: Alert) -> str:
    return alert.examples[0][0] if alert.examples else "-"


def _example_trace(evaluations: list[Evaluation]) -> str:
    triggered = [e for e in evaluations if e.stratum.startswith(FEEDBACK_STRATUM)]
    return (triggered or evaluations)[0].trace_id if evaluations else "TRACE_ID"


def _where_to_look(say: Narrator, config: Path, trace: str) -> None:
    data = config.parent
    say(f"""
where to look (the demo's stores stay in {data}):
  tracejudge alerts --config {config}             the alerts, with causes and example traces
  tracejudge report --config {config} --html {data / 'report'}
                                                  per-series tables; charts of scores, CUSUM, tiers and spend
  tracejudge calibration --config {config}        does the judge predict what users complained about?
  tracejudge explain {trace} --config {config}
                                                  what happened to one trace (this one was judged because of feedback)
  tracejudge golden export --config {config} --out golden.jsonl --deepeval golden.json
                                                  the confirmed failures, as a dataset for `tracejudge gate`
  {data / 'review.jsonl'}   verdicts the judge was unsure of, for a person
In Jaeger (tracejudge demo --otlp-endpoint localhost:4317): service support-bot; each judged LLM span has a child
  span `tracejudge.evaluation` whose gen_ai.evaluation.result events show as span logs; alerts are
  `tracejudge.alert` spans of service tracejudge, linking to their example traces.
In Phoenix (tracejudge demo --phoenix http://localhost:6006): the spans, with the scores as span annotations.""")
