"""Fixtures for the browser tests: a uvicorn serving the app and a headless Chromium, each
started once for the package, and fresh browser tabs per test (each in a context of its own,
logged out or signed in as a user) that record every request the page makes and every error it
reports.

The browser is Debian's Chromium (``apt-get install chromium``), never one Playwright downloads.
Without it the tests skip on a developer's machine and fail where ``CI`` is set.
"""

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from tests.helpers import ROOT, asgi_server

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# The name the browser knows the test server by, resolved by Chromium alone to 127.0.0.1.
# Swagger UI and other scripts treat "localhost" and "127.0.0.1" as special (Swagger UI skips
# its online validator there), so pages are served under a name that is neither, as in
# production, and anything they would fetch from elsewhere shows up as a request to record.
HOST = "assay.test"
MISSING = "Chromium not found: `sudo apt-get install chromium` to run the browser tests"


@pytest.fixture(scope="package")
def chromium() -> str:
    """The path of Debian's Chromium; a skip without it, or a failure when CI is set."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING} (CI is set, where they must run).", pytrace=False)
        pytest.skip(MISSING)
    return path


@pytest.fixture(scope="package")
def app_server(chromium: str, django_db_setup) -> Iterator[str]:
    """The origin of a uvicorn serving the app on the test database, as the browser names it."""
    with asgi_server(allowed_hosts=f"127.0.0.1,{HOST}") as base:
        yield base.replace("127.0.0.1", HOST)


@pytest.fixture(scope="package")
def browser(chromium: str, app_server: str) -> Iterator[Browser]:
    """Headless Chromium that finds the test server under HOST, and only there."""
    args = [
        f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
        # Production serves HTTPS, a secure context. So is this plain-HTTP origin, so that
        # pages behave as there (Chromium would otherwise reject the Cross-Origin-Opener-Policy
        # header Django sends, with a console error).
        f"--unsafely-treat-insecure-origin-as-secure={app_server}",
    ]
    # Playwright's sync API keeps an asyncio loop running in this thread for as long as it
    # lives, so Django takes every ORM call of a test (and the database flush after it) for
    # one made from async code. None is: allow them for exactly that long. The server the
    # pages talk to is another process and keeps the check.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A page in a browser context of its own, and what it did."""

    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def offsite_requests(self) -> list[str]:
        """The requests that went anywhere but the test server (data and blob URLs stay)."""
        server = urlsplit(self.origin).netloc
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != server
        ]

    def screenshot(self, name: str) -> Path:
        """Keep a full-page screenshot as a test artifact, to look at."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path


def _open_tab(browser: Browser, origin: str, viewport: dict) -> tuple[Tab, Callable[[], None]]:
    """A tab in a context of its own (no cookies), recording requests and errors."""
    context = browser.new_context(base_url=origin, viewport=viewport)
    # Everything here answers within a second; a missing element should fail fast.
    context.set_default_timeout(10_000)
    page = context.new_page()
    tab = Tab(page=page, origin=origin)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(f"console error on {page.url}: {message.text}")

    def on_failed(request: Request) -> None:
        tab.errors.append(f"request failed: {request.url} ({request.failure})")

    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(f"uncaught on {page.url}: {error}"))
    page.on("requestfailed", on_failed)
    return tab, context.close


@pytest.fixture
def tab(browser: Browser, app_server: str) -> Iterator[Tab]:
    """A fresh tab (no cookies) on the test server, recording requests and errors."""
    tab, close = _open_tab(browser, app_server, {"width": 1280, "height": 800})
    yield tab
    close()


# A laptop's screen, which the role pages are laid out for.
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def signed_in(browser: Browser, app_server: str) -> Iterator[Callable[..., Tab]]:
    """Open tabs already logged in: ``signed_in(user)`` gives a tab in a context of its own
    carrying a session of ``user``, made in the database the server reads (the login form is
    tested on its own, and its throttle is no part of these tests)."""
    closers = []

    def open_as(user) -> Tab:
        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        tab, close = _open_tab(browser, app_server, LAPTOP)
        tab.page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": app_server}]
        )
        closers.append(close)
        return tab

    yield open_as
    for close in closers:
        close()
