"""Staff phone confirmations carried into the assistant's content: exported from a real
database (SQLite and PostgreSQL) into a confirmations file, merged with what the file has,
refused for unknown facts and future dates; then read by the build (effective check date,
the note shown to the person), the content audit and the console's referral directory."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select

from console import auth
from console.directory import directory
from console.facts_audit import ExportError, export_confirmations, main
from hotline import build as build_module
from hotline.audit import audit
from hotline.content import (
    CONFIRMATIONS,
    Confirmation,
    ContentError,
    Page,
    dump_confirmations,
    load_fact_sheet,
    load_facts,
    load_sms_budget,
    page_name,
    read_confirmations,
    render_all,
)
from hotline.sms import sms_segments
from reports.db import transaction
from reports.models import AuditEntry, FactConfirmation

SECONDARY = "hn.trafficking_145"  # 🟡 with caveat "dato por confirmar", in utter_emergency[HN]
VERIFIED = "us.emergency"  # ✅, no caveat, never confirmed by a call
OTHER = "mx.emergency"  # 🟡, no caveat
TODAY = date(2026, 11, 29)
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PASSWORD = "a long enough password"
PHONE_LIKE = re.compile(r"\*?\+?\d(?:[\d\s\-.]*\d){2,}")


def staff(engine: Engine, username: str, role: str) -> int:
    account = auth.create_account(engine, username, role, PASSWORD, NOW, created_by="test")
    return account.id


def confirm(engine: Engine, fact_id: str, day: str, staff_id: int, note: str = "", at: str = "") -> None:
    recorded = datetime.fromisoformat(at) if at else datetime.fromisoformat(f"{day}T15:00:00+00:00")
    with transaction(engine) as session:
        session.add(
            FactConfirmation(
                fact_id=fact_id,
                confirmed_on=date.fromisoformat(day),
                staff_id=staff_id,
                note=note,
                recorded_at=recorded,
            )
        )


def exports(engine: Engine) -> list[tuple[str | None, str | None]]:
    with transaction(engine) as session:
        query = select(AuditEntry).where(AuditEntry.action == "facts_exported").order_by(AuditEntry.id)
        return [(e.actor, e.detail) for e in session.scalars(query)]


def committed_copy(tmp_path: Path) -> Path:
    out = tmp_path / "confirmations.yml"
    shutil.copyfile(CONFIRMATIONS, out)
    return out


def write_file(path: Path, *entries: Confirmation) -> Path:
    base = read_confirmations(CONFIRMATIONS)
    path.write_text(dump_confirmations(replace(base, entries={e.fact_id: e for e in entries})), encoding="utf-8")
    return path


def carried(fact_id: str, day: str, by: str = "agent", note: str = "", at: str = "") -> Confirmation:
    return Confirmation(fact_id, date.fromisoformat(day), note, by, at or f"{day}T15:00:00Z")


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# -- export from the database --------------------------------------------------------------


def test_export_writes_the_latest_confirmation_of_each_fact(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ana, sara = staff(engine, "ana", "agent"), staff(engine, "sara", "supervisor")
    confirm(engine, SECONDARY, "2026-11-20", ana, "primera llamada")
    confirm(engine, SECONDARY, "2026-11-28", sara, "Contestó la operadora: «Línea 145»", at="2026-11-28T16:05:09+00:00")
    confirm(engine, VERIFIED, "2026-11-21", ana)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", url_of(engine))
    out = committed_copy(tmp_path)

    assert main(["export", "--out", str(out)]) == 0
    assert "2 confirmation(s), 2 new or newer" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert list(data["confirmations"]) == [SECONDARY, VERIFIED]  # sorted by fact id
    assert data["confirmations"][SECONDARY] == {
        "confirmed_on": "2026-11-28",
        "note": "Contestó la operadora: «Línea 145»",
        "by": "supervisor",
        "recorded_at": "2026-11-28T16:05:09Z",
    }
    assert data["confirmations"][VERIFIED]["by"] == "agent"
    assert "ana" not in text and "sara" not in text  # roles, never the staff's names
    assert data["shown_es"] == read_confirmations(CONFIRMATIONS).shown_es  # the labels are kept
    assert text.startswith("# Staff confirmations by phone")
    assert exports(engine) == [
        ("cli", "2 confirmación(es) en el archivo; 2 nueva(s) o más reciente(s): " + ", ".join([SECONDARY, VERIFIED]))
    ]

    assert main(["export", "--out", str(out)]) == 0  # again: the same bytes, audited again
    assert out.read_text(encoding="utf-8") == text
    assert len(exports(engine)) == 2 and "0 nueva(s)" in str(exports(engine)[1][1])
    assert {f: c.confirmed_on for f, c in read_confirmations(out).entries.items()} == {
        SECONDARY: date(2026, 11, 28),
        VERIFIED: date(2026, 11, 21),
    }


def test_export_merges_with_the_file_and_never_drops_a_confirmation(engine: Engine, tmp_path: Path) -> None:
    ana = staff(engine, "ana", "agent")
    confirm(engine, SECONDARY, "2026-11-10", ana, "más antigua que la del archivo")
    confirm(engine, VERIFIED, "2026-11-25", ana, "más nueva que la del archivo")
    out = write_file(
        tmp_path / "confirmations.yml",
        carried(OTHER, "2026-10-01", "admin", "de otra base de datos"),
        carried(SECONDARY, "2026-11-20", "supervisor", "la del archivo"),
        carried(VERIFIED, "2026-11-01", "supervisor", "la del archivo"),
    )
    result = export_confirmations(engine, out, NOW)
    assert result.updated == (VERIFIED,) and result.total == 3
    entries = read_confirmations(out).entries
    assert entries[OTHER] == carried(OTHER, "2026-10-01", "admin", "de otra base de datos")  # not in this DB: kept
    assert entries[SECONDARY].note == "la del archivo" and entries[SECONDARY].confirmed_on == date(2026, 11, 20)
    assert entries[VERIFIED] == carried(VERIFIED, "2026-11-25", "agent", "más nueva que la del archivo")


def test_a_new_file_starts_from_the_committed_labels(engine: Engine, tmp_path: Path) -> None:
    confirm(engine, OTHER, "2026-11-28", staff(engine, "ana", "agent"))
    out = tmp_path / "new" / "confirmations.yml"
    out.parent.mkdir()
    export_confirmations(engine, out, NOW)
    written, committed = read_confirmations(out), read_confirmations(CONFIRMATIONS)
    assert list(written.entries) == [OTHER]
    assert (written.shown_es, written.months_es) == (committed.shown_es, committed.months_es)
    assert written.answered_caveats_es == committed.answered_caveats_es


def test_the_committed_file_is_what_an_export_writes(engine: Engine, tmp_path: Path) -> None:
    """Exporting a database that adds nothing leaves content/confirmations.yml byte for byte."""
    out = committed_copy(tmp_path)
    export_confirmations(engine, out, NOW)
    assert out.read_bytes() == CONFIRMATIONS.read_bytes()


def test_export_refuses_unknown_facts_and_writes_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ana = staff(engine, "ana", "agent")
    confirm(engine, SECONDARY, "2026-11-28", ana)
    confirm(engine, "xx.gone", "2026-11-28", ana)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", url_of(engine))
    out = committed_copy(tmp_path)
    before = out.read_bytes()
    assert main(["export", "--out", str(out)]) == 2
    assert "nothing written" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert exports(engine) == []
    assert not list(tmp_path.glob(".*partial"))


def test_export_refuses_an_unknown_fact_already_in_the_file(engine: Engine, tmp_path: Path) -> None:
    out = write_file(tmp_path / "confirmations.yml", carried("xx.renamed", "2026-11-01"))
    before = out.read_bytes()
    with pytest.raises(ExportError, match=r"xx\.renamed"):
        export_confirmations(engine, out, NOW)
    assert out.read_bytes() == before and exports(engine) == []


def test_export_refuses_a_date_after_today(engine: Engine, tmp_path: Path) -> None:
    confirm(engine, SECONDARY, "2026-11-30", staff(engine, "ana", "agent"))
    out = committed_copy(tmp_path)
    with pytest.raises(ExportError, match=r"after today \(2026-11-29\).*hn.trafficking_145 \(2026-11-30\)"):
        export_confirmations(engine, out, NOW)
    assert out.read_bytes() == CONFIRMATIONS.read_bytes()


# -- the content build and audit (no database) ----------------------------------------------


def responses_text(generated: dict[str, list[dict[str, Any]]], name: str, country: str) -> str:
    for variation in generated[name]:
        condition = variation.get("condition")
        if condition and condition[0]["value"] == country:
            return str(variation["text"])
    raise AssertionError(f"{name} has no {country} variation")


def test_the_build_shows_a_phone_confirmation_of_a_secondary_fact(tmp_path: Path) -> None:
    path = write_file(tmp_path / "confirmations.yml", carried(SECONDARY, "2026-11-28"), carried(VERIFIED, "2026-11-20"))
    plain = write_file(tmp_path / "plain.yml")
    value = load_fact_sheet()[SECONDARY].value
    confirmed = build_module.build(write=False, confirmations=path, today=TODAY)["responses"]
    before = build_module.build(write=False, confirmations=plain, today=TODAY)["responses"]
    assert f"{value} (dato por confirmar)" in responses_text(before, "utter_emergency", "HN")
    text = responses_text(confirmed, "utter_emergency", "HN")
    assert f"{value} (confirmado por teléfono en nov. 2026)" in text  # the note answers "dato por confirmar"
    assert f"{value} (dato por confirmar" not in text
    assert sms_segments(text) == 1  # a known country's emergency answer stays one SMS with the note
    # a verified fact without caveat is shown as before: its source is official already
    us = responses_text(confirmed, "utter_emergency", "US")
    assert us == responses_text(before, "utter_emergency", "US") and "confirmado por teléfono" not in us


def test_the_effective_check_date_is_the_newer_of_the_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_file(tmp_path / "confirmations.yml", carried(VERIFIED, "2026-11-20"))
    assert load_facts(path)[VERIFIED].checked_on() == date(2026, 11, 20)
    monkeypatch.setitem(load_fact_sheet()[VERIFIED].raw, "verified_on", "2026-11-25")
    assert load_facts(path)[VERIFIED].checked_on() == date(2026, 11, 25)
    monkeypatch.setitem(load_fact_sheet()[VERIFIED].raw, "verified_on", "2026-11-01")
    assert load_facts(path)[VERIFIED].checked_on() == date(2026, 11, 20)


def test_the_audit_stops_flagging_a_recent_confirmation_but_keeps_the_mark(tmp_path: Path) -> None:
    plain = write_file(tmp_path / "plain.yml")
    path = write_file(tmp_path / "confirmations.yml", carried(SECONDARY, "2026-11-28"), carried(VERIFIED, "2026-11-20"))
    before = {row.fact.id: row for row in audit(TODAY, confirmations=plain)}
    assert "never confirmed by a call" in before[VERIFIED].reasons
    assert "never confirmed by a call" in before[SECONDARY].reasons
    rows = {row.fact.id: row for row in audit(TODAY, confirmations=path)}
    assert VERIFIED not in rows
    assert rows[SECONDARY].reasons == ("🟡 secondary", "⚠️ caveat")  # a call does not change the source
    assert rows[SECONDARY].confirmation == carried(SECONDARY, "2026-11-28")
    later = {row.fact.id: row for row in audit(date(2027, 11, 29), confirmations=path)}
    assert "last confirmed 2026-11-20" in later[VERIFIED].reasons


def test_a_future_date_fails_the_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_file(tmp_path / "confirmations.yml", carried(SECONDARY, "2026-11-30"))
    with pytest.raises(ContentError, match=r"after today \(2026-11-29\): hn.trafficking_145 \(2026-11-30\)"):
        build_module.build(write=False, confirmations=path, today=TODAY)
    build_module.build(write=False, confirmations=path, today=date(2026, 11, 30))  # that day itself is fine
    far = write_file(tmp_path / "far.yml", carried(SECONDARY, (date.today() + timedelta(days=400)).isoformat()))
    assert build_module.main(["--check", "--confirmations", str(far)]) == 1
    assert "after today" in capsys.readouterr().err
    rows = {row.fact.id: row for row in audit(TODAY, confirmations=path)}
    assert "confirmation dated after today 2026-11-30" in rows[SECONDARY].reasons
    assert "never confirmed by a call" in rows[SECONDARY].reasons  # a future date does not count


def test_an_unknown_fact_fails_the_build(tmp_path: Path) -> None:
    path = write_file(tmp_path / "confirmations.yml", carried("xx.gone", "2026-11-01"))
    with pytest.raises(ContentError, match=r"facts\.yml does not have: xx\.gone"):
        build_module.build(write=False, confirmations=path, today=TODAY)


def test_a_malformed_file_fails_the_build(tmp_path: Path) -> None:
    path = tmp_path / "confirmations.yml"
    text = CONFIRMATIONS.read_text(encoding="utf-8").replace(
        "confirmations: {}", "confirmations:\n  hn.trafficking_145: {}"
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContentError, match=r"hn\.trafficking_145: confirmed_on is missing"):
        build_module.build(write=False, confirmations=path, today=TODAY)


def test_another_confirmations_file_is_only_for_checking() -> None:
    with pytest.raises(SystemExit):
        build_module.main(["--confirmations", str(CONFIRMATIONS)])


def test_every_page_fits_when_every_fact_is_confirmed(tmp_path: Path) -> None:
    """Notes are shown where they fit; a page they would push past its SMS budget (one segment
    unless content/sms_budget.yml allows two) is shown without them."""
    path = write_file(tmp_path / "all.yml", *(carried(fact_id, "2026-11-28") for fact_id in load_fact_sheet()))
    facts = load_facts(path)
    pages = [page for variants in render_all(facts).values() for ps in variants.values() for page in ps]
    budget = load_sms_budget()
    assert all(sms_segments(p.text) <= budget.allowed(page_name(p.response, p.index), p.variant) for p in pages)
    assert sum(sms_segments(page.text) == 1 for page in pages) / len(pages) >= budget.min_one_segment_share

    def shows_a_confirmed_fact(page: Page) -> bool:
        confirmable = [facts[f] for f in page.facts if facts[f].confirmed_es]
        return any(f.shown_as(True) in page.text or f.shown_as(False) in page.text for f in confirmable)

    could = [page for page in pages if shows_a_confirmed_fact(page)]
    with_note = [page for page in could if page.confirmed]
    assert with_note and len(with_note) < len(could)  # both cases happen
    for page in with_note:
        assert "confirmado por teléfono en nov. 2026" in page.text
    for page in could:
        if not page.confirmed:
            assert "confirmado por teléfono" not in page.text
    # the year in the note is the only new number: no page names a number its facts do not have
    for page in with_note:
        allowed = {re.sub(r"\D", "", facts[f].value or "") for f in page.facts}
        notes = "; ".join(n for f in page.facts for n in facts[f].notes() + facts[f].notes(confirmed=False))
        allowed |= {re.sub(r"\D", "", n) for n in PHONE_LIKE.findall(notes)}
        for match in PHONE_LIKE.finditer(page.text):
            digits = re.sub(r"\D", "", match.group(0))
            assert any(digits in a for a in allowed if a), (page.response, page.variant, match.group(0))


# -- the console's referral directory -------------------------------------------------------


def test_the_directory_shows_the_phone_confirmation(tmp_path: Path) -> None:
    path = write_file(tmp_path / "confirmations.yml", carried(SECONDARY, "2026-11-28"))
    contacts = {contact.key: contact for contact in directory(path)["HN"]}
    assert contacts[SECONDARY].confirmation == "confirmado por teléfono el 2026-11-28"
    assert (
        contacts[SECONDARY].confidence_name == "secundario: volver a comprobar · confirmado por teléfono el 2026-11-28"
    )
    others = [contact for key, contact in contacts.items() if key != SECONDARY]
    assert others and all(contact.confirmation is None for contact in others)
    assert all("confirmado" not in contact.confidence_name for contact in others)
