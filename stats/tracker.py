"""The statistics' front door: evaluations in, alerts out, everything in the store.

Each `record` stores its evaluations and alerts in one transaction; the series states are checkpointed every
`checkpoint_every` evaluations and on `close` (serialising every touched series per judged batch would cost more
than the statistics themselves). After a crash, `replay.recover` rebuilds the exact state from the checkpoint and
the evaluations stored after it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import StatsConfig
from .records import Alert, Evaluation
from .replay import recover
from .store import Store


class QualityTracker:
    def __init__(self, store: Store, config: StatsConfig, checkpoint_every: int = 1000) -> None:
        self.store = store
        self._config = config
        self._checkpoint_every = checkpoint_every
        self.monitor, self._seq = recover(store, config)
        self._since_checkpoint = 0

    def record(self, evaluations: Sequence[Evaluation]) -> list[Alert]:
        """Stores the evaluations not stored yet and returns the alerts they raised (stored too)."""
        fresh = self.store.fresh(evaluations)
        if not fresh:
            return []
        try:
            alerts = self.monitor.observe(fresh)
            self._seq = self.store.save(fresh, alerts)
        except Exception:
            self.monitor, self._seq = recover(self.store, self._config)  # back to what is stored
            raise
        self._since_checkpoint += len(fresh)
        if self._since_checkpoint >= self._checkpoint_every:
            self.checkpoint()
        return alerts

    def checkpoint(self) -> None:
        changed = self.monitor.changed
        self.store.checkpoint({key: self.monitor.series[key].state() for key in changed}, self._seq)
        changed.clear()
        self._since_checkpoint = 0

    def close(self) -> None:
        self.checkpoint()
        self.store.close()
