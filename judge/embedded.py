"""The embedded judge: the trained faithfulness cross-encoder and relevancy embeddings, in this process, on the CPU.

- faithfulness: P(the response is supported by the context), from the cross-encoder's logit and the lexical signals
  (`embedded_signals`) through the combiner fitted at training (`combiners`). No context: unjudged
  (`no_context`), never a guess.
- relevancy: P(the response answers this query rather than another one), from the cosine of the bi-encoder's
  embeddings, calibrated on matched vs mismatched pairs.
With an `adaptation` (`tracejudge adapt`: heads refitted on the user's labels, judge/adaptation.py), its heads replace
the shipped calibration for the metrics they cover, and the judge's version names it. Scores are those
probabilities (1 = good), pass at `threshold`; confidence is the distance from the threshold, scaled
to [0, 1]. Inference runs on one dedicated thread (ONNX Runtime uses `threads` cores inside it), at most `max_batch`
items per call, so memory stays bounded whatever the queue holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from tracejudge.processor.component.errors import ConfigError

from .adaptation import ADAPTER, Adaptation
from .embedded_model import DEFAULT_DIR, loaded, version_of
from .embedded_signals import Item, base_good, signals
from .embedded_text import unsupported
from .verdict import JudgeInput, Verdict, unjudged


class EmbeddedJudge:
    def __init__(self, directory: Path = DEFAULT_DIR, *, tier: str = "local", threads: int = 2,
                 max_batch: int = 32, adaptation: Adaptation | None = None) -> None:
        self._model = loaded(directory, threads)
        settings = self._model.settings
        self.tier = tier
        self.model = self._model.name
        base = version_of(settings)
        if adaptation is not None and adaptation.base != base:
            raise ConfigError(f"embedded judge: adaptation {adaptation.version} was fitted on {adaptation.base}, "
                              f"this model is {base}: adapt again (`tracejudge adapt`) after changing the model")
        self.adaptation = adaptation
        # what keys the verdict cache: a retrained model, or another adaptation, is a new judge
        self.prompt_version = f"{base}+{adaptation.version}" if adaptation else base
        self.threshold = float(settings["threshold"])
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-judge")

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        return 0.0

    async def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        loop = asyncio.get_running_loop()
        verdicts: list[Verdict] = []
        for start in range(0, len(inputs), self._max_batch):
            chunk = list(inputs[start:start + self._max_batch])
            verdicts += await loop.run_in_executor(self._executor, self.judge_now, chunk)
        return verdicts

    def judge_now(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        """Synchronous scoring of one batch (what `judge` runs on its thread)."""
        started = time.perf_counter()
        out: list[Verdict | None] = [None] * len(inputs)
        faithful: list[int] = []
        relevant: list[int] = []
        for i, item in enumerate(inputs):
            if item.metric == "faithfulness":
                if not item.context.strip():
                    out[i] = self._unjudged(item, "no_context",
                                            "faithfulness needs retrieved or grounding context: not judgeable")
                elif not item.response.strip():
                    out[i] = self._unjudged(item, "no_content", "the response is empty")
                else:
                    faithful.append(i)
            elif item.metric == "relevancy":
                if not item.query.strip() or not item.response.strip():
                    out[i] = self._unjudged(item, "no_content", "relevancy needs both a query and a response")
                else:
                    relevant.append(i)
            else:
                out[i] = self._unjudged(item, "unsupported_metric", f"{item.metric!r} is not a metric of {self.model}")
        if faithful:
            self._faithfulness(inputs, faithful, out)
        if relevant:
            self._relevancy_scores(inputs, relevant, out)
        latency = (time.perf_counter() - started) / max(1, len(faithful) + len(relevant))
        return [v if v.error_type else replace(v, latency_s=latency) for v in out if v is not None]

    def _good(self, metric: str, inputs: Sequence[JudgeInput], indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(P(good), the signal rows) of the items at `indices`, by the adaptation's head for `metric` if it has
        one, else by the shipped calibration."""
        head = self.adaptation.heads.get(metric) if self.adaptation else None
        items = [Item(inputs[i].query, inputs[i].context, inputs[i].response) for i in indices]
        x = signals(self._model, metric, items, embeddings=head is not None and head.kind == ADAPTER)
        return (head.good(x) if head is not None else base_good(self._model, metric, x)), x

    def _faithfulness(self, inputs: Sequence[JudgeInput], indices: list[int], out: list[Verdict | None]) -> None:
        good, _ = self._good("faithfulness", inputs, indices)
        for i, supported in zip(indices, good.tolist(), strict=True):
            item = inputs[i]
            missing = unsupported(item.context, item.response)
            explanation = f"P(supported by the context) = {supported:.2f}{self._adapted('faithfulness')}"
            if missing:
                explanation += f"; not found in the context: {', '.join(missing[:5])}"
            out[i] = self._verdict(item, supported, explanation)

    def _relevancy_scores(self, inputs: Sequence[JudgeInput], indices: list[int], out: list[Verdict | None]) -> None:
        good, x = self._good("relevancy", inputs, indices)
        for i, relevant, cosine in zip(indices, good.tolist(), x[:, 0].tolist(), strict=True):
            out[i] = self._verdict(inputs[i], relevant, f"P(answers this query) = {relevant:.2f} (embedding "
                                                        f"cosine {cosine:.2f}){self._adapted('relevancy')}")

    def _adapted(self, metric: str) -> str:
        adaptation = self.adaptation
        return f" [adapted: {adaptation.version}]" if adaptation and metric in adaptation.heads else ""

    def _verdict(self, item: JudgeInput, score: float, explanation: str) -> Verdict:
        margin = max(self.threshold, 1.0 - self.threshold)
        return Verdict(item.metric, score, "pass" if score >= self.threshold else "fail", explanation,
                       tier=self.tier, judge_model=self.model, judge_prompt_version=self.prompt_version,
                       confidence=min(1.0, abs(score - self.threshold) / margin))

    def _unjudged(self, item: JudgeInput, error_type: str, explanation: str) -> Verdict:
        return unjudged(item, error_type, explanation, self.tier, self.model)
