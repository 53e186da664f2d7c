"""`tracejudge judge`: judge the records of a JSONL file (id, query, context, response) offline, with the embedded
judge, an OpenAI-compatible API, or the cascade of both."""

from __future__ import annotations

import argparse
import os
import sys

from tracejudge.judge import offline
from tracejudge.judge.cascade import CascadeConfig
from tracejudge.judge.server_config import OpenAiJudgeConfig
from tracejudge.judge.verdict import METRICS
from tracejudge.processor.component.errors import ConfigError


def add_arguments(judge: argparse.ArgumentParser) -> None:
    judge.add_argument("--input", required=True, help="JSONL records with id, query, context, response")
    judge.add_argument("--output", required=True, help="JSONL verdicts: id, score (1 = good), label, tier, error.type")
    judge.add_argument("--metric", choices=METRICS, default="faithfulness")
    judge.add_argument("--tier", choices=offline.TIERS, default="local",
                       help="local: the embedded judge; heavy: an OpenAI-compatible API (--base-url, --model); "
                            "cascade: local, then heavy for scores inside the uncertainty band")
    judge.add_argument("--base-url", help="heavy tier: the API's base URL, e.g. http://localhost:8000/v1")
    judge.add_argument("--model", help="heavy tier: the judge model")
    judge.add_argument("--api-key-env", default="OPENAI_API_KEY",
                       help="heavy tier: the environment variable holding the API key (default: %(default)s)")
    judge.add_argument("--uncertainty-band", nargs=2, type=float, metavar=("LOW", "HIGH"), default=(0.3, 0.7),
                       help="cascade: local scores in [LOW, HIGH] go to the heavy tier (default: 0.3 0.7)")


def run(args: argparse.Namespace) -> int:
    heavy = None
    if args.tier != "local":
        if not (args.base_url and args.model):
            return _usage_error(f"--tier {args.tier} needs --base-url and --model")
        heavy = OpenAiJudgeConfig(base_url=args.base_url, model=args.model,
                                  api_key=os.environ.get(args.api_key_env, "none"))
    band = CascadeConfig(uncertainty_band=tuple(args.uncertainty_band))
    try:
        band.validate("--uncertainty-band")
    except ConfigError as e:
        return _usage_error(str(e))
    return offline.run(args.input, args.output, args.metric, args.tier, heavy, band)


def _usage_error(message: str) -> int:
    print(f"tracejudge judge: error: {message}", file=sys.stderr)
    return 2
