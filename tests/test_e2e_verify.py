"""The number check (VERIFICAR) end to end: signed SMS through the gateway, the real Rasa
and action servers; Twilio is the local fake. Then the number asked about is searched for,
in every written form, in the reports database, the tracker store, the slots and the logs."""

from __future__ import annotations

import secrets

import httpx
import pytest

from hotline.content import load_facts
from hotline.sms import to_gsm7
from scripts.stack import Stack
from tests.anonymity import leaks, log_bytes, stored_bytes
from tests.test_e2e_gateway import pseudonym, sms_form, twilio_post, twiml_messages

pytestmark = pytest.mark.rasa

# A number on no list, and every way it may be written or stored.
ASKED = "+52 1 55 8137 4629"
ASKED_FORMS = [
    "5581374629",
    "55 8137 4629",
    "55-8137-4629",
    "8137 4629",
    "8137-4629",
    "81374629",
    "525581374629",
    "5215581374629",
    "+52 1 55 8137 4629",
    "558 137 4629",
]


def sms(client: httpx.Client, stack: Stack, phone: str, text: str) -> list[str]:
    return twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, text)))


def new_phone() -> str:
    return f"+5025{secrets.randbelow(10**7):07d}"


def tracker(client: httpx.Client, stack: Stack, phone: str) -> dict[str, object]:
    url = f"{stack.rasa_url}/conversations/{pseudonym(stack, 'sms', phone)}/tracker"
    response = client.get(url, params=stack.rasa_params)
    assert response.status_code == 200
    data: dict[str, object] = response.json()
    return data


def test_an_official_number_is_confirmed_with_whose_source_date_and_mark(client: httpx.Client, stack: Stack) -> None:
    fact = load_facts()["mx.trafficking_hotline"]
    replies = sms(client, stack, new_phone(), "VERIFICAR 01 800 5533 000")
    assert len(replies) == 1, replies
    (reply,) = replies
    assert reply.startswith(f"{fact.value} SI esta en nuestra lista")
    assert to_gsm7(str(fact.raw["label_es"])) in reply
    assert "México" in reply and "Fuente oficial, 2023." in reply


def test_an_unknown_number_is_not_on_the_list_and_the_country_says_where_to_check(
    client: httpx.Client, stack: Stack
) -> None:
    phone = new_phone()
    sms(client, stack, phone, "soy de honduras")
    replies = sms(client, stack, phone, "me mandaron esto: trabajo en el campo, llame al 9988 7766. es real?")
    assert "termina en 7766 NO esta en nuestra lista" in replies[0], replies
    assert str(load_facts()["hn.ptte_web"].value) in replies[1]
    assert "9988" not in " ".join(replies)


def test_an_unverified_fact_is_not_confirmed(client: httpx.Client, stack: Stack) -> None:
    assert load_facts()["gt.mp_1570"].confidence == "unverified"
    replies = sms(client, stack, new_phone(), "verificar 1570")
    assert "NO esta en nuestra lista" in replies[0], replies
    assert "Dinos tu pais" in replies[1]  # no country yet: the general advice, and ask for it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VERIFICAR", "numero quieres revisar"),
        ("verifica 😀", "numero quieres revisar"),
        ("VERIFICAR 55-ABC-1234", "tiene letras"),
        ("VERIFICAR 551234567", "demasiadas o muy pocas cifras"),
    ],
)
def test_bad_input_gets_a_polite_answer(client: httpx.Client, stack: Stack, text: str, expected: str) -> None:
    replies = sms(client, stack, new_phone(), text)
    assert any(expected in r for r in replies), replies


def test_several_numbers_are_answered_each_up_to_the_limit(client: httpx.Client, stack: Stack) -> None:
    replies = sms(client, stack, new_phone(), "VERIFICAR 911, 2411-9191, 1-866-487-9243, 55 1111 2222")
    joined = "\n".join(replies)
    assert joined.count("SI esta en nuestra lista") == 3, replies
    assert "primeros 3 numeros" in joined and "2222" not in joined


def test_a_number_check_inside_the_report_form_keeps_the_form(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    sms(client, stack, phone, "quiero denunciar")
    question = sms(client, stack, phone, "VERIFICAR 2411 9191")
    assert "SI esta en nuestra lista" in question[0], question
    assert len(question) == 2  # then the form's question again
    state = tracker(client, stack, phone)
    active_loop = state["active_loop"]
    assert isinstance(active_loop, dict) and active_loop["name"] == "report_form"
    slots = state["slots"]
    assert isinstance(slots, dict) and slots["requested_slot"] == "report_what"
    assert not any("2411" in str(value) for value in slots.values())
    sms(client, stack, phone, "En la finca de la carretera tienen encerrados a unos muchachos")
    slots = tracker(client, stack, phone)["slots"]
    assert isinstance(slots, dict) and slots["requested_slot"] == "report_more"
    assert "finca" in str(slots["report_what"]) and "2411" not in str(slots["report_what"])


def test_the_number_asked_about_is_nowhere_in_clear(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    for text in (
        f"VERIFICAR {ASKED}",
        "este numero es de migracion? 55-8137-4629",
        "quiero denunciar",
        "verificar 0052 55 8137 4629",
        "cancelar",
    ):
        assert sms(client, stack, phone, text)
    slots = tracker(client, stack, phone)["slots"]
    assert isinstance(slots, dict)
    assert not any("8137" in str(value) for value in slots.values())
    places = {
        "reports database": stored_bytes(stack.database_url),
        "tracker store": stored_bytes(stack.tracker_url),
        "logs (rasa, actions, gateway)": log_bytes(stack),
    }
    assert leaks(places, ASKED_FORMS) == []
    assert b"rasa_sdk" in places["logs (rasa, actions, gateway)"]  # the action server's log was read


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("VERIFICAR", "verify_number"),
        ("verifica", "verify_number"),
        ("verificar numero", "verify_number"),
        ("es real este telefono", "verify_number"),
        ("este numero es de migracion? 55 1234 5678", "verify_number"),
        ("a que numero llamo en honduras", "ask_hotlines"),
        ("telefono del consulado", "ask_hotlines"),
        ("me ofrecen chamba en cancun con todo pagado es real?", "check_job_offer"),
        ("me piden pagar para la visa de trabajo", "check_job_offer"),
        ("auxilio me tienen encerrada, es real el numero 5512345678?", "emergency"),
    ],
)
def test_the_intent_contract_holds(client: httpx.Client, stack: Stack, text: str, intent: str) -> None:
    parsed = client.post(f"{stack.rasa_url}/model/parse", params=stack.rasa_params, json={"text": text}).json()
    assert parsed["intent"]["name"] == intent
