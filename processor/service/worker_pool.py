"""The judge worker processes `tracejudge serve` starts for its judge stages (`workers.processes`): each is
`tracejudge worker` on the same config document, judging one stage, so judging never shares the receivers' event
loop or GIL. A process that exits is started again (with a backoff); on shutdown each is asked to stop (SIGTERM)
and killed if it does not within `STOP_S`. A worker killed mid-call loses nothing: its leases expire and the
items are leased again.

Each worker serves its own metrics on a loopback port it reports on its first line of output; the service's
/metrics fetches and merges them (label `process`), and the admin route that resumes a paused tier is passed on to
every worker, since the tiers' gates live where the judging is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tracejudge.processor.component.host import AdminRoute

log = logging.getLogger(__name__)

STOP_S = 15.0  # a worker asked to stop gets this long to drain its sending queues before it is killed
RESTART_S = (1.0, 30.0)  # first and longest wait before a worker that exited is started again
SCRAPE_S = 2.0  # per worker, when /metrics fetches theirs
READY_LINE = "tracejudge-worker-ready"  # a worker's first line of output: this, then its metrics port


@dataclass
class _Worker:
    name: str  # worker1, worker2...: also names its files (an exporter's disk queue)
    stage: str
    process: asyncio.subprocess.Process | None = None
    metrics_port: int = 0
    starts: int = 0
    supervisor: asyncio.Task[None] | None = field(default=None, repr=False)


class WorkerPool:
    def __init__(self, document: Mapping[str, Any], environ: Mapping[str, str],
                 stages: Sequence[tuple[str, int]]) -> None:
        self._config = json.dumps({"document": document, "environ": dict(environ)})
        self.workers = [_Worker(f"worker{i + 1}", stage) for i, stage in
                        enumerate(stage for stage, count in stages for _ in range(count))]
        self._stopping = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Starts every worker and returns once each has reported ready (or exited: its supervisor retries)."""
        self._stopping.clear()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_S))
        ready = [asyncio.get_running_loop().create_future() for _ in self.workers]
        for worker, started in zip(self.workers, ready, strict=True):
            worker.supervisor = asyncio.create_task(self._supervise(worker, started), name=f"{worker.name} supervisor")
        await asyncio.gather(*ready)

    async def _supervise(self, worker: _Worker, ready: asyncio.Future[None]) -> None:
        wait_s = RESTART_S[0]
        while not self._stopping.is_set():
            try:
                code = await self._run(worker, ready)
            except Exception:  # could not even start it (no such interpreter?): retried like an exit
                log.exception("judge %s could not be started", worker.name)
                code = None
            if not ready.done():
                ready.set_result(None)
            if self._stopping.is_set():
                return
            log.error("judge %s (stage %s) exited with status %s; starting it again in %g s", worker.name,
                      worker.stage, code, wait_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait_s)
            wait_s = min(RESTART_S[1], wait_s * 2)

    async def _run(self, worker: _Worker, ready: asyncio.Future[None]) -> int:
        process = worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tracejudge.processor.cli", "worker", "--config-json", "-", "--stage",
            worker.stage, "--name", worker.name, "--metrics-address", "127.0.0.1:0", "--parent", str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        worker.starts += 1
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(self._config.encode())
        process.stdin.close()
        line = (await process.stdout.readline()).decode().split()
        if len(line) == 2 and line[0] == READY_LINE:
            worker.metrics_port = int(line[1])
            log.info("judge %s (stage %s) is running, pid %d", worker.name, worker.stage, process.pid)
            if not ready.done():
                ready.set_result(None)
        code = await process.wait()
        worker.metrics_port = 0
        return code

    async def expositions(self) -> list[tuple[str, str]]:
        """Each running worker's metrics in the OpenMetrics format (which keeps exemplars), by worker name; a worker
        that does not answer in time is left out of this scrape."""
        async def fetch(worker: _Worker) -> tuple[str, str] | None:
            if not worker.metrics_port or self._http is None:
                return None
            try:
                async with self._http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics",
                                          headers={"Accept": "application/openmetrics-text"}) as response:
                    return worker.name, await response.text()
            except (aiohttp.ClientError, TimeoutError) as e:
                log.warning("judge %s: its metrics could not be read (%s)", worker.name, e)
                return None

        found = await asyncio.gather(*(fetch(worker) for worker in self.workers))
        return [answer for answer in found if answer is not None]

    def admin_routes(self) -> list[AdminRoute]:
        """POST /judge/tiers/{tier}/resume, passed on to every worker (with the caller's credentials)."""

        async def resume(request: web.Request) -> web.Response | None:
            resumed = False
            headers = {name: request.headers[name] for name in ("Authorization", "Cookie") if name in request.headers}
            for worker in self.workers:
                if not worker.metrics_port or self._http is None:
                    continue
                try:
                    async with self._http.post(f"http://127.0.0.1:{worker.metrics_port}{request.path}",
                                               headers=headers) as response:
                        resumed |= response.status == 200
                except (aiohttp.ClientError, TimeoutError) as e:
                    log.warning("judge %s: could not pass on %s (%s)", worker.name, request.path, e)
            return web.json_response({"resumed": request.match_info["tier"]}) if resumed else None

        return [AdminRoute("POST", "/judge/tiers/{tier}/resume", resume,
                           "no judge tier {tier!r} in this configuration")]

    async def shutdown(self) -> None:
        self._stopping.set()
        running = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), STOP_S)
            except TimeoutError:
                log.warning("judge worker pid %d did not stop within %g s; killed", process.pid, STOP_S)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for worker in self.workers:
            if worker.supervisor is not None:
                worker.supervisor.cancel()
                await asyncio.gather(worker.supervisor, return_exceptions=True)
                worker.supervisor = None
        if self._http is not None:
            await self._http.close()
            self._http = None
