"""End to end: a tipster files an anonymous report, comes back with the code, adds to it,
reads the status and erases the conversation, through the real Rasa server, the real
action server and real databases (SQLite here; PostgreSQL in test_e2e_postgres.py)."""

from __future__ import annotations

import email
import email.policy
import secrets
from email.message import EmailMessage

import httpx
import pytest

from hotline.content import load_facts
from hotline.report_codes import CROCKFORD, check_code, check_symbol
from hotline.sms import sms_segments
from reports.crypto import seal_contact
from reports.keys import load_keys
from reports.models import Report
from reports.service import change_status, leave_message_for_tipster
from scripts.stack import Stack
from tests.anonymity import ADDITION, PHONE, PLACE, REPORT_TEXT, leaks, pseudonym, scan, scripted_secrets
from tests.conftest import Conversation, Mailbox
from tests.reporting import file_by_chat, opened, report_ids, reports_session, stack_settings

pytestmark = pytest.mark.rasa


def random_code() -> str:
    body = "".join(secrets.choice(CROCKFORD) for _ in range(8))
    return f"TRT-{body[:4]}-{body[4:]}-{check_symbol(body)}"


def new_report_id(stack: Stack, before: list[str]) -> str:
    after = [i for i in report_ids(stack) if i not in before]
    assert len(after) == 1, after
    return after[0]


def test_a_report_is_filed_sealed_and_shown_once(conversation: Conversation, stack: Stack) -> None:
    before = report_ids(stack)
    code, replies = file_by_chat(conversation, "En el bar tienen encerradas a unas muchachas de Honduras")
    assert check_code(code) == "ok"
    assert any("1/9" in r for r in replies[0])  # the form starts at question 1
    summary = replies[-2]
    assert "Guatemala" in summary[0] and "bar La Estrella" in summary[0]
    for turn in replies:
        assert all(sms_segments(r) <= 2 for r in turn), turn
    report = opened(stack, new_report_id(stack, before))
    assert "encerradas a unas muchachas" in report["what"]
    assert report["country"] == "GT" and report["kind"] == "sexual" and report["minors"] is True
    assert report["priority"] in ("urgent", "high")  # minors + place known + recent
    assert "minors" in report["triage_reasons"]


def test_follow_up_shows_status_and_staff_message_and_takes_additions(
    conversation: Conversation, stack: Stack, client: object
) -> None:
    before = report_ids(stack)
    code, _ = file_by_chat(conversation, "En la finca de café no les pagan y les quitaron los papeles")
    report_id = new_report_id(stack, before)
    with reports_session(stack) as session:
        change_status(session, report_id, "in_review")
        leave_message_for_tipster(session, report_id, "Gracias, ya avisamos a la fiscalía.")

    later = Conversation(conversation.client, stack, conversation.sender + "-later")
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")  # look-alikes forgiven
    status = later.say(f"seguimiento {typed}")
    assert any("EN REVISIÓN" in r for r in status), status
    assert any("ya avisamos a la fiscalía" in r for r in status), status
    later.say("Hoy llegaron 3 personas más a la finca")
    done = later.say("listo")
    assert any("mismo" in r for r in done), done
    report = opened(stack, report_id)
    assert report["additions"] == ["Hoy llegaron 3 personas más a la finca"]


def test_wrong_codes_get_one_answer_and_five_tries_per_hour(conversation: Conversation) -> None:
    conversation.say("quiero dar seguimiento a mi denuncia")
    misses = [conversation.say(random_code()) for _ in range(5)]
    assert all(m == misses[0] for m in misses), misses  # the same answer every time
    assert "No encontramos" in misses[0][0]
    limited = conversation.say("seguimiento " + random_code())
    assert any("demasiados intentos" in r.lower() for r in limited), limited


def test_a_typo_in_the_code_is_caught_before_any_lookup(conversation: Conversation) -> None:
    code = random_code()
    wrong = code[:-1] + next(s for s in CROCKFORD if s != code[-1])
    replies = conversation.say(f"tengo el codigo {wrong}")
    assert any("tiene un error" in r for r in replies), replies
    other_format = conversation.say("ABC-123")
    assert any("no parece un código" in r for r in other_format), other_format


def test_cancel_keeps_nothing(conversation: Conversation, stack: Stack) -> None:
    before = report_ids(stack)
    conversation.say("quiero denunciar")
    conversation.say("Algo que luego no quiero contar")
    conversation.say("listo")
    replies = conversation.say("cancelar")
    assert any("No guardamos nada" in r for r in replies), replies
    assert report_ids(stack) == before
    slots = conversation.tracker()["slots"]
    assert isinstance(slots, dict)
    assert slots["report_what"] is None and conversation.tracker()["active_loop"] in ({}, None)
    assert "no quiero contar" not in str(conversation.tracker())  # not even in the history


def test_skip_and_correct_before_sending(conversation: Conversation, stack: Stack) -> None:
    before = report_ids(stack)
    conversation.say("quiero denunciar")
    conversation.say("Obligan a niños a pedir dinero en el parque")
    conversation.say("listo")
    for answer in ("mexico", "saltar", "no sé", "saltar", "si", "3", "saltar", "no"):
        conversation.say(answer)
    corrected = conversation.say("3")  # question 3: the place
    assert any("3/9" in r for r in corrected), corrected
    summary = conversation.say("parque central de Tapachula")
    assert "Tapachula" in summary[0]
    conversation.say("si")
    report = opened(stack, new_report_id(stack, before))
    assert report["place"] == "parque central de Tapachula"
    assert report["when"] is None and report["danger_now"] is None
    assert report["kind"] == "begging" and report["country"] == "MX"


def test_an_emergency_inside_the_form_is_answered_first_and_kept(conversation: Conversation, stack: Stack) -> None:
    before = report_ids(stack)
    conversation.say("estoy en guatemala")
    conversation.say("quiero denunciar")
    replies = conversation.say("auxilio nos tienen encerradas en un cuarto y nos pegan")
    police = load_facts()["gt.police"].value
    assert police and police in replies[0], replies  # the emergency answer comes first
    assert "¿Algo más?" in replies[-1]  # then the form goes on with what was written kept
    conversation.say("listo")
    for answer in ("guatemala", "saltar", "ahorita", "saltar", "no", "1", "si", "no"):
        conversation.say(answer)
    filed = conversation.say("si")
    assert any("URGENTE" in r for r in filed), filed
    report = opened(stack, new_report_id(stack, before))
    assert "nos tienen encerradas" in report["what"]
    assert report["priority"] == "urgent"


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert('x')</script><b>bar</b> tienen a 3 chicas",
        "'; DROP TABLE reports; -- los tienen en la bodega",
        "😡🙏 nos tienen 🔒 en la finca 🌽",
        "Борис y 王 y محمد los traen desde Guatemala",
    ],
)
def test_markup_sql_emoji_and_mixed_scripts_are_kept_as_text(
    conversation: Conversation, stack: Stack, text: str
) -> None:
    before = report_ids(stack)
    file_by_chat(conversation, text)
    assert opened(stack, new_report_id(stack, before))["what"] == text


def test_a_very_long_message_is_cut_with_notice_and_nothing_else_lost(conversation: Conversation, stack: Stack) -> None:
    before = report_ids(stack)
    conversation.say("quiero denunciar")
    long_text = ("Los tienen trabajando día y noche sin pagarles. " * 120)[:6000]
    replies = conversation.say(long_text)
    assert any("4000" in r for r in replies), replies
    conversation.say("y también les quitaron los pasaportes")
    conversation.say("listo")
    for answer in ("mexico", "saltar", "saltar", "saltar", "no", "2", "no", "no"):
        conversation.say(answer)
    conversation.say("si")
    what = opened(stack, new_report_id(stack, before))["what"]
    assert what.startswith(long_text[:4000]) and "les quitaron los pasaportes" in what


def test_contact_is_sealed_only_with_consent_and_erasure_unlinks_it(conversation: Conversation, stack: Stack) -> None:
    keys = load_keys(stack_settings(stack))
    reply_to = {"reply_to": seal_contact(keys.public_key, "sms", "+50255501234"), "channel": "sms"}
    before = report_ids(stack)
    answers = ("guatemala", "saltar", "saltar", "saltar", "no", "2", "no", "si")
    file_by_chat(conversation, "Mi patrón me quitó el pasaporte", answers=answers, metadata=reply_to)
    report_id = new_report_id(stack, before)
    assert opened(stack, report_id)["contact"] == ("sms", "+50255501234")

    asked = conversation.say("borra mi conversacion")
    assert any("SI o NO" in r for r in asked), asked
    done = conversation.say("si")
    assert any("borramos esta conversación" in r for r in done), done
    assert any("Telegram" in r for r in done)  # how to delete the chat on the phone
    assert opened(stack, report_id)["contact"] is None
    events = conversation.tracker()["events"]
    assert isinstance(events, list)
    assert not [e for e in events if e.get("event") in ("user", "bot")], events  # nothing left of the chat


def test_no_contact_without_consent(conversation: Conversation, stack: Stack) -> None:
    keys = load_keys(stack_settings(stack))
    metadata = {"reply_to": seal_contact(keys.public_key, "whatsapp", "whatsapp:+50588887777")}
    before = report_ids(stack)
    file_by_chat(conversation, "Vi a unos niños vendiendo en la calle de noche", metadata=metadata)
    assert opened(stack, new_report_id(stack, before))["contact"] is None


def run_scripted_conversation(client: httpx.Client, stack: Stack) -> tuple[str, str]:
    """A tipster on SMS files a report agreeing to be contacted, then follows up and
    adds to it. Returns the case code and the report id."""
    keys = load_keys(stack_settings(stack))
    metadata = {"reply_to": seal_contact(keys.public_key, "sms", PHONE), "channel": "sms"}
    tipster = Conversation(client, stack, pseudonym("sms", PHONE))
    before = report_ids(stack)
    tipster.say("hola", metadata)
    answers = ("guatemala", PLACE, "ayer", "4", "no", "1", "si", "si")
    code, _ = file_by_chat(tipster, REPORT_TEXT, answers=answers, metadata=metadata)
    tipster.say(f"seguimiento {code}", metadata)
    tipster.say(ADDITION, metadata)
    tipster.say("listo", metadata)
    return code, new_report_id(stack, before)


def assert_nothing_in_clear(client: httpx.Client, stack: Stack) -> None:
    code, report_id = run_scripted_conversation(client, stack)
    assert scan(stack, scripted_secrets(code)) == []
    # Even decrypted, the tracker store kept the conversation's state, not its words.
    url = f"{stack.rasa_url}/conversations/{pseudonym('sms', PHONE)}/tracker"
    tracker = client.get(url, params=stack.rasa_params).text
    assert leaks({"decrypted tracker": tracker.encode()}, scripted_secrets(code)) == []
    # The scan could have failed: everything is there, sealed, for whoever holds the key.
    report = opened(stack, report_id)
    assert report["what"] == REPORT_TEXT and report["place"] == PLACE
    assert report["additions"] == [ADDITION] and report["contact"] == ("sms", PHONE)


def test_anonymity_scan_finds_nothing_in_clear(client: httpx.Client, stack: Stack) -> None:
    """A whole scripted conversation with a known number and report text; then the
    databases' files, the tracker store and the logs are searched for them in clear."""
    assert_nothing_in_clear(client, stack)


def test_an_urgent_report_notifies_staff_by_email_without_its_text(
    conversation: Conversation, stack: Stack, mailbox: Mailbox
) -> None:
    before_mail = len(mailbox.messages)
    before = report_ids(stack)
    answers = ("mexico", "rancho El Mezquite", "ahorita", "6", "si", "2", "si", "no")
    code, _ = file_by_chat(conversation, "Tienen encerrados a seis jornaleros y les pegan", answers=answers)
    report = opened(stack, new_report_id(stack, before))
    assert report["priority"] == "urgent"
    new_mail = mailbox.wait_for(before_mail + 1)[before_mail:]
    assert len(new_mail) == 1, new_mail  # sent after the tipster got the code
    message = email.message_from_string(new_mail[0], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    mail = f"{message['Subject']}\n{message['To']}\n{message.get_content()}"
    assert report["hash_prefix"] in mail and "duty@hotline.test" in mail
    (link,) = [word for word in mail.split() if report["id"] in word]
    assert link.startswith("http://127.0.0.1:") and link.endswith(f"/casos/{report['id']}")  # the console's case page
    for secret in ("jornaleros", "El Mezquite", code, code.replace("-", "")):
        assert secret not in mail


def test_a_normal_report_sends_no_notification(conversation: Conversation, stack: Stack) -> None:
    """No alert is queued at filing (the outbox row is what the sender and the retry job
    work from), so none can go out later."""
    before = report_ids(stack)
    answers = ("honduras", "saltar", "hace un año", "saltar", "no", "8", "no", "no")
    file_by_chat(conversation, "Hace tiempo vi un anuncio de trabajo raro", answers=answers)
    report_id = new_report_id(stack, before)
    with reports_session(stack) as session:
        report = session.get(Report, report_id)
        assert report is not None and report.priority != "urgent"
        assert report.notifications == []


def test_empty_and_control_characters_inside_the_form_are_asked_again(conversation: Conversation) -> None:
    conversation.say("quiero denunciar")
    for text in ("", "   ", "\u0000\u0007"):
        replies = conversation.say(text)
        assert replies and "1/9" in replies[-1], (text, replies)  # the question again, politely
    assert "¿Algo más?" in conversation.say("Los encierran en una bodega")[-1]


def abandon_form(conversation: Conversation) -> None:
    """What a session expiry does to a form left halfway: the form closes, its slots stay
    (Rasa carries slots over sessions)."""
    url = f"{conversation.stack.rasa_url}/conversations/{conversation.sender}/tracker/events"
    events = [{"event": "active_loop", "name": None}]
    response = conversation.client.post(url, params=conversation.stack.rasa_params, json=events)
    assert response.status_code == 200, response.text


def test_a_report_left_halfway_does_not_fill_the_next_one(conversation: Conversation) -> None:
    conversation.say("quiero denunciar")
    conversation.say("Un texto de un borrador abandonado")
    conversation.say("listo")
    conversation.say("mexico")
    abandon_form(conversation)
    started = conversation.say("quiero denunciar")
    assert "1/9" in started[-1], started  # from the first question, not from the old draft


def test_a_follow_up_left_halfway_needs_the_code_again(conversation: Conversation, stack: Stack) -> None:
    code, _ = file_by_chat(Conversation(conversation.client, stack, conversation.sender + "-filer"), "Algo que vi")
    assert any("RECIBIDA" in r for r in conversation.say(f"seguimiento {code}"))
    abandon_form(conversation)
    again = conversation.say("quiero ver mi denuncia")
    assert "TRT-XXXX-XXXX-X" in again[-1], again  # asks for the code, no report opened
