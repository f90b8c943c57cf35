"""The same hotline on PostgreSQL: Rasa's tracker store and the reports database in
throwaway PostgreSQL databases (created and dropped here), the real servers between. Its
mail server for staff alerts accepts connections and never greets (a hung SMTP server)."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hotline.report_codes import check_code
from reports.models import Notification
from scripts.stack import Stack, free_port, running_stack
from tests.conftest import Conversation
from tests.db_fixtures import temporary_postgres_database
from tests.reporting import CODE_IN_REPLY, file_by_chat, opened, report_ids, reports_session
from tests.test_e2e_reports import assert_nothing_in_clear

pytestmark = pytest.mark.rasa

GATEWAY_RASA_TIMEOUT_SECONDS = 8.0  # channels/config.py: then the person is told "we are slow"


@pytest.fixture(scope="module")
def hung_smtp() -> Iterator[int]:
    """A port where connections are accepted by the kernel and never greeted: smtplib waits
    for the banner until its timeout (10 s), as with a mail server that hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, hung_smtp: int) -> Iterator[Stack]:
    work: Path = tmp_path_factory.mktemp("pg-stack")
    smtp = {"HOTLINE_SMTP_HOST": "127.0.0.1", "HOTLINE_SMTP_PORT": str(hung_smtp)}
    smtp.update(HOTLINE_SMTP_FROM="bot@hotline.test", HOTLINE_SMTP_TO="duty@hotline.test")
    with (
        temporary_postgres_database() as tracker_url,
        temporary_postgres_database() as database_url,
        running_stack(
            work / "logs",
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            tracker_url=tracker_url,
            database_url=database_url,
            keys_dir=work / "keys",
            extra_env=smtp,
        ) as running,
    ):
        yield running


def test_report_and_follow_up_on_postgresql(client: httpx.Client, pg_stack: Stack) -> None:
    tipster = Conversation(client, pg_stack, "pg-tipster")
    before = report_ids(pg_stack)
    code, _ = file_by_chat(tipster, "En la maquila encierran a los trabajadores de noche")
    assert check_code(code) == "ok"
    (report_id,) = [i for i in report_ids(pg_stack) if i not in before]
    assert opened(pg_stack, report_id)["what"] == "En la maquila encierran a los trabajadores de noche"
    later = Conversation(client, pg_stack, "pg-tipster-later")
    assert any("RECIBIDA" in r for r in later.say(f"seguimiento {code}"))
    # The conversation is in PostgreSQL (tracker store), encrypted, and reloads across turns.
    assert later.tracker()["active_loop"] == {"name": "follow_up_form"} or later.tracker()["active_loop"]


def test_anonymity_scan_on_postgresql(client: httpx.Client, pg_stack: Stack) -> None:
    assert_nothing_in_clear(client, pg_stack)


def test_a_hung_mail_server_never_holds_back_the_case_code(client: httpx.Client, pg_stack: Stack) -> None:
    """An urgent report (someone in danger now) with the staff mail server hanging: the code
    comes back at once (before, the turn waited for the alert and the gateway gave up at
    8 s); the alert stays in the outbox for `reports.jobs notify-pending`; SI again files
    nothing more."""
    tipster = Conversation(client, pg_stack, "pg-urgent-" + secrets.token_hex(4))
    before = report_ids(pg_stack)
    answers = ("guatemala", "la finca El Roble", "hoy", "como 10", "si", "1", "si", "no")
    for text in ("quiero denunciar", "Tienen a unos niños trabajando encerrados", "listo", *answers):
        tipster.say(text)
    started = time.monotonic()
    filed = tipster.say("si")
    elapsed = time.monotonic() - started
    assert CODE_IN_REPLY.search(" ".join(filed)), filed
    assert elapsed < GATEWAY_RASA_TIMEOUT_SECONDS, elapsed
    (report_id,) = [i for i in report_ids(pg_stack) if i not in before]
    with reports_session(pg_stack) as session:
        alerts = session.scalars(select(Notification).where(Notification.report_id == report_id)).all()
        assert [a.channel for a in alerts] == ["email"] and all(a.status != "sent" for a in alerts)
    again = tipster.say("si")
    assert not CODE_IN_REPLY.search(" ".join(again))
    assert [i for i in report_ids(pg_stack) if i not in before] == [report_id]
