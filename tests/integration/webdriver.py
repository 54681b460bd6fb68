"""A small W3C WebDriver client (the HTTP protocol chromedriver speaks), over `requests`.

Why not selenium: the browser tests need a dozen commands, and a client library that can fetch its own
driver (selenium-manager) is one more way for a test to reach the internet. This drives Debian's
`chromium` through Debian's `chromedriver`, found on PATH; nothing is downloaded.
"""
from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def browser_paths() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) from PATH (Debian's packages), or None where missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    return browser, shutil.which("chromedriver")


class WebDriverError(AssertionError):
    pass


class Element:
    def __init__(self, driver: "Browser", element_id: str):
        self.driver, self.id = driver, element_id

    def _cmd(self, method: str, what: str, body=None):
        return self.driver.cmd(method, f"/element/{self.id}/{what}", body)

    def click(self) -> "Element":
        self._cmd("POST", "click", {})
        return self

    def type(self, text: str, clear: bool = True) -> "Element":
        if clear:
            self._cmd("POST", "clear", {})
        self._cmd("POST", "value", {"text": text})
        return self

    @property
    def text(self) -> str:
        return self._cmd("GET", "text")

    def attr(self, name: str) -> str | None:
        return self._cmd("GET", f"attribute/{name}")


class Browser:
    """One headless Chromium session; `close()` ends it and its driver."""

    def __init__(self, chromium: str, chromedriver: str, *, width: int = 1280, height: int = 900,
                 extra_args: tuple[str, ...] = ()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([chromedriver, f"--port={port}", "--allowed-ips=127.0.0.1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        self.http = requests.Session()
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.http.get(self.base + "/status", timeout=2).json()["value"]["ready"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise WebDriverError("chromedriver did not start")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--lang=zh-CN", f"--window-size={width},{height}",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", *extra_args]
        r = self.http.post(self.base + "/session", json={"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}}}, timeout=60)
        if r.status_code != 200:
            self.proc.kill()
            raise WebDriverError(f"no browser session: {r.text[:500]}")
        self.session = r.json()["value"]["sessionId"]
        self.size = (width, height)

    def cmd(self, method: str, path: str, body=None):
        r = self.http.request(method, f"{self.base}/session/{self.session}{path}", json=body, timeout=60)
        value = r.json().get("value")
        if r.status_code != 200:
            raise WebDriverError(f"{method} {path}: {value}")
        return value

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> Element:
        return Element(self, self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css: str) -> list[Element]:
        return [Element(self, e[ELEMENT]) for e in self.cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def wait(self, css: str, timeout: float = 15, *, text: str | None = None) -> Element:
        """The first element matching `css` (and holding `text`), once it is shown."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.find_all(css):
                shown = self.js("const e = arguments[0]; return !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length)",
                                {ELEMENT: e.id})
                if shown and (text is None or text in e.text):
                    return e
            if time.monotonic() > deadline:
                body = self.js("return document.body.innerText")[:1500]
                raise WebDriverError(f"never saw {css!r}{' with ' + repr(text) if text else ''}; the page says:\n{body}")
            time.sleep(0.1)

    def click(self, css: str, timeout: float = 15) -> None:
        """Click the element matching `css`, found again if a live refresh replaced it between the find
        and the click (WebDriver's 'stale element reference'), as a person's click would land on the new one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.wait(css, timeout=max(0.1, deadline - time.monotonic())).click()
                return
            except WebDriverError as err:
                if "stale element" not in str(err) or time.monotonic() > deadline:
                    raise

    def wait_until(self, script: str, timeout: float = 15, *args):
        """The truthy value of `script` (a function body returning a value), polled until then."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise WebDriverError(f"never true: {script}")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))
        return path

    def resize(self, width: int, height: int) -> None:
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def reset(self, origin: str) -> None:
        """Back to a fresh session's state, for the next test of a module (starting Chromium costs
        seconds a test): one window at the size it opened with, on about:blank, no cookies, and empty
        localStorage and sessionStorage on `origin` (the console keeps its keys and language there)."""
        handles = self.cmd("GET", "/window/handles")
        for handle in handles[1:]:
            self.cmd("POST", "/window", {"handle": handle})
            self.cmd("DELETE", "/window")
        self.cmd("POST", "/window", {"handle": handles[0]})
        self.get(origin + "/health")
        self.js("localStorage.clear(); sessionStorage.clear()")
        self.cmd("DELETE", "/cookie")
        self.get("about:blank")
        self.resize(*self.size)

    def close(self) -> None:
        try:
            self.http.delete(f"{self.base}/session/{self.session}", timeout=30)
        except requests.RequestException:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
