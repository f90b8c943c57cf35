"""Reading phone Spanish: normalising, countries and report codes."""

import pytest

from hotline.countries import find_countries
from hotline.report_codes import find_codes, normalize_code
from hotline.text import emoji_words, fold_accents, is_emoji_only, normalize_token


@pytest.mark.parametrize(
    ("token", "normalised"),
    [
        ("Auxiliooo", "auxilioo"),
        ("xfa", "por favor"),
        ("q", "que"),
        ("DND", "donde"),
        ("Encerráda", "encerrada"),
        ("año", "año"),
        ("jajaja", "jaja"),
        ("JSJSJS", "jaja"),
        ("ajajaj", "jaja"),
        ("xDDD", "jaja"),
        ("jaula", "jaula"),  # a word, not a laugh
        ("hija", "hija"),
        ("saber.qué", "saber que"),  # voice-to-text glue
        ("hola,buenas", "hola buenas"),
        ("trt-7k4m", "trt-7k4m"),  # a report code keeps its dash
        ("1.500", "1.500"),
    ],
)
def test_normalize_token(token: str, normalised: str) -> None:
    assert normalize_token(token) == normalised


def test_emoji_words() -> None:
    assert emoji_words("👍 ok 🙏") == ["si", "gracias"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("👍🏻👍🏻", ["si", "si"]),  # skin tones are not words
        ("🙋\u200d♀️", ["hola"]),  # joined pictures are one
        ("❤️", ["gracias"]),
        ("😂🤣", ["jaja", "jaja"]),
        ("🇭🇳🇲🇽", ["bandera", "bandera"]),
        ("🔥", ["emoji"]),  # an unknown picture is still read
        ("+ ... ???", []),
    ],
)
def test_emoji_words_read_every_picture(text: str, words: list[str]) -> None:
    assert emoji_words(text) == words


def test_only_pictures_are_emoji_only() -> None:
    assert is_emoji_only("👍🏻") and is_emoji_only("🙋\u200d♀️") and is_emoji_only("🇭🇳")
    assert not is_emoji_only("+") and not is_emoji_only("...") and not is_emoji_only("ok👍")


def test_fold_accents_keeps_enye() -> None:
    assert fold_accents("Niña, año, acción") == "Niña, año, accion"


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("soy de honduras", ["HN"]),
        ("vivo en guate", ["GT"]),
        ("soy catracho", ["HN"]),
        ("me voy pal norte", []),
        ("me voy a el norte", ["US"]),
        ("estoy en Tapachula, Chiapas", ["MX", "MX"]),
        ("soy de guatemla", ["GT"]),  # one typo forgiven
        ("nicaragüa", ["NI"]),
        ("vivo en san pedro sula", ["HN"]),
        ("EEUU o Canadá", ["US", "CA"]),
        ("ni idea", []),  # "ni" is not Nicaragua
        ("q temas manejan", []),  # "temas" is not "texas"
        ("gracias a dios", []),
    ],
)
def test_find_countries(text: str, codes: list[str]) -> None:
    assert [m.code for m in find_countries(text)] == codes


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("TRT-7K4M-Q2XH-5", "TRT-7K4M-Q2XH-5"),
        ("trt7k4mq2xh5", "TRT-7K4M-Q2XH-5"),
        ("trt 7k4m q2xh", "TRT-7K4M-Q2XH"),
        ("tengo el codigo trt 7k4m q2xh y ya", "TRT-7K4M-Q2XH"),
        ("trt 7k4m q2xh 5", "TRT-7K4M-Q2XH-5"),
        ("trt-ok4m-q2xh-5", "TRT-0K4M-Q2XH-5"),  # O read as 0
        ("TRT-7K4M-Q2XH-L", "TRT-7K4M-Q2XH-1"),  # L read as 1
    ],
)
def test_find_codes(text: str, code: str) -> None:
    assert [c for _, _, c in find_codes(text)] == [code]


@pytest.mark.parametrize("text", ["trt 7k4m q2", "abc", "TRT-UUUU-UUUU", "mi codigo es 7k4m q2xh", "trtxyz"])
def test_not_codes(text: str) -> None:
    assert find_codes(text) == []
    assert normalize_code(text) is None
