"""A real headless Chromium (Debian's `chromium`, installed by `make test`) driven through chromedriver's W3C
WebDriver HTTP API: a chromedriver process on a free port, one browser session, a few commands."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.phoenix import free_ports
from tests.support.process import BackendProcess
from tests.support.waiting import eventually

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


def chromedriver_binary() -> str:
    """chromedriver and chromium on the PATH; skips locally without them, fails in CI."""
    found = shutil.which("chromedriver")
    if found and shutil.which("chromium"):
        return found
    message = "no chromedriver/chromium: run `make test` (it installs Debian's chromium and chromium-driver)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message)
    pytest.skip(message)


class Browser(BackendProcess):
    def __init__(self, binary: str, working_dir: Path) -> None:
        super().__init__("chromedriver", working_dir / "chromedriver.log", startup_timeout_s=30.0)
        self.binary = binary
        self.working_dir = working_dir
        (self.port,) = free_ports(1)
        self.session = ""

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/status"

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        return [self.binary, f"--port={self.port}"], None, None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        async with aiohttp.ClientSession() as http, http.request(method, url, json=body) as response:
            document = await response.json()
        if response.status != 200:
            raise AssertionError(f"{method} {path}: {response.status} {document}")
        return document["value"]

    async def open(self) -> None:
        # The flags keep Chromium off the network it would otherwise reach for (refused on this machine).
        arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", f"--user-data-dir={self.working_dir / 'profile'}"]
        capabilities = {"browserName": "chrome",
                        "goog:chromeOptions": {"binary": shutil.which("chromium"), "args": arguments}}
        value = await self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = value["sessionId"]

    async def close(self) -> None:
        if self.session:
            await self._call("DELETE", f"/session/{self.session}")
            self.session = ""

    async def go(self, url: str) -> None:
        await self._call("POST", f"/session/{self.session}/url", {"url": url})

    async def url(self) -> str:
        value: str = await self._call("GET", f"/session/{self.session}/url")
        return value

    async def find(self, css: str) -> str:
        value = await self._call("POST", f"/session/{self.session}/element", {"using": "css selector", "value": css})
        assert ELEMENT in value, f"{css}: {value}"
        return str(value[ELEMENT])

    async def type(self, css: str, text: str) -> None:
        await self._call("POST", f"/session/{self.session}/element/{await self.find(css)}/value", {"text": text})

    async def click(self, css: str) -> None:
        await self._call("POST", f"/session/{self.session}/element/{await self.find(css)}/click", {})

    async def text(self, css: str) -> str:
        value: str = await self._call("GET", f"/session/{self.session}/element/{await self.find(css)}/text")
        return value

    async def shows(self, css: str, expected: str, timeout_s: float = 20.0) -> None:
        """Wait until the element at `css` reads `expected`: a click's navigation may still be loading when the
        click returns, and the old page may go away under a lookup."""
        async def reads() -> bool:
            try:
                return await self.text(css) == expected
            except AssertionError:  # no such element (yet), or a stale one
                return False

        await eventually(reads, timeout_s=timeout_s, what=f"{css} reading {expected!r}")

    async def source(self) -> str:
        value: str = await self._call("GET", f"/session/{self.session}/source")
        return value
