"""Staff see the services directory read-only in the console, over real HTTP."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.services import load_services
from tests.test_console_cases import signed_in
from tests.test_console_web import Console, serve

SECTION = re.compile(r'<section class="card service" id="servicio-([^"]+)"')


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with serve(tmp_path) as served:
        yield served


def section(page: str, service_id: str) -> str:
    start = page.index(f'id="servicio-{service_id}"')
    return page[start : page.index("</section>", start)]


def test_agents_see_every_service_with_mark_phone_and_sources(console: Console) -> None:
    with signed_in(console, "ana") as client:
        answer = client.get("/servicios")
    assert answer.status_code == 200, answer.text
    page = answer.text
    assert set(SECTION.findall(page)) == set(load_services())
    la72 = html.unescape(section(page, "mx.tenosique.la72"))
    assert "🟡 La 72 Hogar-Refugio para Personas Migrantes" in la72
    assert "+(52)934 342 1111" in la72
    assert "personas LGBTI" in la72 and "asesoría legal" in la72
    assert "https://redfranciscana.org/en/la72/" in la72
    assert "nunca confirmado por teléfono" in la72
    saltillo = html.unescape(section(page, "mx.saltillo.casa_migrante"))
    assert 'Teléfono</dt><dd class="phone">no está en las fuentes' in saltillo
    # Countries in content/countries.yml order: Mexico before Guatemala before the US.
    assert page.index('id="pais-MX"') < page.index('id="pais-GT"') < page.index('id="pais-US"')


def test_the_directory_needs_a_signed_in_account(console: Console) -> None:
    with console.client() as client:
        answer = client.get("/servicios")
    assert answer.status_code in (302, 303)
    assert answer.headers["location"] == "/console/login"


def test_the_directory_is_read_only(console: Console) -> None:
    with signed_in(console, "ana") as client:
        assert client.post("/servicios", data={}).status_code == 405
