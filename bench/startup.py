"""Start-up cost of two revisions, measured in one run: `tracejudge --help`, `tracejudge validate` and `serve` with
the shipped config (start to listening, to ready), and the resident memory of a bare otlp → debug service after
forwarding a burst of requests.

Each revision runs from a tree of its own (a symlink farm mapping `tracejudge.*` to the checkout, as the editable
install does) with the same interpreter and the same installed libraries, so only the code differs:

    .venv/bin/python -m bench.startup                    # the working tree against a9ae188 (before the layout move)
    .venv/bin/python -m bench.startup --baseline <rev>   # against another commit
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc

from .payloads import build_requests
from .procs import ProcStats

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "bench-startup"
PRE_MOVE = "a9ae188"  # the last commit before processor/ was laid out by component kind
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PACKAGES = {"processor": "processor", "judge": "judge", "stats": "stats", "v1": "proto/gen/tracejudge/v1"}


class Revision:
    """A checkout with an interpreter whose `tracejudge` is that checkout."""

    def __init__(self, name: str, checkout: Path) -> None:
        self.name, self.checkout = name, checkout
        root = BUILD / name
        site = root / "site" / "tracejudge"
        site.mkdir(parents=True, exist_ok=True)
        for package, folder in PACKAGES.items():
            link = site / package
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(checkout / folder, target_is_directory=True)
        venv = root / "venv"
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        libraries = Path(next(p for p in sys.path if p.endswith("site-packages") and ".venv" in p))
        (next((venv / "lib").glob("python3*")) / "site-packages" / "tracejudge_bench.pth").write_text(
            f"{root / 'site'}\n{libraries}\n")
        self.python = str(venv / "bin" / "python")

    def command(self, *args: str) -> list[str]:
        return [self.python, "-m", "tracejudge.processor.cli", *args]


def checkout_of(revision: str) -> Path:
    """`revision`'s tree, exported once into build/ (git archive: no worktree to clean up)."""
    target = BUILD / f"src-{revision}"
    if not (target / "processor").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", revision], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def timed(argv: list[str], cwd: Path, runs: int) -> dict[str, float]:
    """Wall time from process start to exit, over `runs` runs (after one warm-up run)."""
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": runs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served_config(shipped: str, data: Path) -> tuple[str, dict[str, int]]:
    """The shipped config with every listener on a free loopback port and its stores in `data`."""
    ports: dict[str, int] = {}

    def port(match: re.Match[str]) -> str:
        ports[match.group(1)] = free_port()
        return f"127.0.0.1:{ports[match.group(1)]}"

    text = re.sub(r"(?:0\.0\.0\.0|localhost):(\d+)", port, shipped)
    text = re.sub(r"directory: .*", f"directory: {data}", text)
    return text, ports


def wait_until(check: Callable[[], bool], timeout_s: float) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"not ready after {timeout_s} s")
        time.sleep(0.005)
    return time.perf_counter() - started


def listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    return check


def healthy(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False
    return check


def serve(revision: Revision, runs: int) -> dict[str, float]:
    """`tracejudge serve` with the revision's shipped config: until OTLP/gRPC accepts connections, until the
    health check says ready, and the RSS then."""
    listen, ready, rss = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as data:
            text, ports = served_config((revision.checkout / "otel-config.yaml").read_text(), Path(data))
            config = Path(data) / "config.yaml"
            config.write_text(text)
            started = time.perf_counter()
            process = subprocess.Popen(revision.command("serve", "--config", str(config)), cwd=revision.checkout,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_until(listening(ports["4317"]), 60)
                listen.append(time.perf_counter() - started)
                wait_until(healthy(ports["13133"]), 60)
                ready.append(time.perf_counter() - started)
                rss.append(ProcStats(process.pid).memory_mib()[0])
            finally:
                process.terminate()
                process.wait(30)
    return {"listen_median_s": statistics.median(listen), "ready_median_s": statistics.median(ready),
            "rss_mib_at_ready": statistics.median(rss), "runs": runs}


BARE = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{port}"}}
exporters:
  debug:
service:
  telemetry: {{metrics: {{address: ""}}, logs: {{level: warn}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
"""


def bare(revision: Revision, requests: int) -> dict[str, float]:
    """A bare otlp → debug service: RSS once listening, and RSS and peak after `requests` 100-span requests."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        config = Path(data) / "bare.yaml"
        config.write_text(BARE.format(port=port))
        process = subprocess.Popen(revision.command("serve", "--config", str(config)), cwd=revision.checkout,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(listening(port), 60)
            stats = ProcStats(process.pid)
            idle, _ = stats.memory_mib()
            payloads = build_requests(100, 0.1, 8)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                export = channel.unary_unary(EXPORT)
                for i in range(requests):
                    export(payloads[i % len(payloads)], timeout=10)
            rss, peak = stats.memory_mib()
        finally:
            process.terminate()
            process.wait(30)
    return {"rss_mib_idle": idle, "rss_mib_after": rss, "peak_mib": peak, "requests": requests}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=PRE_MOVE, help="the commit to compare with (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=7, help="runs per CLI timing (default: %(default)s)")
    parser.add_argument("--serve-runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500, help="100-span requests sent to the bare service")
    args = parser.parse_args()
    revisions = [Revision(f"baseline-{args.baseline}", checkout_of(args.baseline)), Revision("current", REPO)]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for revision in revisions:
        shipped = str(revision.checkout / "otel-config.yaml")
        results[revision.name] = {
            "--help": timed(revision.command("--help"), revision.checkout, args.runs),
            "validate": timed(revision.command("validate", "--config", shipped), revision.checkout, args.runs),
            "serve (shipped config)": serve(revision, args.serve_runs),
            "bare otlp -> debug": bare(revision, args.requests),
        }
    before, after = (results[r.name] for r in revisions)
    print(f"{'':40}{revisions[0].name:>18}{'current':>10}{'ratio':>8}")
    for measure, figure in (("--help", "median_s"), ("validate", "median_s"),
                            ("serve (shipped config)", "listen_median_s"), ("serve (shipped config)", "ready_median_s"),
                            ("serve (shipped config)", "rss_mib_at_ready"), ("bare otlp -> debug", "rss_mib_idle"),
                            ("bare otlp -> debug", "rss_mib_after"), ("bare otlp -> debug", "peak_mib")):
        old, new = before[measure][figure], after[measure][figure]
        print(f"{measure + ' ' + figure:40}{old:>18.3f}{new:>10.3f}{new / old:>8.2f}")
    out = REPO / "bench" / "results" / "startup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"(seconds and MiB; medians; written to {out.relative_to(REPO)})")


if __name__ == "__main__":
    main()
