"""End to end: the real Rasa server and action server, conversing over HTTP (REST webhook)."""

from __future__ import annotations

import httpx
import pytest

from hotline.content import load_facts
from hotline.sms import sms_segments
from scripts.stack import Stack
from tests.conftest import Conversation, log_text

pytestmark = pytest.mark.rasa


def fact(fact_id: str) -> str:
    value = load_facts()[fact_id].value
    assert value
    return value


def assert_fits_sms(replies: list[str]) -> None:
    assert replies, "the bot must always answer"
    for reply in replies:
        assert reply.strip()
        assert sms_segments(reply) <= 2, reply


def test_menu_by_digit_and_country_given_late(conversation: Conversation) -> None:
    greeting = conversation.say("hola")
    assert "MENU" in greeting[0]
    menu = conversation.say("menu")
    assert all(f"\n{n} " in menu[0] for n in range(1, 10))
    asked = conversation.say("8")
    assert "país" in asked[0].lower()
    localized = conversation.say("soy de honduras")
    assert fact("hn.trafficking_145") in localized[0]
    for replies in (greeting, menu, asked, localized):
        assert_fits_sms(replies)


def test_emergency_first_with_the_country_number(conversation: Conversation) -> None:
    conversation.say("estoy en guatemala")
    replies = conversation.say("auxilio me tienen encerrada")
    assert len(replies) == 2
    assert replies[0].find(fact("gt.police")) >= 0  # Guatemala: police 110, not 911
    assert "SI" in replies[1]
    assert_fits_sms(replies)


def test_emergency_without_country_lists_the_region(conversation: Conversation) -> None:
    replies = conversation.say("ayudenme por favor nos tienen encerrados en una bodega")
    first = replies[0]
    for fact_id in ("mx.emergency", "gt.police", "ni.police_emergency"):
        assert fact(fact_id) in first, fact_id
    assert_fits_sms(replies)


def test_emergency_interrupts_the_menu(conversation: Conversation) -> None:
    conversation.say("menu")
    replies = conversation.say("me quieren matar")
    assert fact("mx.emergency") in replies[0] or fact("gt.police") in replies[0]


def test_job_offer_checklist_runs_the_custom_action(conversation: Conversation) -> None:
    intro = conversation.say("me ofrecen chamba en cancun con todo pagado, es real?")
    assert "1/5" in intro[-1]
    for answer in ("si", "no", "no", "no"):
        conversation.say(answer)
    verdict = conversation.say("si")
    assert "ALTO" in verdict[0]
    assert "visa de turista" in verdict[0]  # the reasons come from the action
    assert_fits_sms(verdict)
    slots = conversation.tracker()["slots"]
    assert isinstance(slots, dict)
    assert slots["job_fee"] is None  # cleared for the next offer


@pytest.mark.parametrize(
    "text",
    [
        "",
        "    ",
        "a" * 5000,
        "hola " * 1000,
        "😀😀😀",
        "Привет, как дела?",
        "مرحبا",
        "hola\x00\x07\x1b[31m",
        "<script>alert('x')</script>",
        "'; DROP TABLE events; --",
    ],
    ids=["empty", "blank", "5000-chars", "5000-words", "emoji", "cyrillic", "arabic", "control", "html", "sql"],
)
def test_bad_input_gets_a_polite_short_answer(conversation: Conversation, text: str) -> None:
    replies = conversation.say(text)
    assert_fits_sms(replies)
    joined = " ".join(replies)
    assert "Traceback" not in joined and "Exception" not in joined
    assert "<script>" not in joined


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("AUXILIO", "emergency"),
        ("MENU", "help"),
        ("DENUNCIA", "report_case"),
        ("MAS", "more"),
        ("PERSONA", "human_handoff"),
        ("SI", "affirm"),
        ("NO", "deny"),
        ("7", "choose_option"),
        ("DISCRETO", "discreet_mode"),
        ("NORMAL", "normal_mode"),
        ("AVISO", "report_case"),  # discreet mode's word for DENUNCIA
        ("me revisan el celular", "discreet_mode"),
    ],
)
def test_the_words_the_bot_asks_for_are_understood(client: httpx.Client, stack: Stack, text: str, intent: str) -> None:
    """Answers tell people to type these words: each must reach its intent."""
    parsed = client.post(f"{stack.rasa_url}/model/parse", params=stack.rasa_params, json={"text": text}).json()
    assert parsed["intent"]["name"] == intent


def test_entities_are_normalised(client: httpx.Client, stack: Stack) -> None:
    parsed = client.post(
        f"{stack.rasa_url}/model/parse",
        params=stack.rasa_params,
        json={"text": "soy catracho, mi codigo es trt 7k4m q2xh 5"},
    ).json()
    values = {(e["entity"], e["value"]) for e in parsed["entities"]}
    assert ("country", "HN") in values
    assert ("report_code", "TRT-7K4M-Q2XH-5") in values


def test_long_conversations_are_bounded_and_keep_the_country(conversation: Conversation) -> None:
    conversation.say("soy de el salvador")
    for _ in range(60):
        conversation.say("gracias")
    tracker = conversation.tracker()
    events = tracker["events"]
    assert isinstance(events, list)
    starts = [i for i, e in enumerate(events) if e["event"] == "session_started"]
    assert len(starts) >= 2  # 60 turns passed the 200-event bound, so a new session began
    assert len(events) - starts[-1] <= 215  # what Rasa replays each turn stays bounded
    slots = tracker["slots"]
    assert isinstance(slots, dict) and slots["country"] == "SV"
    assert fact("sv.emergency") in conversation.say("auxilio")[0]


def test_message_text_is_not_logged_at_info_level(stack: Stack, conversation: Conversation) -> None:
    secret = "mi vecina se llama Zoraida Quintanilla"
    conversation.say(secret)
    assert "Zoraida" not in log_text(stack)
