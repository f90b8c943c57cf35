"""Discreet mode without servers: every response rendered as Rasa would pick it in discreet
mode is free of the sensitive words, the emergency answer keeps every number, the gateway's
notices and its last guard are neutral, and the build refuses a twin it cannot make neutral."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from channels.base import DiscreetWords, Reply
from channels.core import discreet_reply, gateway_content, gateway_text, refuse_sensitive_staff_text
from hotline.build import build, discreet_twins, menu_response
from hotline.content import ContentError, Page, load_facts, render_all
from hotline.countries import country_names
from hotline.discreet import hide_sensitive, is_mode_command, sensitive_words_in
from hotline.paths import CONTENT
from hotline.sms import sms_segments

COUNTRIES: list[str | None] = [*country_names(), None]
# The list, and the like: a test of the word list itself.
MUST_BE_SENSITIVE = [
    "trata",
    "Trata de personas",
    "denuncia",
    "DENUNCIAR",
    "policía",
    "Policia",
    "explotación",
    "tráfico",
    "migración",
    "la migra",
    "migrantes",
    "coyote",
    "pollero",
    "víctima",
    "secuestro",
    "asilo",
]
NOT_SENSITIVE = ["contrata", "tratamiento", "retrato", "contrato", "ayuda", "emergencias", "aviso", "papeles"]


def matches(variation: dict[str, Any], slots: dict[str, Any]) -> bool:
    """Rasa 3.6's rule (rasa/core/nlg/generator.py): every condition equals the slot."""
    return all(slots.get(c["name"]) == c["value"] for c in variation.get("condition", []))


def picked(variations: list[dict[str, Any]], slots: dict[str, Any]) -> list[str]:
    """What Rasa may send: the matching conditional variations (it picks one at random among
    them), else the unconditioned ones."""
    conditional = [v["text"] for v in variations if "condition" in v and matches(v, slots)]
    return conditional or [v["text"] for v in variations if "condition" not in v]


@pytest.fixture(scope="module")
def responses() -> dict[str, list[dict[str, Any]]]:
    built: dict[str, list[dict[str, Any]]] = build(write=False)["responses"]
    return built


def digits(text: str) -> list[str]:
    return re.findall(r"\d[\d\- ]*\d|\d", text)


def test_the_word_list_catches_the_words_in_every_spelling_and_nothing_else() -> None:
    for word in MUST_BE_SENSITIVE:
        assert sensitive_words_in(f"Hola, {word} aquí"), word
    for word in NOT_SENSITIVE:
        assert sensitive_words_in(f"Hola, {word} aquí") == [], word


def test_every_response_in_discreet_mode_is_one_text_without_sensitive_words(
    responses: dict[str, list[dict[str, Any]]],
) -> None:
    scanned = 0
    for name, variations in responses.items():
        for country in COUNTRIES:
            texts = picked(variations, {"discreet": True, "country": country})
            assert len(set(texts)) == 1, f"{name} [{country}] picks at random among {texts}"
            assert sensitive_words_in(texts[0]) == [], f"{name} [{country}]: {texts[0]}"
            assert sms_segments(texts[0]) <= 2, f"{name} [{country}]"
            scanned += 1
    assert scanned == len(responses) * len(COUNTRIES) > 1000


def test_normal_mode_picks_exactly_what_it_picked_before(responses: dict[str, list[dict[str, Any]]]) -> None:
    rendered = render_all()
    for name, variants in rendered.items():
        for country in COUNTRIES:
            variant = country if country in variants else "default"
            texts = picked(responses[name], {"discreet": False, "country": country})
            assert texts == [variants[variant][0].text], f"{name} [{country}]"


def test_the_discreet_emergency_answer_still_gives_every_number(responses: dict[str, list[dict[str, Any]]]) -> None:
    for country in COUNTRIES:
        (normal,) = picked(responses["utter_emergency"], {"discreet": False, "country": country})
        (discreet,) = picked(responses["utter_emergency"], {"discreet": True, "country": country})
        assert digits(discreet) == digits(normal) and digits(normal), country
        assert "peligro" in discreet


def test_the_menu_shows_neutral_labels_in_discreet_mode(responses: dict[str, list[dict[str, Any]]]) -> None:
    (normal,) = picked(responses["utter_menu"], {"discreet": False, "country": None})
    (discreet,) = picked(responses["utter_menu"], {"discreet": True, "country": None})
    assert "Trata" in normal and "DENUNCIA" in normal
    assert [line[:2] for line in discreet.splitlines()[1:10]] == [f"{n} " for n in range(1, 10)]
    assert "AVISO" in discreet and sensitive_words_in(discreet) == []


def test_only_the_switching_answers_tell_the_gateway(responses: dict[str, list[dict[str, Any]]]) -> None:
    switching = {
        name: {v["custom"]["hotline"]["discreet"] for v in variations}
        for name, variations in responses.items()
        if any("discreet" in v.get("custom", {}).get("hotline", {}) for v in variations)
    }
    assert switching == {"utter_discreet_on": {True}, "utter_discreet_off": {False}, "utter_delete_my_data": {False}}
    for variations in (responses["utter_discreet_on"], responses["utter_discreet_off"]):
        assert all("custom" in v for v in variations)


def test_the_build_refuses_a_twin_it_cannot_make_neutral() -> None:
    facts = load_facts()
    menu = yaml.safe_load((CONTENT / "menu.yml").read_text(encoding="utf-8"))
    page = Page("utter_x", "default", 0, "Nos contaron de un secuestro en la frontera.")
    with pytest.raises(ContentError, match="secuestr"):
        discreet_twins({"utter_x": {"default": [page]}}, facts, menu)
    assert menu_response(menu)  # the real menu is fine


def test_the_gateway_notices_have_neutral_twins() -> None:
    for key, text in gateway_content()["texts"].items():
        twin = discreet_reply(Reply(text)).text
        assert sensitive_words_in(twin) == [], key
        assert twin.strip(), key
    photo = discreet_reply(Reply(gateway_text("photo_kept"))).text
    assert "denuncia" in gateway_text("photo_kept") and "aviso" in photo


def test_the_last_guard_rephrases_or_hides_any_text() -> None:
    staff = "Tu DENUNCIA llegó a la Policía y a Migración; la fiscalía pregunta por el pollero."
    guarded = hide_sensitive(staff)
    assert sensitive_words_in(guarded) == []
    assert "llegó" in guarded  # the person's accents stay where nothing was hidden
    accented_decomposed = "Víctima".replace("í", "i\u0301")  # í as i + combining accent
    assert sensitive_words_in(hide_sensitive(accented_decomposed)) == []
    menu = Reply("Responde con un número:\n1 Tus derechos\n2 Trata y tráfico", options=(("1", "a"), ("2", "b")))
    guarded_menu = discreet_reply(menu)
    assert [label for _, label in guarded_menu.options] == ["Tus derechos", "abuso grave y cruce pagado"]


def test_a_rephrased_word_starts_a_sentence_with_a_capital_and_only_then() -> None:
    said = hide_sensitive("Llama al 911. Línea contra la Trata: 800. Debes estar en EE.UU. por causa de la trata.")
    assert said == "Llama al 911. Línea de ayuda: 800. Debes estar en EE.UU. por causa de ese abuso."


def test_staff_texts_with_sensitive_words_are_refused_notices_are_not() -> None:
    with pytest.raises(DiscreetWords):
        refuse_sensitive_staff_text([Reply("¿Quieres poner la denuncia hoy?")])
    refuse_sensitive_staff_text([Reply("¿Estás a salvo? Escríbeme cuando puedas.")])
    refuse_sensitive_staff_text([Reply(gateway_text("handoff_started"))])  # swapped for its twin


def test_a_bare_mode_command_is_not_kept_as_report_text() -> None:
    assert is_mode_command("DISCRETO") and is_mode_command(" modo discreto! ") and is_mode_command("Normal")
    assert not is_mode_command("me revisan el celular y me pegan")
