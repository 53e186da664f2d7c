"""The verdict cache: the same text judged by the same judge (model and prompt version) is not paid for twice.

Keyed by a hash of (query, context, response, metric, judge model, judge prompt version); entries expire after a TTL.
Only verdicts with a score are kept: a failed call is worth trying again. A cached verdict says so (`cached`) and
costs nothing this time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Protocol

from .verdict import Judge, JudgeInput, JudgeWrapper, Verdict


class VerdictStore(Protocol):
    """Where cached verdicts live (the judge queue's database); `ttl_s` counts from when a verdict was put."""

    def cached_verdicts(self, keys: Sequence[str]) -> dict[str, str]: ...

    def cache_verdicts(self, entries: dict[str, str], ttl_s: float) -> None: ...


def cache_key(judge: Judge, item: JudgeInput) -> str:
    fields = [item.query, item.context, item.response, item.metric, judge.model, judge.prompt_version]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


class CachedJudge(JudgeWrapper):
    """A judge in front of which the cache sits; its identity is the wrapped judge's."""

    def __init__(self, judge: Judge, store: VerdictStore, ttl_s: float) -> None:
        super().__init__(judge)
        self._store = store
        self._ttl_s = ttl_s

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        keys = [cache_key(self._judge, item) for item in inputs]
        found = self._store.cached_verdicts(keys)
        missing = [i for i, key in enumerate(keys) if key not in found]
        fresh = await self._judge.judge([inputs[i] for i in missing]) if missing else []
        verdicts: list[Verdict | None] = [None] * len(inputs)
        for i, key in enumerate(keys):
            if key in found:
                verdicts[i] = dataclasses.replace(Verdict(**json.loads(found[key])), cached=True, cost_usd=0.0,
                                                  latency_s=0.0, input_tokens=0, output_tokens=0)
        for i, verdict in zip(missing, fresh, strict=True):
            verdicts[i] = verdict
        keep = {keys[i]: json.dumps(dataclasses.asdict(v)) for i, v in zip(missing, fresh, strict=True) if v.judged}
        if keep:
            self._store.cache_verdicts(keep, self._ttl_s)
        return [v for v in verdicts if v is not None]
