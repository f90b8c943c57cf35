"""End to end: messages in English, Portuguese, French and Haitian Creole through the real
Rasa server (the trained model with the language models), the action server and the
gateway: answered in that language with the numbers of the person's country, the language
kept for the conversation and shown to staff, Spanish unchanged, a report form not lost."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from hotline.content import load_facts
from hotline.sms import sms_segments
from reports.db import make_engine
from scripts.stack import Stack
from tests.conftest import Conversation
from tests.test_e2e_gateway import new_phone, pseudonym, sms_form, twilio_post, twiml_messages
from tests.test_e2e_handoff import waiting_handoff
from tests.test_language import FIXTURE, contract_examples

pytestmark = pytest.mark.rasa

SPANGLISH = [t for group in ("spanglish", "sms", "regional", "one_word") for t in FIXTURE["spanish"][group]]
# Each answer says, in its language, that the line answers in Spanish.
SPANISH_IN = {"en": "in Spanish", "pt": "em espanhol", "fr": "en espagnol", "ht": "an panyòl"}


def fact(fact_id: str) -> str:
    value = load_facts()[fact_id].value
    assert value
    return value


def parse(client: httpx.Client, stack: Stack, text: str) -> dict[str, object]:
    answer = client.post(f"{stack.rasa_url}/model/parse", params=stack.rasa_params, json={"text": text})
    assert answer.status_code == 200, answer.text
    parsed: dict[str, object] = answer.json()
    return parsed


def intent_of(parsed: dict[str, object]) -> str:
    intent = parsed["intent"]
    assert isinstance(intent, dict)
    return str(intent["name"])


def languages_in(parsed: dict[str, object]) -> list[str]:
    entities = parsed["entities"]
    assert isinstance(entities, list)
    return [e["value"] for e in entities if e["entity"] == "language"]


def slots(conversation: Conversation) -> dict[str, object]:
    found = conversation.tracker()["slots"]
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "Hello, I need help, I don't speak Spanish"),
        ("pt", "Olá, preciso de ajuda, não falo espanhol"),
        ("fr", "Bonjour, j'ai besoin d'aide, je ne parle pas espagnol"),
        ("ht", "Bonjou, mwen bezwen èd, mwen pa pale panyòl"),
    ],
)
def test_each_language_gets_the_answer_in_it_then_the_country_numbers(
    client: httpx.Client, stack: Stack, language: str, text: str
) -> None:
    conversation = Conversation(client, stack, f"language-{language}-{secrets.token_hex(8)}")  # no country yet
    first = conversation.say(text)
    assert len(first) == 1 and SPANISH_IN[language] in first[0], first
    for fact_id in ("mx.emergency", "gt.police", "ni.police_emergency", "pa.police"):  # the region's short list
        assert fact(fact_id) in first[0], (fact_id, first)
    assert "PERSONA" in first[0] and sms_segments(first[0]) <= 2
    assert slots(conversation)["language"] == language
    localized = conversation.say("honduras")  # the country alone, as asked: the answer again, for Honduras
    assert SPANISH_IN[language] in localized[0], localized
    assert fact("hn.trafficking_145") in localized[0] and fact("gt.police") not in localized[0]


def test_a_known_country_gives_its_numbers_at_once(conversation: Conversation) -> None:
    conversation.say("estoy en mexico")
    replies = conversation.say("Preciso de ajuda, estou em Tapachula com minha família")
    assert SPANISH_IN["pt"] in replies[0] and fact("mx.trafficking_hotline") in replies[0], replies


def test_spanish_edge_cases_and_the_contract_stay_spanish(client: httpx.Client, stack: Stack) -> None:
    texts = SPANGLISH + contract_examples()
    assert len(texts) > 100
    taken = [(t, intent_of(p)) for t in texts if (p := parse(client, stack, t)) and languages_in(p)]
    assert taken == []
    assert all(intent_of(parse(client, stack, t)) != "other_language" for t in texts)


def test_spanish_after_another_language_is_answered_in_spanish_and_a_switch_follows(
    conversation: Conversation,
) -> None:
    conversation.say("Hello, I need help, I don't speak Spanish")
    greeting = conversation.say("hola")
    assert "MENU" in greeting[0] and greeting[0].startswith("Hola"), greeting  # Spanish, as always
    assert slots(conversation)["language"] == "en"  # kept: staff still learn the person writes English
    menu = conversation.say("menu")
    assert all(f"\n{n} " in menu[0] for n in range(1, 10))
    french = conversation.say("Excusez-moi, je ne comprends pas, vous parlez français?")
    assert SPANISH_IN["fr"] in french[0], french
    assert slots(conversation)["language"] == "fr"


def test_an_emergency_in_english_keeps_the_emergency_answer(client: httpx.Client, stack: Stack) -> None:
    """Safety first: an emergency the classifier is sure of stays `emergency`, with the language."""
    parsed = parse(client, stack, "they took my passport and wont let me leave")
    assert intent_of(parsed) == "emergency" and languages_in(parsed) == ["en"]


def test_another_language_inside_the_report_form_is_answered_kept_and_the_form_goes_on(
    conversation: Conversation,
) -> None:
    conversation.say("quiero denunciar")
    asked_more = conversation.say("Obligan a niños a pedir dinero en el parque")
    english = conversation.say("Excuse me, what does this question mean? I only speak English")
    assert SPANISH_IN["en"] in english[0], english
    assert english[-1] == asked_more[-1]  # the same question again: the form is where it was
    loop = conversation.tracker()["active_loop"]
    assert isinstance(loop, dict) and loop["name"] == "report_form"
    report_what = str(slots(conversation)["report_what"])
    assert "niños" in report_what and "I only speak English" in report_what  # nothing lost
    following = conversation.say("listo")
    assert following[-1] != asked_more[-1]  # Spanish answers go on with the form
    cancelled = conversation.say("cancelar")
    assert any("No guardamos nada" in r for r in cancelled), cancelled


@pytest.fixture
def engine(stack: Stack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    try:
        yield made
    finally:
        made.dispose()


def test_by_sms_in_creole_then_persona_staff_see_the_language(
    client: httpx.Client, stack: Stack, engine: Engine
) -> None:
    phone = new_phone()
    first = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "mwen bezwen èd tanpri")))
    assert SPANISH_IN["ht"] in first[0] and "panyòl" in first[0], first  # è and ò are GSM-7: kept
    assert all(sms_segments(m) <= 2 for m in first)
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "PERSONA")))
    handoff = waiting_handoff(engine, pseudonym(stack, "sms", phone))
    assert (handoff.reason, handoff.language) == ("asked", "ht")
