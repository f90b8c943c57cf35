"""Corrections to the services directory (console/service_corrections.py) over real HTTP and
SQLite: a proposal is validated (bad ones refused with a clear message and audited), a
supervisor who did not propose it approves or rejects it, and the export writes the approved
ones into a corrections file the content build and the assistant read."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from console.service_corrections import CorrectionRefused, Proposal, check_proposal, export_corrections, raw_entries
from hotline import build as build_module
from hotline.services import CORRECTIONS, ServicesError, load_services, read_corrections
from reports.db import transaction
from reports.models import AuditEntry, ServiceCorrection
from tests.test_console_cases import signed_in
from tests.test_console_web import Console, csrf, serve

TODAY = date(2026, 12, 6)
LA72 = "mx.tenosique.la72"
SALTILLO = "mx.saltillo.casa_migrante"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with serve(tmp_path) as served:
        yield served


def propose(client: httpx.Client, **fields: str) -> httpx.Response:
    data = {"service": SALTILLO, "field": "phone", "value": "", "source": "", "note": "llamada del 5 de dic."}
    data.update(fields)
    return client.post("/servicios/correcciones", data={"csrf": csrf(client, "/servicios"), **data})


def decide(client: httpx.Client, correction_id: int, verb: str = "aprobar") -> httpx.Response:
    return client.post(f"/servicios/correcciones/{correction_id}/{verb}", data={"csrf": csrf(client, "/servicios")})


def stored(console: Console) -> list[ServiceCorrection]:
    with transaction(console.engine) as session:
        rows = list(session.scalars(select(ServiceCorrection).order_by(ServiceCorrection.id)))
        session.expunge_all()
        return rows


def audit_rows(console: Console, action: str) -> list[tuple[str | None, str | None, str | None]]:
    with transaction(console.engine) as session:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        return [(e.actor, e.target, e.detail) for e in session.scalars(query)]


def error_of(answer: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', answer.text, re.S)
    assert found, answer.text[:500]
    return html.unescape(found.group(1))


# -- validation (no server) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "source", "says"),
    [
        ("phone", "844 ABC 1234", "", "no es válido"),
        ("phone", "12", "", "7 a 15 cifras"),
        ("phone", "+502 2222 3333", "", "+52"),  # Guatemala's code on a Mexican entry
        ("web", "casadelmigrante.org", "", "http:// o https://"),
        ("web", "ftp://casadelmigrante.org", "", "http:// o https://"),
        ("source", "javascript:alert(1)", "", "http:// o https://"),
        ("address", "calle 1", "https://exa mple.org", "http:// o https://"),
        ("country", "XX", "", "no es un país"),
        ("verified_on", "2027-01-01", "", "AAAA-MM-DD"),
        ("name", "", "", "no se puede dejar vacío"),
        ("kind", "shelter", "", "no se puede corregir"),
        ("id", "mx.otra", "", "no se puede corregir"),
    ],
)
def test_a_bad_proposal_is_refused_with_a_clear_message(field: str, value: str, source: str, says: str) -> None:
    with pytest.raises(CorrectionRefused, match=re.escape(says)):
        check_proposal(Proposal(SALTILLO, field, value, source, "nota"), raw_entries(None), TODAY)


def test_an_unknown_entry_and_a_missing_note_are_refused() -> None:
    with pytest.raises(CorrectionRefused, match="No existe la entrada"):
        check_proposal(Proposal("mx.nowhere.x", "city", "X", "", "nota"), raw_entries(None), TODAY)
    with pytest.raises(CorrectionRefused, match="de dónde sale"):
        check_proposal(Proposal(SALTILLO, "city", "Saltillo", "", ""), raw_entries(None), TODAY)


def test_a_country_change_must_keep_the_id_s_country() -> None:
    with pytest.raises(CorrectionRefused, match="id must start with the country code"):
        check_proposal(Proposal(SALTILLO, "country", "GT", "", "nota"), raw_entries(None), TODAY)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "844 414 1111"),
        ("phone", "+52 844 414 1111"),
        ("web", "https://example.org/casa"),
        ("verified_on", "2026-12-05"),
        ("hours", ""),
    ],
)
def test_a_good_proposal_passes(field: str, value: str) -> None:
    check_proposal(Proposal(SALTILLO, field, value, "https://example.org/fuente", "llamada"), raw_entries(None), TODAY)


# -- the console over HTTP ----------------------------------------------------------------


def test_an_invalid_phone_is_refused_with_a_clear_message_and_audited(console: Console) -> None:
    with signed_in(console, "ana", "agent") as client:
        answer = propose(client, value="844-CASA-00")
    assert answer.status_code == 400
    assert "El teléfono «844-CASA-00» no es válido" in error_of(answer)
    assert 'value="844-CASA-00"' in answer.text  # the form comes back filled
    assert stored(console) == []
    ((actor, target, detail),) = audit_rows(console, "service_correction_invalid")
    assert actor == "ana" and target == f"servicio {SALTILLO}" and detail is not None and detail.startswith("phone: ")


def test_an_invalid_url_is_refused_and_audited(console: Console) -> None:
    with signed_in(console, "ana", "agent") as client:
        answer = propose(client, field="web", value="www.casa migrante.org")
    assert answer.status_code == 400 and "no es una dirección web válida" in error_of(answer)
    assert len(audit_rows(console, "service_correction_invalid")) == 1


def test_the_proposer_cannot_approve_their_own_correction(console: Console) -> None:
    with signed_in(console, "sara", "supervisor") as sara:
        assert propose(sara, value="844 414 1111").status_code == 303
        (correction,) = stored(console)
        page = sara.get("/servicios").text
        assert f'id="correccion-{correction.id}"' in page
        assert f"/servicios/correcciones/{correction.id}/aprobar" not in page  # no button for their own
        answer = decide(sara, correction.id)
        assert answer.status_code == 403
        assert "No puede aprobar ni rechazar su propia corrección" in answer.text
        assert decide(sara, correction.id, "rechazar").status_code == 403
    (after,) = stored(console)
    assert after.state == "pending" and after.decided_by is None
    assert [row[0] for row in audit_rows(console, "service_correction_own_refused")] == ["sara", "sara"]


def test_an_agent_cannot_approve_and_another_supervisor_can(console: Console) -> None:
    with signed_in(console, "ana", "agent") as ana:
        assert propose(ana, value="844 414 1111", source="https://example.org/saltillo").status_code == 303
        (correction,) = stored(console)
        assert decide(ana, correction.id).status_code == 403
    with signed_in(console, "sara", "supervisor") as sara:
        assert f"/servicios/correcciones/{correction.id}/aprobar" in sara.get("/servicios").text
        answer = decide(sara, correction.id)
        assert answer.status_code == 303 and answer.headers["location"].endswith("#correcciones")
        assert decide(sara, correction.id).status_code == 409  # decided once
    (after,) = stored(console)
    assert after.state == "approved" and after.decided_by is not None
    assert [row[0] for row in audit_rows(console, "service_correction_proposed")] == ["ana"]
    ((actor, target, detail),) = audit_rows(console, "service_correction_approved")
    assert actor == "sara" and target == f"corrección {correction.id} de {SALTILLO}" and detail == "phone: 844 414 1111"


def test_a_rejected_correction_is_never_exported(console: Console, tmp_path: Path) -> None:
    with signed_in(console, "ana", "agent") as ana:
        propose(ana, field="city", value="Ramos Arizpe")
    with signed_in(console, "sara", "supervisor") as sara:
        assert decide(sara, stored(console)[0].id, "rechazar").status_code == 303
    out = tmp_path / "service_corrections.yml"
    result = export_corrections(console.engine, out, datetime(2026, 12, 6, 9, tzinfo=UTC))
    assert result.added == () and read_corrections(out) == []


def test_unknown_or_malformed_corrections_are_404(console: Console) -> None:
    with signed_in(console, "sara", "supervisor") as sara:
        assert decide(sara, 999).status_code == 404
        assert decide(sara, 0, "aprobar").status_code == 404
        assert (
            sara.post("/servicios/correcciones/abc/aprobar", data={"csrf": csrf(sara, "/servicios")}).status_code == 404
        )


def test_an_approved_correction_is_exported_and_reaches_the_directory(console: Console, tmp_path: Path) -> None:
    with signed_in(console, "ana", "agent") as ana:
        assert (
            propose(ana, value="844 414 1111", source="https://example.org/saltillo", note="llamamos").status_code
            == 303
        )
        answer = propose(
            ana,
            service=LA72,
            field="verified_on",
            value=(console.clock() - timedelta(days=1)).date().isoformat(),
            note="contestaron",
        )
        assert answer.status_code == 303, error_of(answer)
    with signed_in(console, "sara", "supervisor") as sara:
        for correction in stored(console):
            assert decide(sara, correction.id).status_code == 303
    out = tmp_path / "service_corrections.yml"
    out.write_text(CORRECTIONS.read_text(encoding="utf-8"), encoding="utf-8")
    result = export_corrections(console.engine, out, datetime(2026, 12, 6, 9, tzinfo=UTC))
    assert result.total == 2 and len(result.added) == 2
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Staff corrections") and "ana" not in text and "sara" not in text
    data = yaml.safe_load(text)
    assert {(c["field"], c["proposed_by"], c["approved_by"]) for c in data["corrections"]} == {
        ("phone", "agent", "supervisor"),
        ("verified_on", "agent", "supervisor"),
    }
    services = load_services(corrections=out)
    assert services[SALTILLO].phone == "844 414 1111"
    assert "https://example.org/saltillo" in services[SALTILLO].sources
    assert services[LA72].verified_on == (console.clock() - timedelta(days=1)).date()
    assert build_module.main(["--check", "--service-corrections", str(out)]) == 0
    again = export_corrections(console.engine, out, datetime(2026, 12, 6, 10, tzinfo=UTC))
    assert again.added == () and again.total == 2  # nothing twice
    assert [row[0] for row in audit_rows(console, "service_corrections_exported")] == ["cli", "cli"]


def test_a_corrections_file_the_validator_refuses_stops_the_build(tmp_path: Path) -> None:
    bad = tmp_path / "service_corrections.yml"
    bad.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "corrections": [
                    {
                        "id": 1,
                        "service": SALTILLO,
                        "field": "phone",
                        "value": "55 ABC",
                        "source": "",
                        "approved_on": "2026-12-06",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ServicesError, match="phone"):
        load_services(corrections=bad)
    assert build_module.main(["--check", "--service-corrections", str(bad)]) == 1


def test_the_committed_corrections_file_validates() -> None:
    assert build_module.check_services() == len(load_services())


# -- a new entry ----------------------------------------------------------------------------

NEW = {
    "id": "mx.tapachula.casa_nueva",
    "country": "MX",
    "city": "Tapachula",
    "name": "Casa Nueva de Prueba",
    "kind": "shelter",
    "summary": "",
    "address": "colonia Centro, Tapachula",
    "hours": "",
    "phone": "962 123 4567",
    "web": "",
    "sources": "https://example.org/nota\nhttps://example.org/otra",
    "source_date": "2026-11",
    "caveat": "",
    "note": "nota de prensa",
}


def propose_entry(client: httpx.Client, **fields: str) -> httpx.Response:
    data: dict[str, object] = {**NEW, **fields, "serves": ["women", "children"]}
    return client.post("/servicios/nueva", data={"csrf": csrf(client, "/servicios"), **data})


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"phone": "962-ABC"}, "El teléfono «962-ABC» no es válido"),
        ({"sources": "example.org/nota"}, "no es una dirección web válida"),
        ({"sources": ""}, "al menos una fuente"),
        ({"web": "http://"}, "no es una dirección web válida"),
        ({"id": SALTILLO}, "Ya existe la entrada"),
        ({"country": "XX"}, "no es un país"),
        ({"id": "gt.tapachula.casa"}, "id must start with the country code"),
        ({"source_date": "ayer"}, "source_date"),
    ],
)
def test_a_bad_new_entry_is_refused_with_a_clear_message_and_audited(
    console: Console, fields: dict[str, str], says: str
) -> None:
    with signed_in(console, "ana", "agent") as client:
        answer = propose_entry(client, **fields)
    assert answer.status_code == 400
    assert says in error_of(answer)
    assert stored(console) == []
    assert len(audit_rows(console, "service_correction_invalid")) == 1


def test_a_new_entry_approved_by_another_person_reaches_the_directory_as_secondary(
    console: Console, tmp_path: Path
) -> None:
    with signed_in(console, "ana", "agent") as ana:
        assert propose_entry(ana).status_code == 303
    (proposal,) = stored(console)
    assert proposal.field == "entry" and proposal.service_id == NEW["id"]
    with signed_in(console, "sara", "supervisor") as sara:
        assert decide(sara, proposal.id).status_code == 303
    out = tmp_path / "service_corrections.yml"
    assert export_corrections(console.engine, out, datetime(2026, 12, 6, 9, tzinfo=UTC)).added == (proposal.id,)
    (written,) = yaml.safe_load(out.read_text(encoding="utf-8"))["corrections"]
    assert written["value"]["name"] == "Casa Nueva de Prueba"  # a mapping a reviewer reads
    entry = load_services(corrections=out)[str(NEW["id"])]
    assert (entry.mark, entry.confidence, entry.verified_on) == ("🟡", "secondary", None)
    assert entry.phone == "962 123 4567" and entry.serves == ("women", "children")
    assert entry.sources == ("https://example.org/nota", "https://example.org/otra")
    assert build_module.main(["--check", "--service-corrections", str(out)]) == 0
