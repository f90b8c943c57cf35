"""Statistics and the content audit over real HTTP (uvicorn, SQLite, a test clock): counts by
country, kind, month and priority, the median time to first triage, the CSV export with small
counts suppressed (and audited), facts confirmed by phone, and whether each confirmation is
already in the assistant's content (content/confirmations.yml) or waiting for export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from console.facts_audit import export_confirmations, latest_confirmations
from hotline.content import CONFIRMATIONS, dump_confirmations, load_fact_sheet, load_facts, read_confirmations
from reports.db import transaction
from reports.models import FactConfirmation
from reports.service import change_status
from tests.db_fixtures import Keyring
from tests.test_console_cases import audit, file, signed_in
from tests.test_console_web import START, Console, csrf, serve

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def console(tmp_path: Path, keyring: Keyring) -> Iterator[Console]:
    with serve(tmp_path) as served:
        yield served


def rows(text: str, dimension: str) -> dict[str, int]:
    found = re.findall(rf'data-dimension="{dimension}"><td>([^<]*)</td><td>(\d+)</td>', text)
    return {label: int(count) for label, count in found}


def test_statistics_show_counts_urgent_share_and_median_triage(console: Console, keyring: Keyring) -> None:
    filed = [file(console, keyring, country="GT", kind="labour", hours_ago=h) for h in (1, 2, 3, 4, 5, 6)]
    filed += [file(console, keyring, country="MX", kind="sexual", danger_now=True, hours_ago=h) for h in (7, 8)]
    filed.append(file(console, keyring, country="HN", kind="child", hours_ago=24 * 40))  # the month before
    # first triage 2 h, 4 h and 10 h after filing (filed 1 h, 2 h and 7 h before START)
    for report, filed_hours_ago, hours in ((filed[0], 1, 2), (filed[1], 2, 4), (filed[6], 7, 10)):
        created = START - timedelta(hours=filed_hours_ago)
        with transaction(console.engine) as session:
            change_status(
                session, report.report_id, "in_review", "1", None, keyring.keys, created + timedelta(hours=hours)
            )
            change_status(session, report.report_id, "closed", "1", None, keyring.keys, created + timedelta(days=9))
    with signed_in(console, "sara", "supervisor") as client:
        page = client.get("/estadisticas")
        assert page.status_code == 200, page.text
        assert rows(page.text, "country") == {"GT": 6, "MX": 2, "HN": 1}
        assert rows(page.text, "kind") == {
            "trabajo forzoso": 6,
            "explotación sexual": 2,
            "niñas, niños y adolescentes": 1,
        }
        assert rows(page.text, "month") == {"2026-10": 1, "2026-11": 8}
        assert rows(page.text, "priority")["URGENTE"] == 2
        assert '<dd id="total">9</dd>' in page.text and "2 (22.2 %)" in page.text
        assert "4.0 horas (3 denuncia(s) revisadas)" in page.text
        assert "<svg" in page.text and "<rect" in page.text and "<script" not in page.text
        assert not any(r.report_id in page.text or r.code in page.text for r in filed)


def test_the_csv_suppresses_small_counts_and_the_total_and_is_audited(console: Console, keyring: Keyring) -> None:
    filed = [file(console, keyring, country="GT", kind="labour", hours_ago=h) for h in range(1, 7)]
    filed += [file(console, keyring, country="SV", kind="labour", hours_ago=h) for h in range(10, 15)]
    filed += [file(console, keyring, country="MX", kind="labour", danger_now=True, hours_ago=h) for h in (7, 8)]
    with signed_in(console, "sara", "supervisor") as client:
        answer = client.get("/estadisticas.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(answer.text)))
    assert table[0] == ["dimension", "value", "count"]
    cells = {(d, v): c for d, v, c in table[1:]}
    assert cells[("country", "GT")] == "6" and cells[("country", "MX")] == "<5"
    assert cells[("country", "SV")] == "suprimido"  # else kind's 13 - 6 - 5 would give MX away
    assert cells[("kind", "labour")] == "13" and cells[("month", "2026-11")] == "13"
    assert cells[("priority", "urgent")] == "<5" and cells[("priority", "normal")] == "suprimido"
    for dimension in ("country", "kind", "month", "priority"):
        assert cells[(dimension, "total")] == "suprimido"
    assert all(c in ("<5", "suprimido") or int(c) >= 5 for c in cells.values())
    assert not any(r.report_id in answer.text or r.code in answer.text for r in filed)
    assert ("sara", "export", "estadisticas.csv", f"{len(table) - 1} filas agregadas") in audit(console)


def test_the_csv_total_is_shown_when_nothing_is_suppressed(console: Console, keyring: Keyring) -> None:
    for hours in range(1, 6):
        file(console, keyring, country="GT", kind="labour", hours_ago=hours)
    with signed_in(console, "sara", "supervisor") as client:
        table = list(csv.reader(io.StringIO(client.get("/estadisticas.csv").text)))
    assert ["country", "total", "5"] in table and ["country", "GT", "5"] in table


def test_agents_cannot_see_statistics(console: Console, keyring: Keyring) -> None:
    file(console, keyring)
    with signed_in(console, "ana") as client:
        assert client.get("/estadisticas").status_code == 403
        assert client.get("/estadisticas.csv").status_code == 403
    actions = audit(console)
    assert ("ana", "forbidden", "/console/estadisticas.csv", None) in actions
    assert not any(entry[1] == "export" for entry in actions)


def unverified_fact() -> str:
    return next(f.id for f in load_facts().values() if f.confidence == "secondary" and f.value)


def test_the_content_audit_lists_facts_and_records_confirmations(console: Console) -> None:
    fact_id = unverified_fact()
    fact = load_facts()[fact_id]
    assert fact.value is not None
    with signed_in(console, "ana") as client:
        page = client.get("/datos")
        assert page.status_code == 200 and f'data-fact="{fact_id}"' in page.text
        assert "🟡 secundario" in page.text and fact.value in page.text
        token = csrf(client, "/datos")
        note = f"Contestó la operadora {SCRIPT}"
        saved = client.post(
            f"/datos/{fact_id}/confirmar", data={"csrf": token, "confirmed_on": "2026-11-28", "note": note}
        )
        assert saved.status_code == 303
        page = client.get("/datos?hecho=1")
        assert "Confirmación guardada." in page.text
        assert (
            '2026-11-28 por ana: <span class="text">Contestó la operadora &lt;script&gt;alert(1)&lt;/script&gt;'
            in page.text
        )
        assert SCRIPT not in page.text
        future = (START + timedelta(days=1)).date().isoformat()
        refused = client.post(f"/datos/{fact_id}/confirmar", data={"csrf": token, "confirmed_on": future, "note": "x"})
        assert refused.status_code == 400
        assert "no puede ser posterior a hoy (2026-11-29)" in refused.text
        bad = client.post(f"/datos/{fact_id}/confirmar", data={"csrf": token, "confirmed_on": "ayer"})
        assert bad.status_code == 400 and "Fecha no válida" in bad.text
        long = client.post(
            f"/datos/{fact_id}/confirmar", data={"csrf": token, "confirmed_on": "2026-11-01", "note": "x" * 501}
        )
        assert long.status_code == 400 and "501 caracteres" in long.text
        missing = client.post("/datos/no.such.fact/confirmar", data={"csrf": token, "confirmed_on": "2026-11-01"})
        assert missing.status_code == 404
        no_csrf = client.post(f"/datos/{fact_id}/confirmar", data={"confirmed_on": "2026-11-27", "note": "x"})
        assert no_csrf.status_code == 403 and "Formulario caducado" in no_csrf.text
    with transaction(console.engine) as session:
        stored = session.scalars(select(FactConfirmation)).all()
    assert [(c.fact_id, c.confirmed_on.isoformat(), c.note) for c in stored] == [(fact_id, "2026-11-28", note)]
    assert {k: v.isoformat() for k, v in latest_confirmations(console.engine).items()} == {fact_id: "2026-11-28"}
    assert ("ana", "fact_confirmed", f"dato {fact_id}", "confirmado el 2026-11-28") in audit(console)


def export_states(text: str) -> dict[str, str]:
    return dict(re.findall(r'id="dato-([^"]+)".*?data-export="(\w+)"', text, re.S))


def test_the_content_audit_shows_which_confirmations_are_in_the_content(
    console: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = [f.id for f in load_fact_sheet().values() if f.confidence == "secondary" and f.value][:3]
    content = tmp_path / "confirmations.yml"  # the console's copy of content/confirmations.yml, empty
    content.write_text(dump_confirmations(replace(read_confirmations(CONFIRMATIONS), entries={})), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIRMATIONS_FILE", str(content))
    with signed_in(console, "ana") as client:
        token = csrf(client, "/datos")
        for fact_id in (first, second):
            saved = client.post(
                f"/datos/{fact_id}/confirmar", data={"csrf": token, "confirmed_on": "2026-11-27", "note": "contestaron"}
            )
            assert saved.status_code == 303
        waiting = client.get("/datos").text
        assert {k: export_states(waiting)[k] for k in (first, second, third)} == {
            first: "waiting",
            second: "waiting",
            third: "none",
        }
        assert "pendiente de pasar al contenido del asistente" in waiting

        assert export_confirmations(console.engine, content, START).updated == tuple(sorted((first, second)))
        again = client.post(f"/datos/{second}/confirmar", data={"csrf": token, "confirmed_on": "2026-11-28"})
        assert again.status_code == 303  # a newer call, not exported yet
        page = client.get("/datos").text
    states = export_states(page)
    assert (states[first], states[second], states[third]) == ("exported", "waiting", "none")
    assert "ya está en el contenido del asistente (content/confirmations.yml)" in page
    assert "En el contenido: confirmado el 2026-11-27 (agent)" in page
    assert "no escriba nombres de personas" in page
    assert any(entry[:2] == ("cli", "facts_exported") for entry in audit(console))
