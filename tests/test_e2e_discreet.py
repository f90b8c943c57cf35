"""Discreet mode end to end, through signed SMS (Twilio's webhook), Telegram updates and the
console's relay, over the real gateway, Rasa and action servers: once a person asks for it,
nothing the bot, the gateway or staff send has a sensitive word; the emergency answer keeps
its numbers; a report form in progress goes on; NORMAL switches it off; "salir" on Telegram
erases the chat."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import Engine, select

from channels.core import gateway_text
from hotline.discreet import sensitive_words_in
from hotline.sms import to_gsm7
from reports.db import make_engine, transaction
from reports.models import DiscreetConversation
from scripts.stack import Stack
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import FakeTwilio
from tests.test_e2e_gateway import (
    new_phone,
    post_telegram,
    pseudonym,
    sent_to,
    sms_form,
    telegram_update,
    twilio_post,
    twiml_messages,
    user_turns,
    wait_for,
)
from tests.test_e2e_handoff import Staff, waiting_handoff
from tests.test_e2e_handoff import sent_to as sms_sent_to

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def db(stack: Stack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


@pytest.fixture
def staff_member(stack: Stack, db: Engine) -> Iterator[Callable[[str], Staff]]:
    made: list[Staff] = []

    def make(username: str) -> Staff:
        made.append(Staff(stack, db, username, "agent"))
        return made[-1]

    yield make
    for staff in made:
        staff.http.close()


def say(client: httpx.Client, stack: Stack, phone: str, text: str) -> list[str]:
    return twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, text)))


def neutral(messages: list[str]) -> bool:
    return all(sensitive_words_in(m) == [] for m in messages)


def numbers(text: str) -> list[str]:
    return re.findall(r"\d[\d\- ]*\d|\d", text)


def is_discreet(engine: Engine, conversation: str) -> bool:
    with transaction(engine) as session:
        return (
            session.scalar(select(DiscreetConversation).where(DiscreetConversation.pseudonym == conversation))
            is not None
        )


def test_discreet_mode_on_every_answer_neutral_emergency_keeps_numbers_normal_again(
    client: httpx.Client, stack: Stack, db: Engine
) -> None:
    phone, other = new_phone(), new_phone()
    greeting = say(client, stack, phone, "hola")
    assert not neutral(greeting)  # the normal greeting names the subject
    normal_alarm = say(client, stack, other, "auxilio me tienen encerrada")

    switched = say(client, stack, phone, "me revisan el celular")
    assert any("modo discreto" in m for m in switched), switched
    assert is_discreet(db, pseudonym(stack, "sms", phone))
    said: list[str] = []
    for text in ("hola", "menu", "2", "mas", "mas", "que es la trata", "gracias", "quiero denunciar"):
        said += say(client, stack, phone, text)
    assert said and neutral(said), [m for m in said if not neutral([m])]
    assert any("\n2 Riesgos y engaños" in m for m in said)  # the menu's neutral label
    assert any("borra este chat" in m for m in said)  # the reminder
    alarm = say(client, stack, phone, "auxilio me tienen encerrada")
    assert neutral(alarm)
    assert numbers(alarm[0]) == numbers(normal_alarm[0]) and numbers(alarm[0])  # every number still there

    back = say(client, stack, phone, "CANCELAR")
    assert neutral(back)
    assert any("modo normal" in m for m in say(client, stack, phone, "NORMAL"))
    assert not is_discreet(db, pseudonym(stack, "sms", phone))
    assert not neutral(say(client, stack, phone, "hola"))


def test_discreet_mode_inside_the_report_form_keeps_the_form_and_its_answers(
    client: httpx.Client, stack: Stack
) -> None:
    phone = new_phone()
    assert any("1/9" in m for m in say(client, stack, phone, "quiero denunciar"))
    switched = say(client, stack, phone, "DISCRETO")
    assert any("modo discreto" in m for m in switched)
    assert any("1/9" in m for m in switched) and neutral(switched)  # the same question, asked again
    second = say(client, stack, phone, "en la finca tienen a tres muchachos sin pagarles")
    assert any("¿Algo mas?" in m for m in second) and neutral(second), second
    watched = say(client, stack, phone, "el encargado nos revisa los celulares en la noche")
    assert any("modo discreto" in m for m in watched)
    assert any("¿Algo mas?" in m for m in watched), watched  # the same question: the form goes on
    assert any("2/9" in m for m in say(client, stack, phone, "LISTO"))
    tracker = client.get(
        f"{stack.rasa_url}/conversations/{pseudonym(stack, 'sms', phone)}/tracker", params=stack.rasa_params
    ).json()
    what = str(tracker["slots"]["report_what"])
    assert "finca" in what and "encargado" in what  # what was said about the phone is part of it
    assert "DISCRETO" not in what  # the command alone is not
    assert tracker["active_loop"].get("name") == "report_form"


def test_staff_cannot_send_sensitive_words_and_the_notices_are_neutral(
    client: httpx.Client,
    stack: Stack,
    db: Engine,
    fake_twilio: FakeTwilio,
    staff_member: Callable[[str], Staff],
) -> None:
    phone = new_phone()
    conversation = pseudonym(stack, "sms", phone)
    say(client, stack, phone, "discreto")
    asked = say(client, stack, phone, "quiero hablar con una persona")
    assert asked and neutral(asked)
    handoff = waiting_handoff(db, conversation)
    staff = staff_member("rocio")
    page = staff.http.get(f"/conversaciones/{handoff.id}")
    assert 'id="discreet"' in page.text  # staff see the mode before writing
    assert staff.post(f"/conversaciones/{handoff.id}/atender").status_code == 303
    notices = sms_sent_to(fake_twilio, phone)
    assert notices and neutral(notices) and notices[0] != to_gsm7(gateway_text("handoff_started"))
    refused = staff.post(f"/conversaciones/{handoff.id}/enviar", text="¿Quieres poner la denuncia a la policía?")
    assert "modo discreto" in refused.text and "denuncia, policia" in refused.text, refused.text
    assert "poner la denuncia" in refused.text  # the text stays in the box
    assert sms_sent_to(fake_twilio, phone) == notices  # nothing sent
    sent = staff.post(f"/conversaciones/{handoff.id}/enviar", text="¿Estás a salvo? Escríbeme cuando puedas.")
    assert sent.status_code == 303
    assert sms_sent_to(fake_twilio, phone)[-1].startswith("¿Estas a salvo?")
    assert staff.post(f"/conversaciones/{handoff.id}/devolver").status_code == 303
    assert neutral(sms_sent_to(fake_twilio, phone))


def test_salir_on_telegram_erases_the_chat_and_the_conversation(
    client: httpx.Client, stack: Stack, fake_telegram: FakeTelegram
) -> None:
    chat = 626262000 + secrets.randbelow(10**5)
    update = telegram_update("text_accents.json", chat, 930001)
    update["message"]["text"] = "me revisan el celular"
    assert post_telegram(client, stack, update) == 200
    wait_for(lambda: any("modo discreto" in m["text"] for m in sent_to(fake_telegram, chat)))
    exit_update = telegram_update("text_accents.json", chat, 930002)
    exit_update["message"]["text"] = "Salir"
    exit_update["message"]["message_id"] = 31
    assert post_telegram(client, stack, exit_update) == 200
    wait_for(lambda: {"30", "31"} <= {m["message_id"] for m in sent_to(fake_telegram, chat, "deleteMessage")})
    wait_for(lambda: any("borramos" in m["text"] for m in sent_to(fake_telegram, chat)))
    assert neutral([m["text"] for m in sent_to(fake_telegram, chat)])
    assert user_turns(client, stack, pseudonym(stack, "telegram", str(chat))) <= 1
