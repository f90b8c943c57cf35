"""The live hand-off's data on SQLite and PostgreSQL: one open hand-off per conversation
(even under parallel requests), the states, sealed messages, idle and lapsed hand-offs,
erasure and retention."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from reports import crypto, handoffs
from reports.db import transaction
from reports.models import Handoff, HandoffMessage, StaffAccount
from tests.db_fixtures import Keyring

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
CONVERSATION = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def staff(engine: Engine) -> None:
    """Staff accounts 1, 7 and 8, who take hand-offs."""
    with transaction(engine) as session:
        for staff_id in (1, 7, 8):
            session.add(
                StaffAccount(id=staff_id, username=f"staff{staff_id}", password_hash="x", role="agent", created_at=NOW)
            )


def request(engine: Engine, keyring: Keyring, reason: str = "asked", conversation: str = CONVERSATION) -> int:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "sms", "+50255501234")
    with transaction(engine) as session:
        return handoffs.request_handoff(session, conversation, "sms", reason, reply_to, NOW).id


def test_a_request_is_waiting_with_the_address_sealed(engine: Engine, keyring: Keyring) -> None:
    handoff_id = request(engine, keyring)
    with transaction(engine) as session:
        handoff = session.get(Handoff, handoff_id)
        assert handoff is not None and handoff.state == "waiting" and handoff.reply_sealed is not None
        assert b"50255501234" not in handoff.reply_sealed
        assert crypto.open_contact(keyring.private_key, handoff.reply_sealed) == ("sms", "+50255501234")


def test_asking_again_refreshes_the_open_request_and_asking_outranks_a_fallback(
    engine: Engine, keyring: Keyring
) -> None:
    first = request(engine, keyring, "fallback")
    assert request(engine, keyring, "asked") == first
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Handoff)) == 1
        assert session.get(Handoff, first).reason == "asked"  # type: ignore[union-attr]


def test_parallel_requests_leave_one_open_handoff(engine: Engine, keyring: Keyring) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(lambda _: request(engine, keyring), range(8)))
    assert len(ids) == 1
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Handoff)) == 1


def test_unknown_reasons_are_refused(engine: Engine, keyring: Keyring) -> None:
    with pytest.raises(ValueError), transaction(engine) as session:
        handoffs.request_handoff(session, CONVERSATION, "sms", "bored", None, NOW)


def test_take_write_and_close(engine: Engine, keyring: Keyring) -> None:
    handoff_id = request(engine, keyring)
    with transaction(engine) as session:
        assert handoffs.record_inbound(session, CONVERSATION, "antes", False, keyring.keys, NOW).live is False
        handoffs.take(session, handoff_id, 7, NOW)
    with transaction(engine) as session, pytest.raises(handoffs.HandoffTaken):
        handoffs.take(session, handoff_id, 8, NOW)  # another agent
    with transaction(engine) as session:
        handoffs.take(session, handoff_id, 8, NOW, override=True)  # a supervisor
        handoffs.take(session, handoff_id, 7, NOW, override=True)
        seen = handoffs.record_inbound(session, CONVERSATION, "me tienen encerrada", True, keyring.keys, NOW)
        assert seen == handoffs.InboundResult(live=True)
        handoffs.record_outbound(session, handoff_id, 7, "¿Estás a salvo?", keyring.keys, NOW)
    with transaction(engine) as session:
        messages = list(session.scalars(select(HandoffMessage).order_by(HandoffMessage.id)))
        assert [(m.inbound, m.danger) for m in messages] == [(True, True), (False, False)]
        assert [crypto.unseal_text(keyring.private_key, m.sealed_body) for m in messages] == [
            "me tienen encerrada",
            "¿Estás a salvo?",
        ]
        assert all(b"encerrada" not in m.sealed_body for m in messages)
        closed = handoffs.close(session, handoff_id, "returned", NOW)
        assert closed.reply_sealed is None and closed.state == "closed"
    with transaction(engine) as session, pytest.raises(handoffs.HandoffNotFound):
        handoffs.record_outbound(session, handoff_id, 7, "tarde", keyring.keys, NOW)
    with transaction(engine) as session:  # a new request after closing is a new hand-off
        assert handoffs.record_inbound(session, CONVERSATION, "hola", False, keyring.keys, NOW).live is False
    assert request(engine, keyring) != handoff_id


def test_an_idle_handoff_is_found_and_its_person_told_once(engine: Engine, keyring: Keyring) -> None:
    handoff_id = request(engine, keyring)
    with transaction(engine) as session:
        handoffs.take(session, handoff_id, 1, NOW)
    with transaction(engine) as session:
        assert handoffs.idle_live(session, NOW + timedelta(minutes=49)) == []
        idle = handoffs.idle_live(session, NOW + timedelta(minutes=51))
        assert [h.id for h in idle] == [handoff_id]
        handoffs.close(session, handoff_id, "idle", NOW, person_told=False)
    with transaction(engine) as session:
        assert handoffs.record_inbound(session, CONVERSATION, "hola", False, keyring.keys, NOW).notice is True
    with transaction(engine) as session:
        assert handoffs.record_inbound(session, CONVERSATION, "hola", False, keyring.keys, NOW).notice is False


def test_waiting_requests_lapse_and_closed_ones_are_purged(engine: Engine, keyring: Keyring) -> None:
    old = request(engine, keyring, conversation="a" * 32)
    with transaction(engine) as session:
        assert handoffs.expire_waiting(session, NOW + timedelta(hours=23)) == 0
        assert handoffs.expire_waiting(session, NOW + timedelta(hours=25)) == 1
        assert session.get(Handoff, old).close_reason == "expired"  # type: ignore[union-attr]
    later = NOW + timedelta(hours=25)
    with transaction(engine) as session:
        assert handoffs.purge_closed(session, later + timedelta(days=29)) == 0
        assert handoffs.purge_closed(session, later + timedelta(days=31), dry_run=True) == 1
        assert handoffs.purge_closed(session, later + timedelta(days=31)) == 1
        assert session.get(Handoff, old) is None


def test_erasure_deletes_every_handoff_of_the_conversation(engine: Engine, keyring: Keyring) -> None:
    handoff_id = request(engine, keyring)
    other = request(engine, keyring, conversation="b" * 32)
    with transaction(engine) as session:
        handoffs.take(session, handoff_id, 1, NOW)
        handoffs.record_inbound(session, CONVERSATION, "algo", False, keyring.keys, NOW)
    with transaction(engine) as session:
        assert handoffs.forget_conversation(session, CONVERSATION) == 1
    with transaction(engine) as session:
        assert session.get(Handoff, handoff_id) is None and session.get(Handoff, other) is not None
        assert session.scalar(select(func.count()).select_from(HandoffMessage)) == 0
