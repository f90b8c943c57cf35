"""The shelter answer end to end: signed SMS through the gateway, the real Rasa and action
servers (Twilio is the local fake). "albergue en Tapachula" gets the directory's Tapachula
entries, one SMS segment a page, MAS the next; a watched phone gets neutral names."""

from __future__ import annotations

import httpx
import pytest

from actions.shelters import pages, pick
from hotline.discreet import sensitive_words_in
from hotline.services import load_services
from hotline.sms import sms_segments, to_gsm7
from scripts.stack import Stack
from tests.test_e2e_verify import new_phone, sms

pytestmark = pytest.mark.rasa


def expected(city: str, discreet: bool = False) -> list[str]:
    return [to_gsm7(page) for page in pages(pick(load_services(), (city,), None, ()), discreet)]


def test_albergue_en_tapachula_gets_the_tapachula_entries_page_by_page(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    wanted = expected("Tapachula")
    assert len(wanted) > 1
    first = sms(client, stack, phone, "albergue en Tapachula")
    assert first == [wanted[0]], first
    assert "Albergue Diocesano Belén" in first[0] and "(dato por confirmar)" in first[0]
    shown = list(first)
    for _ in wanted[1:]:
        shown += sms(client, stack, phone, "MAS")
    assert shown == wanted
    assert all(sms_segments(page) == 1 for page in shown)
    assert shown[-1].endswith("Nunca vayas con desconocidos que te ofrecen donde dormir.")
    assert "No hay mas texto pendiente" in sms(client, stack, phone, "MAS")[0]


def test_no_place_asks_for_the_city_and_the_city_answers(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    asked = sms(client, stack, phone, "donde hay un albergue")
    assert asked[0].startswith(to_gsm7("¿En qué ciudad o país estás?")), asked
    assert sms(client, stack, phone, "estoy en tijuana") == [expected("Tijuana")[0]]


def test_a_watched_phone_gets_neutral_names(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    sms(client, stack, phone, "DISCRETO")
    replies = sms(client, stack, phone, "albergue en tijuana")
    assert replies == [expected("Tijuana", discreet=True)[0]], replies
    assert not sensitive_words_in(" ".join(replies))
    assert "Migrante" in expected("Tijuana")[0]  # the normal text would have shown it
