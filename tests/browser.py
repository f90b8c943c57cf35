"""Driving the staff console in a real browser: Playwright for Python with Debian's headless
Chromium (`make chromium` installs it; Playwright never downloads a browser here). The page
helpers take the console's base address (`http://host:port/console`) so that the same steps
work against the console served alone and against the whole gateway."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, ViewportSize, expect, sync_playwright

from console.app import FAILED_CODE, FAILED_LOGIN
from scripts.stack import ROOT

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "build" / "screenshots"
PHONE: ViewportSize = {"width": 375, "height": 740}
LAPTOP: ViewportSize = {"width": 1366, "height": 800}
ACTION_TIMEOUT_MS = 15_000  # a click or a fill that cannot happen fails in 15 s, not 30


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless. Missing fails the test run (never skips it)."""
    if not Path(CHROMIUM_PATH).exists():
        pytest.fail(f"no Chromium at {CHROMIUM_PATH}: run `make chromium` (Debian's package) or set CHROMIUM_PATH")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (a fixture for every browser test: tests/conftest.py)."""
    with chromium() as launched:
        yield launched


@contextmanager
def new_page(browser: Browser, dialogs: list[str], viewport: ViewportSize = LAPTOP) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies). Every alert/confirm/prompt it opens is
    dismissed and kept in `dialogs` (type and text): the console's pages must never open one."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        page = context.new_page()

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        yield page
    finally:
        context.close()


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot in build/screenshots/ for a person to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fits_the_width(page: Page) -> bool:
    """No horizontal scrolling: nothing on the page is wider than the window."""
    fits: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return fits


def broken_words(page: Page, selector: str) -> list[str]:
    """The one-word texts among `selector`'s elements that the layout split over lines (a
    table squeezed into a phone breaking "URGENTE" into "URGE/NTE" is unreadable)."""
    broken: list[str] = page.eval_on_selector_all(
        selector,
        """elements => elements.filter(e => {
            const text = e.textContent.trim();
            if (!text || /\\s/.test(text)) return false;
            const range = document.createRange();
            range.selectNodeContents(e);
            return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1;
        }).map(e => e.textContent.trim())""",
    )
    return broken


def submit_password(page: Page, console_url: str, username: str, password: str) -> None:
    """The login page's first step, from the login page."""
    page.goto(f"{console_url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("main button[type=submit]")


def submit_code(page: Page, code: str) -> None:
    page.fill("#code", code)
    page.click("main button[type=submit]")


def wrong_code(secret: str, at: datetime) -> str:
    """A six-digit code that is not valid around `at` (the console accepts one step of drift)."""
    valid = {pyotp.TOTP(secret).at(at, counter_offset=step) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


def enrol_totp(page: Page, console_url: str, username: str, password: str, at: datetime) -> str:
    """First login in production mode: the password, then the enrolment page. The code is
    computed from the secret the page shows (a wrong one first, which must be refused).
    Ends signed in on the console home; returns the secret."""
    submit_password(page, console_url, username, password)
    expect(page.locator("h1")).to_have_text("Dar de alta el segundo factor")
    secret = page.locator("code.secret").last.inner_text().strip()
    uri = page.locator("p.secret code").inner_text()
    assert uri.startswith("otpauth://totp/") and pyotp.parse_uri(uri).secret == secret
    submit_code(page, wrong_code(secret, at))
    expect(page.locator(".error")).to_have_text(FAILED_CODE)
    expect(page.locator("h1")).to_have_text("Dar de alta el segundo factor")
    submit_code(page, pyotp.TOTP(secret).at(at))
    expect_home(page, console_url, username)
    return secret


def login_with_totp(page: Page, console_url: str, username: str, password: str, code: str) -> None:
    """Password, then the second factor's code; ends signed in on the console home."""
    submit_password(page, console_url, username, password)
    expect(page.locator("h1")).to_have_text("Código de verificación")
    submit_code(page, code)
    expect_home(page, console_url, username)


def expect_home(page: Page, console_url: str, username: str) -> None:
    expect(page).to_have_url(f"{console_url}/")
    expect(page.locator("h1")).to_have_text(f"Hola, {username}")
    expect(page.locator("header nav")).to_contain_text(f"Cerrar sesión ({username})")


def expect_login_refused(page: Page) -> None:
    """Still on the login page, with the one message every refusal gets."""
    expect(page.locator(".error")).to_have_text(FAILED_LOGIN)
    expect(page.locator("h1")).to_have_text("Iniciar sesión")


def queue_ids(page: Page) -> list[str]:
    """The report ids of the queue's rows, top to bottom."""
    rows = page.locator("tr.case-row")
    return [str(rows.nth(i).get_attribute("data-id")) for i in range(rows.count())]


def open_queue(page: Page) -> None:
    page.click("header nav >> text=Bandeja")
    expect(page.locator("h1")).to_have_text("Bandeja de denuncias")


def open_report(page: Page, report_id: str) -> None:
    """From a signed-in page (one with the menu): the queue, then the report's row."""
    open_queue(page)
    page.click(f"tr.case-row[data-id='{report_id}'] a")
    expect(page.locator("h1")).to_have_text(f"Denuncia {report_id[:8]}")


def report_fact(page: Page, name: str) -> Locator:
    """The value shown beside `name` (Estado, Prioridad, Qué pasa...) on the report page."""
    return page.locator(
        f"xpath=//dl[contains(@class, 'facts')]/dt[normalize-space()='{name}']/following-sibling::dd[1]"
    )
