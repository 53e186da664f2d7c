"""Child processes of the benchmark, and what /proc says about them (CPU seconds, resident and peak memory)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Child", "ProcStats", "python_module"]

_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_REPO = Path(__file__).resolve().parent.parent  # children run from here, so `-m bench.…` resolves


def python_module(module: str, *args: str) -> list[str]:
    """argv running `module` with the benchmark's own interpreter."""
    return [sys.executable, "-m", module, *args]


class ProcStats:
    """Reads /proc/<pid>: CPU time of all threads, VmRSS and VmHWM (peak RSS, resettable via clear_refs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_S  # utime + stime, fields 14 and 15

    def memory_mib(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MiB."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024  # the kernel reports kB
        return values["VmRSS"], values["VmHWM"]

    def reset_peak(self) -> bool:
        """Sets the peak back to the current RSS (Linux ≥ 4.0); False if not permitted, peak is then lifetime."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return False
        return True


class Child:
    """A subprocess whose merged stdout/stderr is read line by line in the background (so it never blocks on a
    full pipe) and can be waited on for a line matching a pattern."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self._process = process
        self.stats = ProcStats(process.pid)
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._exited = False
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=_REPO)
        return cls(name, process)

    async def wait_for(self, pattern: str, timeout_s: float, after: int = 0) -> tuple[re.Match[str], int]:
        """The first line at index ≥ `after` matching `pattern`, and the index to continue from."""
        regex = re.compile(pattern)
        index = after
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    while index < len(self.lines):
                        match = regex.search(self.lines[index])
                        index += 1
                        if match:
                            return match, index
                    if self._exited:
                        raise RuntimeError(self._missing(pattern, f"exited (status {self._process.returncode})"))
                    self._new_line.clear()
                    await self._new_line.wait()
        except TimeoutError as e:
            raise RuntimeError(self._missing(pattern, f"did not print it within {timeout_s:g} s")) from e

    def _missing(self, pattern: str, what: str) -> str:
        return f"{self.name} was expected to print /{pattern}/ but {what}; its last output:\n  " + "\n  ".join(
            self.lines[-25:])

    async def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it hasn't exited after `timeout_s`; returns the exit status."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), timeout_s)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        await self._reader
        return self._process.returncode if self._process.returncode is not None else -1

    async def wait(self) -> int:
        await self._reader
        return await self._process.wait()

    async def _read(self) -> None:
        output = self._process.stdout
        if output is None:
            raise RuntimeError("Child.start always pipes stdout")
        try:
            while line := await output.readline():
                self.lines.append(line.decode(errors="replace").rstrip())
                self._new_line.set()
        finally:
            await self._process.wait()
            self._exited = True
            self._new_line.set()
