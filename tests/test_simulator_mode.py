"""The phone simulator exists only in development mode (HOTLINE_MODE=development, which
`make run` and the test stack set): in production its routes are absent (404) whatever the
client address or forwarding headers claim. In development no client address is trusted:
each request carries the per-process token the page was served with, so another site in
the browser cannot post to it, and a host name other than this machine's is refused (DNS
rebinding). Real gateway processes over real HTTP; Rasa is not running (not needed here)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from channels import terminal
from channels.config import load_gateway_settings
from channels.core import gateway_text
from hotline.sms import to_gsm7
from scripts.stack import ROOT, free_port, prepare_keys_and_database, sqlite_url
from tests.browser import CHROMIUM_FLAGS

SIMULATOR_ROUTES = [("GET", "/simulator"), ("POST", "/simulator/messages"), ("GET", "/simulator/outbox")]
LOCAL_CLAIMS = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}


def message(phone: str, text: str = "hola") -> dict[str, str]:
    return {"look": "sms", "phone": phone, "text": text, "id": secrets.token_hex(8)}


def start_gateway(work: Path, env: dict[str, str]) -> Iterator[str]:
    """`python -m channels.app` on a port from the OS, with its own keys and database."""
    keys_dir, database_url, port = work / "keys", sqlite_url(work / "hotline.db"), free_port()
    prepare_keys_and_database(keys_dir, database_url)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    environment.update(
        HOTLINE_DATABASE_URL=database_url,
        HOTLINE_KEYS_DIR=str(keys_dir),
        HOTLINE_GATEWAY_PORT=str(port),
        HOTLINE_RASA_URLS=f"http://127.0.0.1:{free_port()}",  # nobody there: the gateway's own answer
        **env,
    )
    with open(work / "gateway.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "channels.app"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (work / "gateway.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway not ready"
            time.sleep(0.2)  # polling interval while the server starts, not a race cover
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """No HOTLINE_MODE (production is the default), and the old switch saying "on"."""
    yield from start_gateway(tmp_path_factory.mktemp("production"), {"HOTLINE_SIMULATOR": "on"})


@pytest.fixture(scope="module")
def development(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_gateway(tmp_path_factory.mktemp("development"), {"HOTLINE_MODE": "development"})


def test_the_mode_is_production_unless_set_to_development() -> None:
    assert load_gateway_settings({}).mode == "production" and not load_gateway_settings({}).development
    assert load_gateway_settings({"HOTLINE_MODE": " Development "}).development
    with pytest.raises(ValueError, match="HOTLINE_MODE"):
        load_gateway_settings({"HOTLINE_MODE": "dev"})  # a typo must not silently mean either


@pytest.mark.parametrize(("method", "path"), SIMULATOR_ROUTES)
def test_in_production_the_simulator_does_not_exist(production: str, method: str, path: str) -> None:
    with httpx.Client(base_url=production, timeout=10) as client:
        body = message("+50255560001")
        for headers in ({}, LOCAL_CLAIMS, {**LOCAL_CLAIMS, "X-Simulator-Token": "guess", "Host": "localhost"}):
            response = client.request(method, path, json=body, headers=headers, params={"look": "sms", "phone": "1"})
            assert response.status_code == 404, (headers, response.text)
        assert client.get("/health").status_code == 200  # the gateway itself is up


def test_in_development_the_page_carries_the_token_the_messages_need(development: str) -> None:
    with httpx.Client(base_url=development, timeout=30) as client:
        page = client.get("/simulator")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        token = terminal.token_in(page.text)
        assert len(token) >= 32 and token == terminal.token_in(client.get("/simulator").text)  # one per process
        url, body = "/simulator/messages", message("+50255560002")
        assert client.post(url, json=body).status_code == 403  # from 127.0.0.1, without the token
        assert client.post(url, json=body, headers={"X-Simulator-Token": "x" * len(token)}).status_code == 403
        replies = client.post(url, json=body, headers={"X-Simulator-Token": token}).json()["replies"]
        assert to_gsm7(gateway_text("assistant_unavailable")) in [r["text"] for r in replies]  # Rasa is down
        outbox = {"look": "sms", "phone": "+50255560002"}
        assert client.get("/simulator/outbox", params=outbox).status_code == 403
        assert client.get("/simulator/outbox", params=outbox, headers={"X-Simulator-Token": token}).status_code == 200


def test_in_development_another_host_name_is_refused(development: str) -> None:
    """A site that rebinds its own name to 127.0.0.1 would read the page and its token."""
    with httpx.Client(base_url=development, timeout=30, headers={"Host": "evil.example"}) as client:
        assert client.get("/simulator").status_code == 403
        token = terminal.token_in(httpx.get(f"{development}/simulator").text)
        body = message("+50255560003")
        assert client.post("/simulator/messages", json=body, headers={"X-Simulator-Token": token}).status_code == 403


def test_the_terminal_chat_talks_through_the_simulator(development: str) -> None:
    url = f"{development}/simulator/messages"
    with httpx.Client(timeout=30) as client:
        token = terminal.simulator_token(client, url)
        replies = terminal.send(client, url, "+50255560004", "hola", token)
    assert to_gsm7(gateway_text("assistant_unavailable")) in replies


def test_the_page_in_a_browser_sends_its_token(development: str) -> None:
    with sync_playwright() as playwright:
        chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{development}/simulator")
            page.fill("#phone", "+50255560005")
            page.fill("#text", "hola")
            page.click("text=Enviar")
            expect(page.locator(".bot").first).to_contain_text(to_gsm7(gateway_text("assistant_unavailable"))[:40])
            expect(page.locator("#error")).to_have_text("")
        finally:
            browser.close()
