"""A real headless Chromium, driven over the Chrome DevTools Protocol.

Just enough of the protocol for page tests: navigate, evaluate JavaScript,
wait for a condition, take a screenshot. Debian's `chromium` package provides
the browser; without it the browser tests skip with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from services import subprocesses

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "no Chromium found: install Debian's package (apt-get install -y chromium)"


def find_chromium() -> str | None:
    """TIMELINE_TEST_CHROMIUM, else the first browser on PATH."""
    named = os.environ.get("TIMELINE_TEST_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


# key: (code, Windows virtual key code, the text it types)
KEYS = {"Tab": ("Tab", 9, ""), "Enter": ("Enter", 13, "\r"), " ": ("Space", 32, " "),
        "Escape": ("Escape", 27, "")}


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, binary: str, profile: Path, width: int = 1400, height: int = 900) -> None:
        self.profile = profile
        self.log = (profile.parent / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self._ids = itertools.count(1)
        self._closing = contextlib.ExitStack()
        self.errors: list[str] = []  # uncaught exceptions thrown in the page
        try:
            self.socket = self._closing.enter_context(self._connect())
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float = 30.0) -> ClientConnection:
        # Chromium writes the port it chose to the profile once it listens.
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json()
                         if t["type"] == "page"]
                if pages:
                    return connect(pages[0]["webSocketDebuggerUrl"], max_size=None,
                                   open_timeout=10)
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its debugging port")
            time.sleep(0.1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:  # events arrive in between: keep the page's errors, skip the rest
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(str(details.get("exception", {}).get("description")
                                       or details.get("text")))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                          awaitPromise=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def press(self, key: str) -> None:
        """A key pressed and released, as the keyboard sends it: "Tab", "Enter", " "..."""
        code, number, text = KEYS[key]
        typed = {"text": text} if text else {}
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=code,
                  windowsVirtualKeyCode=number, **typed)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code,
                  windowsVirtualKeyCode=number)

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll `expression` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true in the page: {expression}")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self._closing.close()
        subprocesses.stop(self.process)
        self.log.close()
