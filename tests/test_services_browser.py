"""Four-eyes corrections of the services directory in a real browser (Playwright, Debian's
headless Chromium) against the console's own process: an agent proposes a correction (a bad
phone first, refused with a clear message), a supervisor approves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from reports.db import transaction
from reports.models import AuditEntry, ServiceCorrection
from tests.browser import login_with_totp, new_page
from tests.db_fixtures import Keyring
from tests.test_console_web import PASSWORD, Console, run_console

SALTILLO = "mx.saltillo.casa_migrante"


@pytest.fixture
def console(tmp_path: Path, keyring: Keyring) -> Iterator[Console]:
    assert keyring.directory == tmp_path / "keys"
    with run_console(tmp_path) as running:
        yield running


def signed_in(page: Page, console: Console, username: str, role: str) -> None:
    console.add(username, role)
    login_with_totp(page, console.url, username, PASSWORD, console.code(username))
    page.goto(f"{console.url}/servicios")


def fill_correction(page: Page, value: str) -> None:
    form = page.locator("form#proponer")
    form.locator("select[name=service]").select_option(SALTILLO)
    form.locator("select[name=field]").select_option("phone")
    form.locator("input[name=value]").fill(value)
    form.locator("input[name=source]").fill("https://example.org/saltillo")
    form.locator("textarea[name=note]").fill("Llamamos el 5 de diciembre; contestó la coordinadora.")
    form.get_by_role("button", name="Proponer corrección").click()


def test_an_agent_proposes_and_a_supervisor_approves(browser: Browser, console: Console) -> None:
    dialogs: list[str] = []
    with new_page(browser, dialogs) as ana:
        signed_in(ana, console, "ana", "agent")
        fill_correction(ana, "844-CASA-00")
        expect(ana.locator("p.error")).to_contain_text("El teléfono «844-CASA-00» no es válido")
        fill_correction(ana, "844 414 1111")
        expect(ana.locator("p.message")).to_contain_text("Otra persona (supervisión) debe aprobarla")
        row = ana.locator("tr[data-correction]")
        expect(row).to_have_count(1)
        expect(row).to_have_attribute("data-state", "pending")
        expect(row.get_by_role("button", name="Aprobar")).to_have_count(0)  # never their own
    with new_page(browser, dialogs) as sara:
        signed_in(sara, console, "sara", "supervisor")
        row = sara.locator("tr[data-correction]")
        expect(row).to_contain_text("844 414 1111")
        row.get_by_role("button", name="Aprobar").click()
        expect(sara.locator("p.message")).to_contain_text("Corrección aprobada")
        expect(sara.locator("tr[data-correction]")).to_have_attribute("data-state", "approved")
        expect(sara.locator("tr[data-correction]")).to_contain_text("(sara)")
    assert dialogs == []
    with transaction(console.engine) as session:
        (correction,) = session.scalars(select(ServiceCorrection)).all()
        assert (correction.service_id, correction.field, correction.value, correction.state) == (
            SALTILLO,
            "phone",
            "844 414 1111",
            "approved",
        )
        actions = [(e.actor, e.action) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert ("ana", "service_correction_invalid") in actions
    proposed = actions.index(("ana", "service_correction_proposed"))
    assert proposed < actions.index(("sara", "service_correction_approved"))
