"""Re-running the statistics over stored evaluations, in the order they were stored.

`replay` starts from empty state: the same store and settings give the same alerts, byte for byte
(`Alert.to_json`). `recover` starts from the last checkpoint and replays what was stored after it: the state of every
committed evaluation after a crash.
"""

from __future__ import annotations

from collections.abc import Iterator

from .config import StatsConfig
from .monitor import QualityMonitor
from .records import Alert
from .store import Store


def replay(store: Store, config: StatsConfig) -> Iterator[Alert]:
    monitor = QualityMonitor(config)
    for batch in store.evaluations():
        yield from monitor.observe(batch)


def recover(store: Store, config: StatsConfig) -> tuple[QualityMonitor, int]:
    """The monitor as of the last stored evaluation, and that evaluation's sequence number. Alerts raised again
    while catching up were stored before the crash (same ids), so they are not returned."""
    states, seq = store.series_states()
    monitor = QualityMonitor(config, states)
    last = store.last_seq()  # the catch-up reads up to here; nothing else writes meanwhile (one owner)
    for batch in store.evaluations(after_seq=seq):
        monitor.observe(batch)
    return monitor, last
