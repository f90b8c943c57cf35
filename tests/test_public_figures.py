"""The public figures: complementary cell suppression (a table where hiding only the counts
under 5 gives one back through a total, and the rule that does not), the static page written
by `python -m reports.public_figures` served over real HTTP, and the researchers' CTDC export
(k-anonymity, refusal of a period too small, audit), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import http.server
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select

from channels.public_page import PublicPage
from reports import public_figures, research_export
from reports.db import make_engine, transaction
from reports.models import AuditEntry
from reports.service import ReportDraft, file_report
from reports.suppression import Equation, Key, determined, primary, protect
from scripts.stack import Stack, free_port
from tests.db_fixtures import Keyring
from tests.test_console_cases import signed_in
from tests.test_console_web import serve

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SECRET_TEXT = "Tienen a Rosa encerrada en la bodega de la calle 5"
PLACE = "colonia Centro, calle 5"


def two_by_two() -> tuple[dict[Key, int], list[Equation]]:
    """GT: 6 labour, 2 sexual (total 8); MX: 7 labour, 8 sexual (total 15)."""
    counts = {("GT", "labour", "2026-11"): 6, ("GT", "sexual", "2026-11"): 2}
    counts |= {("MX", "labour", "2026-11"): 7, ("MX", "sexual", "2026-11"): 8}
    return public_figures.table(counts)


def test_hiding_only_small_counts_leaks_them_through_the_totals() -> None:
    values, equations = two_by_two()
    only_small = primary(values, 5)
    assert only_small == {("cell", "GT", "sexual")}
    # GT's total 8 minus GT labour 6: the hidden 2 comes back
    assert determined(values, equations, only_small) == {("cell", "GT", "sexual"): 2}


def test_complementary_suppression_leaves_nothing_to_compute() -> None:
    values, equations = two_by_two()
    hidden = protect(values, equations, 5)
    assert ("cell", "GT", "sexual") in hidden and len(hidden) > 1
    assert determined(values, equations, hidden) == {}
    for equation in equations:  # no row, column or margin with a single hidden cell
        assert len({key for key, _ in equation} & hidden) != 1


def test_a_hidden_cell_linking_two_hidden_groups_is_caught() -> None:
    """Every row and column has two hidden cells, yet the cell joining the two 2x2 blocks is
    given by the equations (a bridge); `determined` finds it and `protect` closes it."""
    values: dict[Key, int] = {}
    equations: list[Equation] = []
    grid = [[1, 1, 0, 0, 9], [1, 1, 1, 0, 9], [0, 0, 1, 1, 9], [0, 0, 1, 1, 9]]  # rows x columns
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            values[(f"r{r}", f"c{c}")] = value
    for r, row in enumerate(grid):
        values[(f"r{r}",)] = sum(row)
        equations.append((*tuple(((f"r{r}", f"c{c}"), 1) for c in range(5)), ((f"r{r}",), -1)))
    for c in range(5):
        values[(f"c{c}",)] = sum(row[c] for row in grid)
        equations.append((*tuple(((f"r{r}", f"c{c}"), 1) for r in range(4)), ((f"c{c}",), -1)))
    hidden: set[Key] = {(f"r{r}", f"c{c}") for r, row in enumerate(grid) for c, v in enumerate(row) if v == 1}
    assert all(len({key for key, _ in eq} & hidden) != 1 for eq in equations)
    assert determined(values, equations, hidden) == {("r1", "c2"): 1}  # yet the link is computed
    assert determined(values, equations, protect(values, equations, 5)) == {}


def file_one(
    engine: Engine, keyring: Keyring, country: str | None, kind: str | None, at: datetime, **extra: object
) -> None:
    draft = ReportDraft(
        what=SECRET_TEXT,
        country=country,
        place=PLACE,
        when="el 3 de noviembre a las 22:15",
        people="3",
        minors=extra.get("minors", False),  # type: ignore[arg-type]
        kind=kind,
        danger_now=False,
    )
    with transaction(engine) as session:
        file_report(session, draft, keyring.keys, at, notify_channels=())


@contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """The folder served as static files (what the public web server does), on a free port."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def published(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-cell="([^"]+)">([^<]*)</td>', html))


def test_the_public_page_hides_small_counts_and_what_gives_them_away(
    engine: Engine, keyring: Keyring, tmp_path: Path
) -> None:
    november, october = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC)
    for _ in range(6):
        file_one(engine, keyring, "GT", "labour", november)
    for _ in range(2):
        file_one(engine, keyring, "GT", "sexual", november)
    for _ in range(7):
        file_one(engine, keyring, "MX", "labour", october)
    for _ in range(8):
        file_one(engine, keyring, "MX", "sexual", november)
    out = tmp_path / "public" / "cifras"
    public_figures.write_page(engine, out, 5, NOW)
    with static_server(tmp_path / "public") as url:
        answer = httpx.get(f"{url}/cifras/", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "Cifras públicas de la línea" in page and 'lang="es"' in page and "Guatemala" in page
    cells = published(page)
    assert cells["cell|GT|sexual"] == "s"  # the 2
    assert cells["month|2026-10"] == "7" and cells["month|2026-11"] == "16" and cells["total"] == "23"
    hidden = {key for key, shown in cells.items() if shown == "s"}
    assert len(hidden) >= 4  # the 2 and the cells of its row and column that would give it back
    # the attacker's view: the published numbers and the table's equations give no hidden count
    values, equations = public_figures.table(public_figures.count_reports(engine))
    keys = {"|".join(key): key for key in values}
    assert set(cells) == set(keys)
    known = {keys[name]: int(shown) for name, shown in cells.items() if shown != "s"}
    assert determined({**dict.fromkeys(values, 0), **known}, equations, {keys[n] for n in hidden}) == {}
    assert SECRET_TEXT not in page and "bodega" not in page and "Centro" not in page
    assert 'id="no-questions"' in page  # no answers counted in this database


def test_the_job_writes_the_page_from_the_settings(
    engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keyring: Keyring
) -> None:
    for _ in range(10):
        file_one(engine, keyring, "HN", "labour", datetime(2026, 11, 10, tzinfo=UTC))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("HOTLINE_PUBLIC_DIR", str(tmp_path / "cifras"))
    monkeypatch.setenv("HOTLINE_PUBLIC_MIN_COUNT", "11")  # 10 is now too small to publish
    assert public_figures.main([]) == 0
    cells = published((tmp_path / "cifras" / "index.html").read_text(encoding="utf-8"))
    assert cells and set(cells.values()) == {"s"}


def test_an_empty_database_gives_a_page_that_says_so(engine: Engine, tmp_path: Path) -> None:
    page = public_figures.write_page(engine, tmp_path, 5, NOW).read_text(encoding="utf-8")
    assert 'id="empty"' in page and "Todavía no hay denuncias" in page


def exports(engine: Engine) -> list[tuple[str | None, str, str | None, str | None]]:
    with transaction(engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "export").order_by(AuditEntry.id))
        return [(e.actor, e.action, e.target, e.detail) for e in entries]


def test_the_ctdc_export_is_k_anonymous_and_holds_nothing_finer_than_a_country_and_a_year(
    engine: Engine, keyring: Keyring
) -> None:
    november = datetime(2026, 11, 14, 21, 30, tzinfo=UTC)
    for _ in range(4):
        file_one(engine, keyring, "GT", "labour", november)
    for _ in range(3):
        file_one(engine, keyring, "MX", "labour", november)
    file_one(engine, keyring, "SV", "sexual", november, minors=True)  # alone: generalised, then dropped
    file_one(engine, keyring, "GT", "labour", datetime(2026, 9, 1, tzinfo=UTC))  # outside the period
    done = research_export.export(engine, "2026-10", "2026-11", 3, NOW)
    table = list(csv.DictReader(io.StringIO(done.csv)))
    assert tuple(table[0]) == research_export.COLUMNS
    assert done.reports == 8 and done.rows == 7 and done.dropped == 1 and len(table) == 7
    assert sorted((row["CountryOfExploitation"], row["typeOfExploitConcatenated"]) for row in table) == (
        [("GT", "Forced labour")] * 4 + [("MX", "Forced labour")] * 3
    )
    assert {row["Datasource"] for row in table} == {"Hotline"} and {row["yearOfRegistration"] for row in table} == {
        "2026"
    }
    assert {row["isForcedLabour"] for row in table} == {"1"} and {row["gender"] for row in table} == {""}
    groups: dict[tuple[str, ...], int] = {}
    for row in table:
        quasi = tuple(row[q] for q in research_export.QUASI)
        groups[quasi] = groups.get(quasi, 0) + 1
    assert min(groups.values()) >= 3
    # no free text, no place below the country, no date finer than the month
    assert SECRET_TEXT not in done.csv and "calle" not in done.csv and "Centro" not in done.csv
    assert not re.search(r"\d{4}-\d{2}|\d{1,2}:\d{2}", done.csv)
    assert all(len(row["CountryOfExploitation"]) in (0, 2) for row in table)
    assert exports(engine) == [("cli", "export", "ctdc.csv", "7 filas CTDC, 1 omitidas, periodo 2026-10/2026-11, k=3")]


def test_an_export_of_a_period_with_a_single_report_is_refused_and_audited(engine: Engine, keyring: Keyring) -> None:
    file_one(engine, keyring, "GT", "labour", datetime(2026, 11, 14, tzinfo=UTC))
    with pytest.raises(research_export.ExportRefused, match="tiene 1 denuncia"):
        research_export.export(engine, "2026-11", "2026-11", 3, NOW)
    with pytest.raises(research_export.ExportRefused, match="Periodo no válido"):
        research_export.export(engine, "2026-13", "2026-11", 3, NOW)
    assert exports(engine) == [
        ("cli", "export", "ctdc.csv", "rechazada: 1 denuncia(s) en el periodo 2026-11/2026-11, k=3")
    ]


def test_the_export_command_refuses_with_a_message(
    engine: Engine,
    database_url: str,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file_one(engine, keyring, "GT", "labour", datetime(2026, 11, 14, tzinfo=UTC))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    assert research_export.main(["--desde", "2026-11", "--hasta", "2026-11"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Exportación rechazada" in captured.err
    assert "menos que el mínimo de 11" in captured.err


def test_the_console_statistics_link_to_the_public_page(tmp_path: Path) -> None:
    with (
        serve(tmp_path, public_url="https://linea.example.org/cifras/") as console,
        signed_in(console, "sara", "supervisor") as client,
    ):
        page = client.get("/estadisticas")
    assert page.status_code == 200
    assert '<a id="public-figures" href="https://linea.example.org/cifras/">Página pública de cifras</a>' in page.text


# -- /cifras/ on the gateways -------------------------------------------------------------


def test_the_page_renders_again_only_when_old_and_outlives_a_database_failure(
    engine: Engine, keyring: Keyring, tmp_path: Path
) -> None:
    for _ in range(6):
        file_one(engine, keyring, "SV", "labour", datetime(2026, 11, 10, tzinfo=UTC))
    broken = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")  # nothing listens
    assert asyncio.run(PublicPage().current(broken)) is None  # no page yet: the route says 503
    page = PublicPage(refresh_seconds=3600)
    first = asyncio.run(page.current(engine))
    assert first is not None and published(first)["country|SV"] == "6"
    file_one(engine, keyring, "SV", "labour", datetime(2026, 11, 11, tzinfo=UTC))
    assert asyncio.run(page.current(engine)) == first  # fresh: not rendered again
    page.refresh_seconds = 0
    assert published(asyncio.run(page.current(engine)) or "")["country|SV"] == "7"
    assert asyncio.run(page.current(broken)) is not None  # the database is down: the last page


@pytest.mark.rasa
def test_the_gateways_serve_the_public_page(client: httpx.Client, stack: Stack) -> None:
    answer = client.get(f"{stack.gateway_url}/cifras/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "Cifras públicas de la línea" in answer.text and "public" in answer.headers["cache-control"]
    assert client.get(f"{stack.gateway_url}/cifras").headers.get("location") == "/cifras/"
    engine = make_engine(stack.database_url)
    try:
        expected = public_figures.render(public_figures.count_reports(engine), 5, NOW)
    finally:
        engine.dispose()
    served = {k: v for k, v in published(answer.text).items() if not k.startswith("q")}  # counts still coming in
    assert served == {k: v for k, v in published(expected).items() if not k.startswith("q")}
    assert client.post(f"{stack.gateway_url}/cifras/").status_code == 405
