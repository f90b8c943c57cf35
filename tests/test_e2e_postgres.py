"""The same hotline on PostgreSQL: Rasa's tracker store and the reports database in
throwaway PostgreSQL databases (created and dropped here), the real servers between."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hotline.report_codes import check_code
from scripts.stack import Stack, free_port, running_stack
from tests.conftest import Conversation
from tests.db_fixtures import temporary_postgres_database
from tests.reporting import file_by_chat, opened, report_ids
from tests.test_e2e_reports import assert_nothing_in_clear

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work: Path = tmp_path_factory.mktemp("pg-stack")
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
