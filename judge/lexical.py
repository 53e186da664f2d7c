"""The embedded local judge's placeholder scorer: word support, honest about being weak.

faithfulness = the share of the response's content words that occur in the context;
relevancy = the share of the query's content words that the response takes up.
These are the trivial floors a trained model must beat (issue 5 replaces this scorer); confidence is the distance
from the pass threshold, so the cascade escalates whatever sits near it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence

from .verdict import JudgeInput, Verdict, unjudged

MODEL = "lexical-overlap-1"
THRESHOLD = 0.5

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_STOPWORDS = frozenset(
    """a an the and or but if then of in on at to for from by with as is are was were be been being it its this that
    these those i you he she we they them his her their our your my me us do does did not no yes so what which who
    whom whose when where why how than too very can could should would will shall may might must have has had there
    here about into over under also just only""".split()  # noqa: SIM905 - a word list reads best as words
)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


class LexicalJudge:
    tier = "local"
    model = MODEL
    prompt_version = MODEL

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        return 0.0

    async def close(self) -> None:
        return None

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        return await asyncio.get_running_loop().run_in_executor(None, self._judge_all, list(inputs))

    def _judge_all(self, inputs: list[JudgeInput]) -> list[Verdict]:
        return [self._judge_one(item) for item in inputs]

    def _judge_one(self, item: JudgeInput) -> Verdict:
        started = time.perf_counter()
        if item.metric == "faithfulness":
            if not item.context.strip():
                return unjudged(item, "no_context", "faithfulness needs retrieved or grounding context", self.tier,
                                MODEL)
            claimed, source = content_words(item.response), content_words(item.context)
        elif item.metric == "relevancy":
            claimed, source = content_words(item.query), content_words(item.response)
        else:
            return unjudged(item, "unsupported_metric", f"{item.metric!r} is not a metric of {MODEL}", self.tier,
                            MODEL)
        if not claimed:
            return unjudged(item, "no_content", "nothing to compare: no content words", self.tier, MODEL)
        score = len(claimed & source) / len(claimed)
        passed = score >= THRESHOLD
        missing = sorted(claimed - source)[:5]
        explanation = f"{len(claimed & source)} of {len(claimed)} content words supported"
        if missing:
            explanation += f"; not found: {', '.join(missing)}"
        return Verdict(item.metric, score, "pass" if passed else "fail", explanation, tier=self.tier,
                       judge_model=MODEL, judge_prompt_version=MODEL, confidence=min(1.0, abs(score - THRESHOLD) * 2),
                       latency_s=time.perf_counter() - started)
