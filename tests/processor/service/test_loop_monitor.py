"""A stalled event loop shows in `tracejudge_event_loop_lag_seconds` and in the log."""

from __future__ import annotations

import logging
import time

import pytest

from tests.support.metrics import metric
from tests.support.pipeline import forwarding_config, running
from tests.support.waiting import eventually
from tracejudge.processor.service.loop_monitor import STALL_S


async def test_a_stall_is_measured_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with running(forwarding_config("127.0.0.1:1")) as service:
        await eventually(lambda: metric(service, "tracejudge_event_loop_lag_seconds_count") >= 2,
                         what="the monitor ticks")
        with caplog.at_level(logging.WARNING, logger="tracejudge.processor.service.loop_monitor"):
            time.sleep(STALL_S + 0.3)  # holds the loop, as a super-linear check on a hostile request would
            await eventually(lambda: service.loop_monitor.worst_s > STALL_S, what="the stall is measured")
        assert any("event loop stalled" in r.getMessage() for r in caplog.records)
        assert metric(service, "tracejudge_event_loop_lag_seconds_bucket", le="0.5") < metric(
            service, "tracejudge_event_loop_lag_seconds_count")
