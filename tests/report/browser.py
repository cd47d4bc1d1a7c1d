"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

One page load gives: every console message and uncaught exception (with its
level), the DOM after the page's scripts ran, the result of JavaScript
expressions, and a PNG screenshot. No port is opened; the browser is started
with every background fetch turned off and gets its own profile directory,
and it is ended by its pid.

Pipe framing: JSON messages terminated by NUL, the browser reads fd 3 and
writes fd 4.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
         "--no-default-browser-check", "--remote-debugging-pipe")


@dataclass
class PageLoad:
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text), exceptions as ("exception", text)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""

    @property
    def errors(self) -> list[str]:
        return [text for level, text in self.console if level in ("error", "exception", "assert")]


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        return self.next_id

    def receive(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed the pipe")
                self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            message = self.receive(deadline)
            if message.get("method") == method:
                return message
            self.events.append(message)


def load(path: Path, expressions: dict[str, str], width: int = 1400, height: int = 1800, settle_s: float = 0.3) -> PageLoad:
    """Open file `path`, wait for load, evaluate `expressions` (name -> JS), take a screenshot, collect the console."""
    profile = tempfile.mkdtemp(prefix="cniscope-chromium-")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # the child's ends, moved above fd 9 so that putting them at 3 and 4 cannot overwrite one with the other
    child_r, child_w = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
    for fd in (to_browser_r, from_browser_w):
        os.close(fd)
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=False,  # closing happens after preexec_fn and would close 3 and 4; every other fd is close-on-exec
        preexec_fn=lambda: (os.dup2(child_r, 3), os.dup2(child_w, 4)),
    )
    os.close(child_r)
    os.close(child_w)
    pipe = _Pipe(to_browser_w, from_browser_r)
    result = PageLoad()
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            pipe.call(domain, session=session)
        pipe.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        navigated = pipe.call("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        if navigated.get("errorText"):
            raise RuntimeError(f"chromium could not open {path}: {navigated['errorText']}")
        pipe.wait_event("Page.loadEventFired")
        time.sleep(settle_s)
        for name, expression in expressions.items():
            answer = pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
            if "exceptionDetails" in answer:
                raise RuntimeError(f"{name}: {answer['exceptionDetails']}")
            result.values[name] = answer["result"].get("value")
        shot = pipe.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        result.screenshot = base64.b64decode(shot["data"])
        pipe.call("Runtime.evaluate", {"expression": "0"}, session=session)  # flush pending console events
        for event in pipe.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                result.console.append((params.get("type", "log"), text))
            elif event.get("method") == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                result.console.append(("exception", details.get("exception", {}).get("description") or details.get("text", "")))
            elif event.get("method") == "Log.entryAdded":
                entry = params.get("entry", {})
                result.console.append((entry.get("level", "info"), f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}"))
    finally:
        with contextlib.suppress(OSError):
            pipe.send("Browser.close")
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(profile, ignore_errors=True)
    return result
