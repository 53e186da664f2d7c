"""A real Prometheus (Debian's package, /usr/bin/prometheus, installed by `make test`) scraping a tracejudge's
/metrics every second with exemplar storage on, on a free port, and its HTTP API."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.phoenix import free_ports
from tests.support.process import BackendProcess

BINARY_ENV = "TRACEJUDGE_PROMETHEUS"


def prometheus_binary() -> str:
    """$TRACEJUDGE_PROMETHEUS, else `prometheus` on the PATH; skips locally when there is none, fails in CI."""
    found = os.environ.get(BINARY_ENV) or shutil.which("prometheus")
    if found and os.access(found, os.X_OK):
        return found
    message = "no prometheus binary: run `make test` (it installs Debian's prometheus package)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false") or os.environ.get(BINARY_ENV):
        pytest.fail(message)
    pytest.skip(message)


class PrometheusServer(BackendProcess):
    def __init__(self, binary: str, working_dir: Path, target: str) -> None:
        super().__init__("Prometheus", working_dir / "prometheus.log", startup_timeout_s=60.0)
        self.binary = binary
        self.working_dir = working_dir
        (self.port,) = free_ports(1)
        self.config = working_dir / "prometheus.yml"
        self.config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: tracejudge
    static_configs: [{{targets: ["{target}"]}}]
""")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"{self.url}/-/ready"

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        return [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.working_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--enable-feature=exemplar-storage"], None, None

    async def _get(self, path: str, **params: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}{path}", params=params) as response:
            response.raise_for_status()
            document = await response.json()
        assert document["status"] == "success", document
        return document["data"]

    async def query(self, expression: str) -> list[dict[str, Any]]:
        """GET /api/v1/query: the instant vector's samples."""
        result: list[dict[str, Any]] = (await self._get("/api/v1/query", query=expression))["result"]
        return result

    async def exemplars(self, expression: str, since_s: float = 600) -> list[dict[str, Any]]:
        """GET /api/v1/query_exemplars over the last `since_s`: every exemplar of the matching series."""
        now = time.time()
        data: list[dict[str, Any]] = await self._get("/api/v1/query_exemplars", query=expression,
                                                     start=str(now - since_s), end=str(now + 60))
        return [exemplar for series in data for exemplar in series["exemplars"]]
