"""The demo's application: a small retrieval-augmented support bot, instrumented the way a user's app is — the
OpenTelemetry SDK with its OTLP/gRPC exporter and the official OpenAI instrumentation (openai-v2) — calling an
OpenAI-compatible server. Its simulated users give feedback through tracejudge's EvalService: a thumbs-down for
some wrong answers, sometimes a regeneration, a thumbs-up now and then.

Runs in a process of its own (`python -m tracejudge.processor.cli.demo.app ...`), as an app would: the instrumentation
patches `openai` process-wide.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

import grpc
import openai
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tracejudge.v1 import eval_service_pb2 as pb
from tracejudge.v1 import eval_service_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Topic:
    document: str  # what the retriever finds
    questions: tuple[str, ...]
    right: tuple[str, ...]  # answers the document supports
    wrong: tuple[str, ...]  # answers it does not (the provider's hallucinations)


# The first three are what users ask at first; the last two arrive with the input drift (longer, other subjects).
TOPICS = {
    "shipping": Topic(
        "Standard shipping takes 3 to 5 business days within the country. Express shipping delivers the next business "
        "day for orders placed before 2 pm. Orders over 50 euros ship for free.",
        ("How long does shipping take?", "When will express orders arrive?", "Is shipping free?"),
        ("Standard shipping takes 3 to 5 business days within the country.",
         "Express shipping delivers the next business day for orders placed before 2 pm."),
        ("All orders ship by drone within two hours, worldwide, at no charge.",
         "Shipping is 25 euros for every order and takes about six weeks.")),
    "passwords": Topic(
        "You can reset your password from the sign-in page by choosing Forgot password. The reset link in the email "
        "expires after 24 hours. Accounts are locked for 15 minutes after five failed sign-in attempts.",
        ("How do I reset my password?", "How long is the reset link valid?", "Why is my account locked?"),
        ("You can reset your password from the sign-in page by choosing Forgot password.",
         "The reset link in the email expires after 24 hours."),
        ("Passwords can only be reset by calling our head office in Zurich on weekdays.",
         "For security we email your current password to you in plain text.")),
    "plans": Topic(
        "The Basic plan costs 9 euros a month and includes 2 users. The Team plan costs 29 euros a month and includes "
        "10 users and priority support. All plans can be cancelled at any time.",
        ("What does the Team plan cost?", "How many users does Basic include?", "Can I cancel my plan?"),
        ("The Team plan costs 29 euros a month and includes 10 users and priority support.",
         "The Basic plan costs 9 euros a month and includes 2 users."),
        ("Every plan is free for the first three years and includes unlimited users.",
         "The Team plan costs 299 euros a week and cannot be cancelled.")),
    "api": Topic(
        "The API allows 100 requests per minute per key. API keys are created in the developer settings and can be "
        "revoked at any time. Webhooks are retried three times over one hour.",
        ("What is the rate limit of the API when we integrate it with our enterprise data warehouse and run nightly "
         "batch exports for every business unit?",
         "Where do our engineers create and revoke API keys for the service accounts that our integration platform "
         "uses across regions?"),
        ("The API allows 100 requests per minute per key.",
         "API keys are created in the developer settings and can be revoked at any time."),
        ("The API has no rate limit at all, and keys never expire or need rotation.",
         "You can make one million calls per second if you pay for the Gold tier.")),
    "security": Topic(
        "All data is encrypted at rest with AES-256. Customer data is stored in data centres in Frankfurt and "
        "Dublin. Two-factor authentication can be required for every user of a workspace.",
        ("Where is our customer data physically stored, and how is it protected, given that our compliance team "
         "needs the answer for the annual audit?",
         "Can we require two-factor authentication for every user of our workspace before the security review of "
         "our procurement department next quarter?"),
        ("Customer data is stored in data centres in Frankfurt and Dublin.",
         "All data is encrypted at rest with AES-256."),
        ("Data is stored on servers in our office basement and is not encrypted.",
         "We keep all customer data in Singapore and back it up to floppy disks.")),
}
PROMPTS = {
    "v1": "You are Acme's support assistant. Answer in one sentence, using only the documentation below.",
    "v2": "You are Acme's friendly support assistant. Answer in one lively sentence and add helpful details.",
}


def run(endpoint: str, provider: str, eval_service: str, prompt_version: str, topics: list[str], calls: int,
        seed: int) -> None:
    rng = random.Random(seed)
    random.seed(seed)  # the SDK draws trace ids from `random`: the same run samples the same traces every time
    tracer_provider = TracerProvider(resource=Resource.create(
        {"service.name": "support-bot", "app.prompt.version": prompt_version}))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{endpoint}",
                                                                           insecure=True)))
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]
    client = openai.OpenAI(base_url=provider, api_key="demo", max_retries=0)
    tracer = tracer_provider.get_tracer("support-bot")
    channel = grpc.insecure_channel(eval_service)
    feedback = pb_grpc.EvalServiceStub(channel)
    for _ in range(calls):
        topic = TOPICS[rng.choice(topics)]
        question = rng.choice(topic.questions)
        with tracer.start_as_current_span("POST /chat") as request:
            with tracer.start_as_current_span("retrieve", attributes={
                    "openinference.span.kind": "RETRIEVER", "input.value": question,
                    "retrieval.documents.0.document.content": topic.document}):
                pass
            completion = client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "system", "content": f"{PROMPTS[prompt_version]}\n\nDocumentation:\n{topic.document}"},
                {"role": "user", "content": question}])
            trace_id = f"{request.get_span_context().trace_id:032x}"
        answer = completion.choices[0].message.content or ""
        message = user_reaction(rng, answer in topic.right, trace_id)
        if message is not None:
            feedback.SubmitFeedback(pb.SubmitFeedbackRequest(feedback=[message]), timeout=10)
    channel.close()
    tracer_provider.shutdown()


def user_reaction(rng: random.Random, right: bool, trace_id: str) -> pb.Feedback | None:
    """Users notice some wrong answers (thumbs down, or ask again), praise a few right ones and complain about a
    few right ones too."""
    roll = rng.random()
    if not right and roll < 0.45:
        return pb.Feedback(trace_id=trace_id, thumbs=pb.THUMBS_DOWN, source="support-bot")
    if not right and roll < 0.6:
        return pb.Feedback(trace_id=trace_id, regenerated=True, source="support-bot")
    if right and roll < 0.15:
        return pb.Feedback(trace_id=trace_id, thumbs=pb.THUMBS_UP, source="support-bot")
    if right and roll < 0.18:  # some users complain about right answers too
        return pb.Feedback(trace_id=trace_id, thumbs=pb.THUMBS_DOWN, source="support-bot")
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True, help="tracejudge's OTLP/gRPC host:port")
    parser.add_argument("--provider", required=True, help="the OpenAI-compatible base URL")
    parser.add_argument("--eval-service", required=True, help="tracejudge's EvalService host:port")
    parser.add_argument("--prompt-version", choices=sorted(PROMPTS), required=True)
    parser.add_argument("--topics", required=True, help="comma-separated: " + ", ".join(TOPICS))
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.endpoint, args.provider, args.eval_service, args.prompt_version, args.topics.split(","), args.calls,
        args.seed)
