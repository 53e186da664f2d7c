"""The statistics' owner: evaluations stored by the judge workers in, alerts out, everything in the store.

One tracker owns the statistics of a store at a time (`Store.try_own`): `catch_up` observes the evaluations
stored since it last looked, in sequence order, and stores the alerts they raise. Series states are checkpointed
every `checkpoint_every` evaluations and on `close` (serialising every touched series per judged batch would cost
more than the statistics themselves). A new owner, after a crash or on another machine, starts from the checkpoint
and catches up: exactly the state of the committed evaluations; alerts raised again on the way have the ids they
had, so they are stored once.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import StatsConfig
from .monitor import QualityMonitor
from .records import Alert, Evaluation
from .store import Store


class QualityTracker:
    def __init__(self, store: Store, config: StatsConfig, checkpoint_every: int = 1000) -> None:
        self.store = store
        self._config = config
        self._checkpoint_every = checkpoint_every
        self._since_checkpoint = 0
        self.monitor, self.seq = self._from_checkpoint()
        self.catch_up()  # alerts raised again on the way are stored (and, if undelivered, delivered) already

    def _from_checkpoint(self) -> tuple[QualityMonitor, int]:
        states, seq = self.store.series_states()
        return QualityMonitor(self._config, states), seq

    def record(self, evaluations: Sequence[Evaluation]) -> list[Alert]:
        """Stores the evaluations not stored yet and returns the alerts everything stored so far raised (for a
        tracker that is also the only writer: tests, benchmarks, replay)."""
        self.store.add(evaluations)
        return self.catch_up()

    def catch_up(self, batch: int = 1000) -> list[Alert]:
        """Observes the evaluations stored after `seq` and returns the alerts they raised (stored). If storing
        fails, the state goes back to what is stored and the error is raised: the next call observes them again."""
        alerts: list[Alert] = []
        start = self.seq
        try:
            while True:
                last, evaluations = self.store.evaluations_after(self.seq, batch)
                if not evaluations:
                    break
                raised = self.monitor.observe(evaluations)
                self.store.save_alerts(raised)
                alerts += raised
                self.seq = last
                self._since_checkpoint += len(evaluations)
                if self._since_checkpoint >= self._checkpoint_every:
                    self.checkpoint()
            if self.seq != start:
                self.store.mark_observed(self.seq)
        except Exception:
            self.monitor, self.seq = self._from_checkpoint()
            raise
        return alerts

    @property
    def behind(self) -> bool:
        """Whether evaluations are stored that this tracker has not observed."""
        return self.store.last_seq() > self.seq

    def checkpoint(self) -> None:
        changed = self.monitor.changed
        self.store.checkpoint({key: self.monitor.series[key].state() for key in changed}, self.seq)
        changed.clear()
        self._since_checkpoint = 0

    def close(self) -> None:
        self.checkpoint()
        self.store.close()
