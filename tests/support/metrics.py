"""Reading the service's own Prometheus metrics in tests."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tracejudge.processor.service.service import Service


def metric(service: Service, name: str, **labels: str) -> float:
    """The current value of one sample, 0 when it was never set."""
    return service.telemetry.registry.get_sample_value(name, labels) or 0.0


async def scraped(service: Service, name: str, **labels: str) -> float:
    """One sample as a scraper sees it on /metrics, summed over processes (judge workers add `process`)."""
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{service.metrics_port}/metrics") as response:
        text = await response.text()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


async def scraped_is(value: float, service: Service, name: str, **labels: str) -> bool:
    """Whether `scraped` gives `value` (for `eventually`)."""
    return await scraped(service, name, **labels) == value
