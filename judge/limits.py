"""What one judge tier may spend: a concurrency limit, a token-bucket rate, a daily USD budget, and a pause.

A `TierGate` is asked before every call (`reserve`) and told what it cost afterwards (`settle`). The budget is checked
against spend *plus* what calls in flight are expected to cost, so concurrent calls cannot overshoot it together;
spend per UTC day is kept in a `SpendLedger` (the judge queue's database), so a restart does not reset it.
Auth and billing errors pause the tier: nothing more is sent until `resume()` is called or `pause_s` has passed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, RetryableError

from .verdict import Judge, JudgeInput, JudgeWrapper, Verdict, unjudged

log = logging.getLogger(__name__)

# Verdict error types that mean the account, not the request, is the problem: the tier pauses on them.
PAUSING_ERRORS = frozenset({"auth_error", "billing_error"})


@dataclass(frozen=True)
class TierLimits:
    concurrency: int = 4  # calls in flight
    rate_per_s: float = 0.0  # calls per second, as a token bucket; 0 = no limit
    burst: int = 0  # the bucket's size; 0 = max(1, rate_per_s)
    daily_budget_usd: float = 0.0  # spend per UTC day, from token usage x prices; 0 = no limit
    low_budget_fraction: float = 0.2  # below this fraction of the budget left, the sampler's rates scale down
    pause: Duration = 600.0  # after an auth or billing error, how long to wait before trying again; 0 = until resumed

    def validate(self, path: str) -> None:
        problems = []
        if self.concurrency < 1:
            problems.append(f"{path}.concurrency: must be at least 1")
        for name in ("rate_per_s", "daily_budget_usd", "burst", "pause"):
            if getattr(self, name) < 0:
                problems.append(f"{path}.{name}: must not be negative")
        if not 0 <= self.low_budget_fraction <= 1:
            problems.append(f"{path}.low_budget_fraction: must be in [0, 1]")
        if problems:
            raise ConfigError(problems)


class SpendLedger(Protocol):
    def spent_usd(self, tier: str, day: str) -> float: ...

    def add_spend(self, tier: str, day: str, usd: float) -> None: ...


class Unavailable(RetryableError):
    """The tier cannot take a call now; `error_type` is what the unjudged verdict says."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def utc_day(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix_s))


class TierGate:
    def __init__(self, tier: str, limits: TierLimits, ledger: SpendLedger | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.tier = tier
        self._limits = limits
        self._ledger = ledger
        self._clock = clock
        self._slots = asyncio.Semaphore(limits.concurrency)
        self._capacity = float(limits.burst or max(1.0, limits.rate_per_s))
        self._tokens = self._capacity
        self._refilled_at = time.monotonic()
        self._bucket = asyncio.Lock()
        self._reserved_usd = 0.0
        self._day = ""
        self._spent_usd = 0.0
        self.paused_reason = ""
        self._paused_until = 0.0

    # -- state, for metrics, logs and the sampler

    @property
    def paused(self) -> bool:
        if self.paused_reason and self._limits.pause and self._clock() >= self._paused_until:
            log.info("judge tier %s: pause over (%s); trying again", self.tier, self.paused_reason)
            self.paused_reason = ""
        return bool(self.paused_reason)

    @property
    def budget_usd(self) -> float:
        return self._limits.daily_budget_usd

    @property
    def spent_usd(self) -> float:
        """Today's spend: the ledger's, which every process and instance judging from it shares (so a budget holds
        across them, overrun by at most the calls in flight); without a ledger, this gate's own."""
        self._roll_day()
        if self._ledger is not None:
            self._spent_usd = self._ledger.spent_usd(self.tier, self._day)
        return self._spent_usd

    @property
    def budget_left_fraction(self) -> float:
        """1 without a budget; else the share of today's budget not yet spent or reserved, in [0, 1]."""
        if not self._limits.daily_budget_usd:
            return 1.0
        left = self._limits.daily_budget_usd - self.spent_usd - self._reserved_usd
        return min(1.0, max(0.0, left / self._limits.daily_budget_usd))

    @property
    def low_budget_fraction(self) -> float:
        return self._limits.low_budget_fraction

    def pause(self, reason: str) -> None:
        if not self.paused_reason:
            until = f"for {self._limits.pause:g} s" if self._limits.pause else "until resumed"
            log.error("judge tier %s paused %s: %s", self.tier, until, reason)
        self.paused_reason = reason
        self._paused_until = self._clock() + self._limits.pause

    def resume(self) -> None:
        if self.paused_reason:
            log.info("judge tier %s resumed (was paused: %s)", self.tier, self.paused_reason)
        self.paused_reason = ""

    # -- one call

    @asynccontextmanager
    async def reserve(self, estimate: Callable[[], float]) -> AsyncIterator[Reservation]:
        """Hold a concurrency slot and a rate token for one call expected to cost `estimate()` USD; raises
        Unavailable when the tier is paused or the call would take spend past today's budget. The estimate is asked
        for again once the slot is held: calls finished meanwhile may have taught the judge better."""
        self._check_open(estimate())
        async with self._slots:
            await self._take_token()
            estimate_usd = estimate()
            self._check_open(estimate_usd)  # the wait may have been long
            reservation = Reservation(estimate_usd)
            self._reserved_usd += estimate_usd
            try:
                yield reservation
            finally:
                self._reserved_usd -= estimate_usd
                self._record(reservation.cost_usd)

    def _check_open(self, estimate_usd: float) -> None:
        if self.paused:
            raise Unavailable("tier_paused", f"judge tier {self.tier} is paused: {self.paused_reason}")
        budget = self._limits.daily_budget_usd
        if budget and self.spent_usd + self._reserved_usd + estimate_usd > budget:
            raise Unavailable("budget_exhausted", f"judge tier {self.tier} has spent its daily budget of "
                                                  f"{budget:g} USD (spent {self._spent_usd:.4f})")

    async def _take_token(self) -> None:
        rate = self._limits.rate_per_s
        if not rate:
            return
        async with self._bucket:
            while True:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._refilled_at) * rate)
                self._refilled_at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / rate)

    def _record(self, cost_usd: float) -> None:
        self._roll_day()
        if cost_usd <= 0 or math.isnan(cost_usd):
            return
        self._spent_usd += cost_usd
        if self._ledger is not None:
            self._ledger.add_spend(self.tier, self._day, cost_usd)

    def _roll_day(self) -> None:
        day = utc_day(self._clock())
        if day != self._day:
            self._day = day
            self._spent_usd = self._ledger.spent_usd(self.tier, day) if self._ledger is not None else 0.0


@dataclass
class Reservation:
    estimate_usd: float
    cost_usd: float = 0.0  # set by the caller once the call has answered


class GatedJudge(JudgeWrapper):
    """A judge whose every call goes through its tier's gate. A server judge is called one item per call, so
    concurrency, rate and budget count calls; an in-process judge (`batched`) gets each batch as one call, since it
    infers a batch at once. A call the gate refuses is an unjudged verdict saying why; auth and billing errors pause
    the tier."""

    def __init__(self, judge: Judge, gate: TierGate, batched: bool = False) -> None:
        super().__init__(judge)
        self.gate = gate
        self._batched = batched

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        if self._batched:
            return await self._call(list(inputs))
        return [v for verdicts in await asyncio.gather(*(self._call([item]) for item in inputs)) for v in verdicts]

    async def _call(self, items: list[JudgeInput]) -> list[Verdict]:
        try:
            async with self.gate.reserve(lambda: sum(self._judge.estimate_cost_usd(i) for i in items)) as reservation:
                verdicts = await self._judge.judge(items)
                reservation.cost_usd = sum(v.cost_usd for v in verdicts)
        except Unavailable as e:
            return [unjudged(item, e.error_type, str(e), self.tier, self.model) for item in items]
        for verdict in verdicts:
            if verdict.error_type in PAUSING_ERRORS:
                self.gate.pause(f"{verdict.error_type}: {verdict.explanation}")
        return verdicts
