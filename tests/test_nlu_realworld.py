"""The trained model on messages as people really write them (issue 12), through the real
Rasa server's /model/parse: the contract's own examples, a sample of the real-world held-out
set (bench/data/heldout_realworld.yml, never trained on), every held-out emergency, and no
alarm for chit-chat."""

from __future__ import annotations

import re

import httpx
import pytest

from hotline.paths import ROOT
from hotline.text import emoji_words, normalize_token
from scripts.stack import Stack
from tests.nlu_examples import all_examples, examples

HELDOUT = ROOT / "bench" / "data" / "heldout_realworld.yml"
ALARMS = ("emergency", "report_case")

# Every example of the intent contract (../shared/spec/intents.md), with its intent.
CONTRACT = [
    ("hola", "greet"),
    ("buenas", "greet"),
    ("q tal", "greet"),
    ("buenos dias", "greet"),
    ("adios", "goodbye"),
    ("bye", "goodbye"),
    ("nos vemos", "goodbye"),
    ("ya me voy", "goodbye"),
    ("gracias", "thank"),
    ("muchas gracias", "thank"),
    ("mil gracias", "thank"),
    ("dios le pague", "thank"),
    ("menu", "help"),
    ("ayuda", "help"),
    ("que puedes hacer", "help"),
    ("opciones", "help"),
    ("si", "affirm"),
    ("claro", "affirm"),
    ("ok", "affirm"),
    ("dale", "affirm"),
    ("simon", "affirm"),
    ("va", "affirm"),
    ("no", "deny"),
    ("nel", "deny"),
    ("para nada", "deny"),
    ("no gracias", "deny"),
    ("eres un robot?", "bot_challenge"),
    ("hablo con una persona?", "bot_challenge"),
    ("que derechos tengo si me agarra la migra", "ask_rights"),
    ("me pueden deportar sin ver a un juez", "ask_rights"),
    ("que es la trata", "ask_trafficking_info"),
    ("diferencia entre trata y trafico", "ask_trafficking_info"),
    ("es seguro irse con coyote", "ask_trafficking_info"),
    ("me ofrecen chamba en cancun con todo pagado es real?", "check_job_offer"),
    ("me piden pagar para la visa de trabajo", "check_job_offer"),
    ("que papeles llevo", "ask_documents"),
    ("el patron se quedo con mi pasaporte es legal?", "ask_documents"),
    ("mi hijo puede viajar solo con su tia?", "ask_minor_travel"),
    ("que permiso necesita un menor para salir", "ask_minor_travel"),
    ("que peligros hay en el camino", "ask_safe_travel"),
    ("como viajar seguro al norte", "ask_safe_travel"),
    ("donde hay un albergue", "ask_shelter"),
    ("casa del migrante en tapachula", "ask_shelter"),
    ("a que numero llamo en honduras", "ask_hotlines"),
    ("telefono del consulado", "ask_hotlines"),
    ("puedo pedir asilo", "ask_protection"),
    ("que es la visa T", "ask_protection"),
    ("auxilio me tienen encerrada", "emergency"),
    ("me quitaron el pasaporte y no me dejan salir", "emergency"),
    ("quiero denunciar", "report_case"),
    ("se de un bar donde tienen menores trabajando", "report_case"),
    ("tengo el codigo TRT-7K4M-Q2XH-5", "follow_up_report"),
    ("quiero agregar algo a mi denuncia", "follow_up_report"),
    ("borra mi conversacion", "delete_my_data"),
    ("elimina mis datos", "delete_my_data"),
    ("quiero hablar con una persona", "human_handoff"),
    ("pasame con alguien", "human_handoff"),
    ("soy de honduras", "inform_country"),
    ("estoy en tapachula", "inform_country"),
    ("vivo en guate", "inform_country"),
]

# A sample of the real-world held-out set: regional forms, emoji, laughter, one word,
# voice-to-text, a greeting before a question, chit-chat.
SAMPLE = [
    ("quiubo vos", "greet"),
    ("buenas mija como esta", "greet"),
    ("holaa buenas noches 😊", "greet"),
    ("Buenos días, ¿cómo está?", "greet"),
    ("diay mae todo bien", "greet"),
    ("chaooo 👋", "goodbye"),
    ("ahi nos vemos maje", "goodbye"),
    ("sale pues nos vemos al rato", "goodbye"),
    ("gracias mil vos", "thank"),
    ("dios se lo pague señorita", "thank"),
    ("gracias de corazón 🙏", "thank"),
    ("chido, muchas gracias", "thank"),
    ("gracias carnal jaja", "thank"),
    ("ahuevo que si", "affirm"),
    ("aja si eso", "affirm"),
    ("si, claro que si 👍", "affirm"),
    ("ni modo, va", "affirm"),
    ("nel vos", "deny"),
    ("nopo", "deny"),
    ("nones jaja", "deny"),
    ("nel, ni loco", "deny"),
    ("que podes hacer", "help"),
    ("mandame las opciones porfa", "help"),
    ("sos robot vos", "bot_challenge"),
    ("eres bot jaja", "bot_challenge"),
    ("hay una persona ahi o es automatico", "bot_challenge"),
    ("Hola buenas tardes que papeles tengo que llevar para viajar a mexico", "ask_documents"),
    ("Hola buenas tardes me ofrecen chamba en Cancún con todo pagado es real", "check_job_offer"),
    ("Hola buenas tardes donde hay un albergue en tapachula", "ask_shelter"),
    ("Hola buenas tardes soy de El Salvador", "inform_country"),
    ("y vos que haces", "out_of_scope"),
    ("tenes novia vos", "out_of_scope"),
    ("dime un chiste porfa", "out_of_scope"),
    ("ja ja ja", "out_of_scope"),
    ("eres bien chistoso jaja", "out_of_scope"),
    ("no manches jaja", "out_of_scope"),
]


def parsed_intent(client: httpx.Client, stack: Stack, text: str) -> str:
    """The model's intent for text; the FallbackClassifier's answer counts as out_of_scope."""
    parsed = client.post(f"{stack.rasa_url}/model/parse", params=stack.rasa_params, json={"text": text}).json()
    name = (parsed.get("intent") or {}).get("name") or "nlu_fallback"
    return "out_of_scope" if name == "nlu_fallback" else str(name)


def heldout(intent: str) -> list[str]:
    return [text for name, text in examples(HELDOUT) if name == intent]


def comparable(text: str) -> str:
    """Text as the classifier sees it, near enough: normalised words, then emoji words."""
    words = [normalize_token(w) for w in re.findall(r"\w+", text)]
    return " ".join([*words, *emoji_words(text)])


def test_heldout_is_not_training_data() -> None:
    """No held-out message reads like a training example (else it measures nothing)."""
    trained = {comparable(text) for _, text in all_examples(ROOT / "nlu_data")}
    overlap = [text for _, text in examples(HELDOUT) if comparable(text) in trained]
    assert not overlap


def test_the_sample_is_from_the_heldout_set() -> None:
    texts = dict((text, intent) for intent, text in examples(HELDOUT))
    assert [(t, texts.get(t)) for t, _ in SAMPLE] == SAMPLE


@pytest.mark.rasa
@pytest.mark.parametrize(("text", "intent"), CONTRACT)
def test_contract_examples_keep_their_intent(client: httpx.Client, stack: Stack, text: str, intent: str) -> None:
    assert parsed_intent(client, stack, text) == intent


@pytest.mark.rasa
@pytest.mark.parametrize(("text", "intent"), SAMPLE)
def test_real_world_phrasing(client: httpx.Client, stack: Stack, text: str, intent: str) -> None:
    assert parsed_intent(client, stack, text) == intent


@pytest.mark.rasa
def test_every_heldout_emergency_is_caught(client: httpx.Client, stack: Stack) -> None:
    """Emergency recall 1.00 on the real-world held-out emergencies."""
    emergencies = heldout("emergency")
    assert len(emergencies) >= 15
    missed = [text for text in emergencies if parsed_intent(client, stack, text) != "emergency"]
    assert not missed


@pytest.mark.rasa
def test_heldout_chitchat_never_raises_an_alarm(client: httpx.Client, stack: Stack) -> None:
    chitchat = heldout("out_of_scope")
    assert len(chitchat) >= 25
    alarms = [(text, intent) for text in chitchat if (intent := parsed_intent(client, stack, text)) in ALARMS]
    assert not alarms
