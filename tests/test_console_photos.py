"""A report's photos in the console over real HTTP: shown to staff who may see the report,
opened only for the answer (strict, uncacheable headers; each view audited), hidden for
good once a supervisor marks one as child sexual abuse material (with the legal path of the
report's country from content/facts.yml), and wrong requests answered with clear pages.
The first test runs the console's own process (`python -m console.app`); the others serve
the same app in this process on a test clock (test_console_web.py's `serve`)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError

from console.directory import find
from console.photos import LEGAL_PATHS
from reports import crypto
from reports.db import transaction
from reports.models import AuditEntry, ReportAttachment
from reports.service import ReportDraft, file_report, keep_photo
from tests.db_fixtures import Keyring
from tests.test_console_cases import signed_in
from tests.test_console_web import START, Console, csrf, run_console, serve

PHOTO_SRC = re.compile(r'<img src="/console/casos/([0-9a-f-]{36})/fotos/(\d+)" alt="Foto (\d) de la denuncia">')
HIDDEN = "oculta: marcada como material de abuso sexual infantil por supervisor/sara el "


def jpeg(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="JPEG")
    return out.getvalue()


def file_with_photos(engine: Engine, keyring: Keyring, photos: list[bytes], country: str | None = "US") -> str:
    """A filed report holding `photos` (JPEG), as the gateway files one; returns its id."""
    sender = f"sender-{len(photos)}-{country}-{photos[0][-8:].hex() if photos else ''}"
    draft = ReportDraft(
        "Me mandan fotos de una niña", country, "zona 1", "ayer", "1", True, "child", False, attachments_from=sender
    )
    with transaction(engine) as session:
        for content in photos:
            keep_photo(session, sender, content, "image/jpeg", keyring.keys)
        return file_report(session, draft, keyring.keys, START - timedelta(hours=1), notify_channels=()).report_id


def photo_ids(engine: Engine, report_id: str) -> list[int]:
    with transaction(engine) as session:
        query = select(ReportAttachment.id).where(ReportAttachment.report_id == report_id)
        return list(session.scalars(query.order_by(ReportAttachment.id)))


def audit(engine: Engine) -> list[tuple[str | None, str, str | None, str | None]]:
    with transaction(engine) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.actor, e.action, e.target, e.detail) for e in entries]


def mark(client: httpx.Client, report_id: str, photo_id: int, confirm: bool = True) -> httpx.Response:
    data = {"csrf": csrf(client, f"/casos/{report_id}")}
    if confirm:
        data["confirm"] = "1"
    return client.post(f"/casos/{report_id}/fotos/{photo_id}/marcar", data=data)


@pytest.fixture
def console(tmp_path: Path, keyring: Keyring) -> Iterator[Console]:
    assert keyring.directory == tmp_path / "keys"
    with serve(tmp_path) as served:
        yield served


def test_the_console_process_shows_each_photo_decrypted_uncached_and_audited(tmp_path: Path, keyring: Keyring) -> None:
    first, second = jpeg(), jpeg((10, 120, 200))
    with run_console(tmp_path) as running:
        report_id = file_with_photos(running.engine, keyring, [first, second])
        ids = photo_ids(running.engine, report_id)
        with signed_in(running, "ana", "agent") as client:
            page = client.get(f"/casos/{report_id}")
            assert page.status_code == 200
            shown = [(r, int(p), n) for r, p, n in PHOTO_SRC.findall(page.text)]
            assert shown == [(report_id, ids[0], "1"), (report_id, ids[1], "2")]
            assert "/marcar" not in page.text  # agents get no mark button
            for photo_id, content in zip(ids, (first, second), strict=True):
                answer = client.get(f"/casos/{report_id}/fotos/{photo_id}")
                assert answer.status_code == 200 and answer.content == content
                assert answer.headers["content-type"] == "image/jpeg"
                assert answer.headers["cache-control"] == "no-store, private"
                assert answer.headers["pragma"] == "no-cache"
                assert answer.headers["x-content-type-options"] == "nosniff"
                assert answer.headers["content-disposition"] == "inline"
        with transaction(running.engine) as session:
            stored = session.scalars(select(ReportAttachment).where(ReportAttachment.report_id == report_id)).all()
            assert all(first not in a.sealed_content and second not in a.sealed_content for a in stored)
    views = [entry for entry in audit(running.engine) if entry[1] == "photo_viewed"]
    assert views == [("ana", "photo_viewed", f"denuncia {report_id}", f"foto {i}") for i in ids]
    for path in tmp_path.rglob("*"):  # nothing decrypted was written anywhere (database, logs)
        if path.is_file():
            data = path.read_bytes()
            assert first not in data and second not in data, path


def test_a_supervisor_marks_a_photo_and_from_then_on_nobody_sees_it(console: Console, keyring: Keyring) -> None:
    report_id = file_with_photos(console.engine, keyring, [jpeg(), jpeg((0, 0, 0))], country="US")
    marked, kept = photo_ids(console.engine, report_id)
    with signed_in(console, "ana", "agent") as agent, signed_in(console, "sara", "supervisor") as supervisor:
        page = supervisor.get(f"/casos/{report_id}").text
        assert page.count("Marcar como material de abuso sexual infantil (irreversible)") == 2
        assert "Vía legal" not in page
        unconfirmed = mark(supervisor, report_id, marked, confirm=False)
        assert unconfirmed.status_code == 400 and "Marque la casilla de confirmación" in unconfirmed.text
        assert supervisor.get(f"/casos/{report_id}/fotos/{marked}").status_code == 200  # not marked yet
        done = mark(supervisor, report_id, marked)
        assert done.status_code == 303
        assert done.headers["location"] == f"/console/casos/{report_id}?hecho=foto#fotos"
        page = supervisor.get(f"/casos/{report_id}?hecho=foto").text
        assert "Foto marcada como material de abuso sexual infantil" in page
        assert HIDDEN + console.clock().strftime("%Y-%m-%d %H:%M UTC") in page
        assert [int(p) for _, p, _ in PHOTO_SRC.findall(page)] == [kept]
        assert "report.cybertip.org" in page and "https://report.cybertip.org/faqs" in page  # the US fact, sourced
        for client in (supervisor, agent):
            gone = client.get(f"/casos/{report_id}/fotos/{marked}")
            assert gone.status_code == 410 and "Foto oculta" in gone.text
            assert gone.headers["content-type"].startswith("text/html")
        assert agent.get(f"/casos/{report_id}/fotos/{kept}").status_code == 200
        console.clock.advance(minutes=5)  # a later second mark changes nothing
        again = mark(supervisor, report_id, marked)
        assert again.status_code == 409 and "ya estaba marcada" in again.text
    with transaction(console.engine) as session:
        photo = session.get(ReportAttachment, marked)
        assert photo is not None and (photo.csam_marked_by, photo.csam_marked_role) == ("sara", "supervisor")
        assert photo.csam_marked_at == START
        other = session.get(ReportAttachment, kept)
        assert other is not None and other.csam_marked_at is None
    target, detail = f"denuncia {report_id}", f"foto {marked}"
    actions = audit(console.engine)
    assert [e for e in actions if e[1] == "photo_csam_marked"] == [("sara", "photo_csam_marked", target, detail)]
    assert ("sara", "photo_mark_repeated", target, detail) in actions
    assert ("sara", "photo_hidden_refused", target, detail) in actions
    assert ("ana", "photo_hidden_refused", target, detail) in actions


def test_a_marked_photo_of_a_country_without_a_verified_path_says_to_escalate(
    console: Console, keyring: Keyring
) -> None:
    report_id = file_with_photos(console.engine, keyring, [jpeg()], country="GT")
    (photo_id,) = photo_ids(console.engine, report_id)
    with signed_in(console, "sara", "supervisor") as supervisor:
        assert mark(supervisor, report_id, photo_id).status_code == 303
        page = supervisor.get(f"/casos/{report_id}").text
    assert "La línea no tiene una vía verificada" in page and "en GT" in page and "Escale el caso" in page
    assert "cybertip" not in page.lower()


def test_wrong_photo_requests_get_clear_answers(console: Console, keyring: Keyring) -> None:
    report_id = file_with_photos(console.engine, keyring, [jpeg()])
    other_id = file_with_photos(console.engine, keyring, [jpeg((1, 2, 3))], country="MX")
    (photo_id,) = photo_ids(console.engine, report_id)
    (other_photo,) = photo_ids(console.engine, other_id)
    with signed_in(console, "ana", "agent") as agent:
        for path in (
            f"/casos/{report_id}/fotos/{other_photo}",  # another report's photo
            f"/casos/{report_id}/fotos/999999",
            f"/casos/{report_id}/fotos/abc",
            f"/casos/{report_id}/fotos/0",
            f"/casos/{report_id}/fotos/99999999999",  # beyond a 32-bit id
            f"/casos/00000000-0000-0000-0000-000000000000/fotos/{photo_id}",
        ):
            answer = agent.get(path)
            assert answer.status_code == 404 and "Esa foto no existe en esta denuncia" in answer.text, path
        refused = mark(agent, report_id, photo_id)
        assert refused.status_code == 403 and "Solo supervisión puede marcar" in refused.text
    with signed_in(console, "sara", "supervisor") as supervisor:
        assert mark(supervisor, report_id, other_photo).status_code == 404
    with transaction(console.engine) as session:
        assert session.scalars(select(ReportAttachment).where(ReportAttachment.csam_marked_at.is_not(None))).all() == []
    actions = audit(console.engine)
    assert ("ana", "forbidden", f"denuncia {report_id}", f"foto {photo_id}") in actions
    assert ("ana", "photo_not_found", f"denuncia {report_id}", f"foto {other_photo}") in actions
    assert ("sara", "photo_not_found", f"denuncia {report_id}", f"foto {other_photo}") in actions
    assert not any(entry[1] == "photo_viewed" for entry in actions)


def test_a_photo_that_cannot_be_opened_gets_a_clear_page_and_the_report_still_shows(
    console: Console, keyring: Keyring
) -> None:
    report_id = file_with_photos(console.engine, keyring, [jpeg(), jpeg((5, 5, 5)), jpeg((9, 9, 9))])
    damaged, foreign, not_jpeg = photo_ids(console.engine, report_id)
    other_key = crypto.generate_private_key().public_key
    with transaction(console.engine) as session:
        blob = session.get(ReportAttachment, damaged)
        assert blob is not None
        blob.sealed_content = blob.sealed_content[:-5] + b"xxxxx"
        session.execute(
            update(ReportAttachment)
            .where(ReportAttachment.id == foreign)
            .values(sealed_content=crypto.seal(other_key, jpeg()))
        )
        session.execute(
            update(ReportAttachment)
            .where(ReportAttachment.id == not_jpeg)
            .values(sealed_content=crypto.seal(keyring.keys.public_key, b"<html><script>alert(1)</script>"))
        )
    with signed_in(console, "ana", "agent") as agent:
        page = agent.get(f"/casos/{report_id}")
        assert page.status_code == 200 and len(PHOTO_SRC.findall(page.text)) == 3
        for photo_id in (damaged, foreign):
            answer = agent.get(f"/casos/{report_id}/fotos/{photo_id}")
            assert answer.status_code == 500 and "No se pudo abrir esta foto" in answer.text
            assert answer.headers["content-type"].startswith("text/html")
        wrong = agent.get(f"/casos/{report_id}/fotos/{not_jpeg}")
        assert wrong.status_code == 415 and "<script>" not in wrong.text
    unreadable = [entry for entry in audit(console.engine) if entry[1] == "photo_unreadable"]
    assert [entry[3] for entry in unreadable] == [f"foto {damaged}", f"foto {foreign}", f"foto {not_jpeg}"]


def test_the_mark_cannot_be_cleared_or_changed_in_the_database(engine: Engine, keyring: Keyring) -> None:
    report_id = file_with_photos(engine, keyring, [jpeg()])
    (photo_id,) = photo_ids(engine, report_id)
    with transaction(engine) as session:
        photo = session.get(ReportAttachment, photo_id)
        assert photo is not None
        photo.csam_marked_at, photo.csam_marked_by, photo.csam_marked_role = START, "sara", "supervisor"
    for values in ({"csam_marked_at": None}, {"csam_marked_by": "otra"}, {"csam_marked_role": "agent"}):
        with pytest.raises(DBAPIError, match="keeps its mark"), transaction(engine) as session:
            session.execute(update(ReportAttachment).where(ReportAttachment.id == photo_id).values(**values))
    with transaction(engine) as session:
        photo = session.get(ReportAttachment, photo_id)
        assert photo is not None and (photo.csam_marked_at, photo.csam_marked_by) == (START, "sara")


def test_every_legal_path_names_a_usable_sourced_fact() -> None:
    assert set(LEGAL_PATHS) == {"US", "CA", "MX"}
    for country, keys in LEGAL_PATHS.items():
        for key in keys:
            contact = find(key)
            assert contact is not None and contact.country == country and contact.sources, key
