"""deepeval's metrics as a judge tier: its multi-step chains (extract claims and truths, give verdicts, write a reason)
run on the same OpenAI-compatible server and client as OpenAiJudge, through a `DeepEvalBaseLLM` adapter.

deepeval is imported only when a DeepEvalJudge is built (about 2 s and 1,600 modules), with its telemetry and .env
loading turned off first. Unlike OpenAiJudge's prompt, deepeval's templates paste the span's text into the
instructions; its media markers are defused, so span text cannot make deepeval open a file or fetch a URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any, TypeVar

import pydantic
from openai.lib._pydantic import to_strict_json_schema  # what the client's own chat.completions.parse sends

from tracejudge.processor.component.errors import ConfigError, PermanentError

from .openai_judge import CALL_ERRORS, OpenAiJudge
from .server_config import DeepEvalJudgeConfig
from .verdict import JudgeInput, Verdict, unjudged

log = logging.getLogger(__name__)

# deepeval reads `[DEEPEVAL:IMAGE:<path or URL>]` (or PDF) in any text as media to load; span text must stay text.
_MEDIA_MARKER, _DEFUSED_MARKER = "[DEEPEVAL:", "[DEEPEVAL :"
_CONTEXT_PARAMS = frozenset({"context", "retrieval_context"})
# For budgets: faithfulness makes the most calls (truths, claims, verdicts, reason), and each call wraps the span's
# text in up to ~3,000 characters of instructions and examples (ToxicityMetric's verdicts, deepeval 4.3).
_CALLS_PER_MEASURE = 4
_TEMPLATE_TOKENS = 1000
_FLIPPED_SCORE_NOTICE = ".*now scores in the same direction as every other deepeval metric"
Schema = TypeVar("Schema", bound=pydantic.BaseModel)


class AnswerNotParsed(PermanentError):
    """The judge's answer does not fit the schema deepeval asked for; `content` is the answer."""

    def __init__(self, schema_name: str, content: str) -> None:
        super().__init__(f"the judge's answer does not fit {schema_name}")
        self.content = content


class DeepEvalJudge:
    """Calls are not limited here: a tier's concurrency, rate and budget are its TierGate's (limits.py). One
    verdict is one deepeval measure, which makes up to four calls (two of them concurrently)."""

    def __init__(self, config: DeepEvalJudgeConfig, tier: str = "heavy") -> None:
        deepeval = _deepeval()
        self._classes: dict[str, type[Any]] = {
            name: getattr(deepeval.metrics, class_name) for name, class_name in config.metrics.items()
        }
        self._needs_context = {
            name: any(p.value in _CONTEXT_PARAMS for p in cls._required_params) for name, cls in self._classes.items()
        }
        self._config = config
        self._judge = OpenAiJudge(config.server, tier=tier)  # its client, response-format fallbacks and retries
        self._version: str = deepeval.__version__
        self.tier = tier
        self.model = config.server.model
        metrics = ",".join(f"{name}={class_name}" for name, class_name in sorted(config.metrics.items()))
        self.prompt_version = f"deepeval-{self._version}:{metrics}:threshold={config.threshold}"

    async def close(self) -> None:
        await self._judge.close()

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        """An upper estimate: every call carries the item's text, a template and the full output allowance."""
        template_usd = _TEMPLATE_TOKENS * self._config.server.usd_per_million_input_tokens / 1e6
        return _CALLS_PER_MEASURE * (self._judge.estimate_cost_usd(item) + template_usd)

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        return list(await asyncio.gather(*(self._judge_one(item) for item in inputs)))

    async def _judge_one(self, item: JudgeInput) -> Verdict:
        metric_class = self._classes.get(item.metric)
        if metric_class is None:
            return self._unjudged(
                item,
                "unsupported_metric",
                f"{item.metric!r} is not a metric of this judge (it judges {', '.join(sorted(self._classes))})",
            )
        if self._needs_context[item.metric] and not item.context.strip():
            return self._unjudged(item, "no_context", f"{metric_class.__name__} needs retrieved or grounding context")
        model = _model_class()(self._judge)
        metric = self._metric(metric_class, model)
        started = time.perf_counter()
        try:
            await metric.a_measure(self._test_case(item), _show_indicator=False)
            failure = None
        except Exception as e:  # deepeval wraps some errors (an over-long prompt, say): look for ours in the chain
            failure = self._failure(item, e)
        spent = {
            "input_tokens": model.input_tokens,
            "output_tokens": model.output_tokens,
            "cost_usd": model.cost_usd,
            "latency_s": time.perf_counter() - started,
            "judge_prompt_version": f"deepeval-{self._version}-{metric_class.__name__}",
        }
        if failure is None and metric.score is None:
            failure = self._unjudged(item, "no_score", f"{metric_class.__name__} gave no score")
        if failure is not None:
            return dataclasses.replace(failure, **spent)
        score = float(metric.score)
        return Verdict(
            item.metric,
            score,
            "pass" if metric.success else "fail",
            metric.reason or "",
            tier=self.tier,
            judge_model=self.model,
            confidence=min(1.0, abs(score - 0.5) * 2),
            **spent,
        )

    def _metric(self, metric_class: type[Any], model: Any) -> Any:
        """A fresh metric per measure: a deepeval metric keeps its last score, reason and verdicts on itself."""
        with warnings.catch_warnings():  # the score-direction notice is for callers of deepeval 3; see METRIC_CLASSES
            warnings.filterwarnings("ignore", _FLIPPED_SCORE_NOTICE, DeprecationWarning)
            # eval_mode llm: never hand decisions to a hosted System One model, whatever DEEPEVAL_EVAL_MODE says
            return metric_class(threshold=self._config.threshold, model=model, eval_mode="llm", async_mode=True)

    def _test_case(self, item: JudgeInput) -> Any:
        from deepeval.test_case import LLMTestCase

        def text(value: str) -> str:
            return value.replace(_MEDIA_MARKER, _DEFUSED_MARKER)

        # Hallucination reads `context`, the retrieval metrics `retrieval_context`: the span's context is both.
        context: list[Any] | None = [text(item.context)] if item.context.strip() else None
        return LLMTestCase(
            input=text(item.query), actual_output=text(item.response), context=context, retrieval_context=context
        )

    def _failure(self, item: JudgeInput, error: Exception) -> Verdict:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, (AnswerNotParsed, *CALL_ERRORS)):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, AnswerNotParsed):
            return self._unjudged(item, "parse_error", f"{cause}: {cause.content[:200]!r}")
        if isinstance(cause, CALL_ERRORS):
            return self._judge.unjudged_for(item, cause)
        log.warning("deepeval failed on a %s item", item.metric, exc_info=error)
        return self._unjudged(item, type(error).__name__, f"deepeval: {error}")

    def _unjudged(self, item: JudgeInput, error_type: str, explanation: str) -> Verdict:
        return unjudged(item, error_type, explanation, self.tier, self.model)


def parse_answer(content: str, schema: type[Schema]) -> Schema:
    """`schema` read from plain JSON (structured output, JSON mode) or from JSON fenced or inside prose."""
    start, end = content.find("{"), content.rfind("}")
    try:
        return schema.model_validate_json(content[start : end + 1] if 0 <= start < end else content)
    except pydantic.ValidationError as e:
        raise AnswerNotParsed(schema.__name__, content) from e


@functools.cache
def _deepeval() -> ModuleType:
    """deepeval, imported on first use: telemetry and .env loading happen at import, so they are turned off first."""
    if "deepeval" in sys.modules:
        log.warning("deepeval was imported before tracejudge could turn off its telemetry and .env loading")
    os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")  # also keeps it from making .deepeval/ in the CWD
    os.environ.setdefault("DEEPEVAL_DISABLE_DOTENV", "1")
    try:
        import deepeval
        import deepeval.metrics
    except ImportError as e:
        raise ConfigError(f"judge: deepeval needs the deepeval package ({e}): pip install 'tracejudge[deepeval]'"
                          ) from e

    return deepeval


@functools.cache
def _model_class() -> type[Any]:
    """OpenAiDeepEvalModel, defined on first use: its base class is deepeval's."""
    _deepeval()
    from deepeval.models import DeepEvalBaseLLM

    class OpenAiDeepEvalModel(DeepEvalBaseLLM):  # type: ignore[no-untyped-call]  # its __init_subclass__
        """deepeval's judge model on an OpenAiJudge: structured output from deepeval's schema (falling back to JSON
        mode and plain text), temperature 0, bounded retries that honour Retry-After. Counts what it spends, so
        make one per measure. Async only: the client belongs to the running event loop."""

        def __init__(self, judge: OpenAiJudge) -> None:
            self._judge = judge
            self.input_tokens = 0
            self.output_tokens = 0
            self.cost_usd = 0.0
            super().__init__(judge.model)

        def load_model(self, *args: Any, **kwargs: Any) -> OpenAiDeepEvalModel:
            return self

        def get_model_name(self, *args: Any, **kwargs: Any) -> str:
            return self._judge.model

        def generate(self, *args: Any, **kwargs: Any) -> str:
            raise NotImplementedError("OpenAiDeepEvalModel is async only: measure with a_measure")

        # The base declares (*args, **kwargs) -> str; metrics call (prompt, schema=...) and take an instance back.
        async def a_generate(  # type: ignore[override]
            self, prompt: Any, schema: type[pydantic.BaseModel] | None = None, **kwargs: Any
        ) -> pydantic.BaseModel:
            if schema is None or not isinstance(prompt, str) or kwargs:
                # every step of METRIC_CLASSES asks for a schema with a text prompt; no images or audio are sent
                raise NotImplementedError("OpenAiDeepEvalModel answers text prompts with a schema only")
            completion = await self._judge.complete(
                [{"role": "user", "content": prompt}], schema.__name__, to_strict_json_schema(schema)
            )
            input_tokens, output_tokens, cost = self._judge.usage(completion)
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.cost_usd += cost
            content = (completion.choices[0].message.content or "") if completion.choices else ""
            return parse_answer(content, schema)

    return OpenAiDeepEvalModel


def __getattr__(name: str) -> Any:
    if name == "OpenAiDeepEvalModel":  # imports deepeval
        return _model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
