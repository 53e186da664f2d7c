"""Relays the judge queue's decision outbox to the decision log. Records about items are written in the
transaction that changes the items (so a crash loses neither); this moves them on within RELAY_INTERVAL_S, and
removes them from the outbox only once the log has committed them: a crash between the two relays them again,
and the log keeps one of each."""

from __future__ import annotations

import asyncio
import logging

from tracejudge.judge.queue import JudgeQueueStore
from tracejudge.processor.component.decisions import DecisionRecorder

log = logging.getLogger(__name__)

RELAY_BATCH = 512
RELAY_INTERVAL_S = 0.2
RETRY_INTERVAL_S = 5.0  # after the decision log failed to take a batch
DRAIN_ROUNDS = 100  # at shutdown, at most this many batches are relayed; the rest wait for the next start


class DecisionRelay:
    def __init__(self, queue: JudgeQueueStore, decisions: DecisionRecorder) -> None:
        self._queue = queue
        self._decisions = decisions

    async def run(self) -> None:
        while True:
            try:
                relayed = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the records stay in the outbox
                log.exception("decision records could not be relayed to the decision log; trying again in %g s",
                              RETRY_INTERVAL_S)
                await asyncio.sleep(RETRY_INTERVAL_S)
                continue
            if relayed < RELAY_BATCH:
                await asyncio.sleep(RELAY_INTERVAL_S)

    async def relay_once(self) -> int:
        """Relay the oldest batch; returns how many records it held."""
        pending = self._queue.pending_decisions(RELAY_BATCH)
        if pending:
            await self._decisions.write([record for _, record in pending])
            self._queue.forget_decisions([seq for seq, _ in pending])
        return len(pending)

    async def drain(self) -> None:
        """Relay what is left (at shutdown); what cannot be is relayed after the next start."""
        try:
            for _ in range(DRAIN_ROUNDS):
                if await self.relay_once() == 0:
                    return
        except Exception:
            log.exception("decision records left in the judge queue's outbox; they are relayed at the next start")
