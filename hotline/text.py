"""Normalising text as people type it on phones, so that "auxiliooo me tienen encerada"
and "Auxilio, me tienen encerrada" look alike to the classifier."""

from __future__ import annotations

import re
import unicodedata

# SMS abbreviations of the corridor, as whole tokens -> their spelled-out word.
ABBREVIATIONS = {
    "q": "que",
    "k": "que",
    "ke": "que",
    "qe": "que",
    "xq": "porque",
    "pq": "porque",
    "porq": "porque",
    "xk": "porque",
    "tb": "tambien",
    "tmb": "tambien",
    "tmbn": "tambien",
    "dnd": "donde",
    "xfa": "por favor",
    "porfa": "por favor",
    "pls": "por favor",
    "plis": "por favor",
    "x": "por",
    "d": "de",
    "m": "me",
    "t": "te",
    "n": "en",
    "cel": "celular",
    "msj": "mensaje",
    "info": "informacion",
    "toy": "estoy",
    "tamos": "estamos",
    "pa": "para",
    "pal": "para el",
    "sta": "esta",
    "stoy": "estoy",
    "aki": "aqui",
    "aca": "aqui",
    "ai": "ahi",
    "ntp": "no te preocupes",
    "bn": "bien",
    "tqm": "te quiero mucho",
    "grax": "gracias",
    "grs": "gracias",
    "hla": "hola",
    "ola": "hola",
    "weno": "bueno",
    "wenas": "buenas",
    "nd": "nada",
    "ps": "pues",
    "pz": "pues",
    "pss": "pues",
    "bno": "bueno",
    "bnas": "buenas",
    "bns": "buenas",
    "wena": "buena",
    "grcs": "gracias",
    "gracia": "gracias",
    "vdd": "verdad",
    "slds": "saludos",
    "ntc": "no te creas",
}

_REPEATS = re.compile(r"([a-zñ])\1{2,}")
# Laughter as typed: jajaja, jajsjs, jsjsjs, jejeje, ajajaj, hahaha, xD, xdd, lol: all one word.
_LAUGHTER = re.compile(r"^(?:a?(?:j[aeiosj]|[aeio]j){2,}[a-z]?|(?:ha){2,}h?|x+d+|lo+l|ja+|je+)$")
LAUGH = "jaja"
# Voice-to-text and fast thumbs glue words with punctuation ("saber.que", "hola,buenas").
_GLUE = re.compile(r"(?<=[^\W\d_])[.,;:!?¿¡]+(?=[^\W\d_])")


def folded_words(text: str) -> str:
    """A whole message as commands are compared: lower case, no accents, single spaces,
    no punctuation around it ("¡Modo  Discreto!" -> "modo discreto")."""
    return " ".join(fold_accents(text.lower()).split()).strip(" .!¡?¿")


def fold_accents(text: str) -> str:
    """Remove accents but keep ñ, which changes the word (año/ano)."""
    text = text.replace("ñ", "\0").replace("Ñ", "\1")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("\0", "ñ").replace("\1", "ñ")


def normalize_token(token: str) -> str:
    """One token as the classifier should see it: lower case, unaccented, no stutter,
    laughter as one word; words glued by punctuation come apart (the result may hold
    several words, separated by spaces)."""
    words = []
    for word in _GLUE.split(fold_accents(token.lower())):
        word = _REPEATS.sub(r"\1\1", word)
        if len(word) > 1 and _LAUGHTER.match(word) and word not in ("ja", "je", "jo", "lo", "ha"):
            word = LAUGH
        words.append(ABBREVIATIONS.get(word, word))
    return " ".join(words)


# Emoji people answer with, read as the word they stand for (the tokenizer drops emoji).
# Skin tones and gender signs that follow an emoji are separate characters and ignored.
EMOJI_WORDS = {
    "👍": "si",
    "👌": "ok",
    "🆗": "ok",
    "🤝": "ok",
    "✅": "si",
    "✔": "si",
    "☑": "si",
    "🙏": "gracias",
    "🙌": "gracias",
    "❤": "gracias",
    "♥": "gracias",
    "💕": "gracias",
    "💖": "gracias",
    "💗": "gracias",
    "💙": "gracias",
    "💚": "gracias",
    "💛": "gracias",
    "💜": "gracias",
    "🧡": "gracias",
    "🤍": "gracias",
    "👋": "hola",
    "🙋": "hola",
    "👎": "no",
    "❌": "no",
    "✖": "no",
    "🚫": "no",
    "⛔": "no",
    "🙅": "no",
    "🆘": "auxilio",
    "🚨": "auxilio",
    "😭": "llorando",
    "😢": "triste",
    "😞": "triste",
    "😔": "triste",
    "😟": "triste",
    "🙁": "triste",
    "☹": "triste",
    "🥺": "triste",
    "😂": LAUGH,
    "🤣": LAUGH,
    "😆": LAUGH,
    "😅": LAUGH,
    "😹": LAUGH,
    "😊": "sonrisa",
    "🙂": "sonrisa",
    "☺": "sonrisa",
    "😀": "sonrisa",
    "😃": "sonrisa",
    "😄": "sonrisa",
    "😁": "sonrisa",
    "🤖": "robot",
    "🤔": "duda",
    "🤗": "abrazo",
    "👏": "bravo",
    "😡": "enojo",
    "😠": "enojo",
    "🤬": "enojo",
}


FLAG = "bandera"
OTHER_EMOJI = "emoji"
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)  # two of them make a country's flag
_JOINER = "\u200d"  # joins emoji into one (🙋 + joiner + ♀ is one picture)


def emoji_words(text: str) -> list[str]:
    """The words for the emoji in text, in order: a known one's word, "bandera" for a
    country flag, "emoji" for any other picture (so an emoji-only message is never empty)."""
    words = []
    previous = ""
    half_flag = False
    for ch in text:
        if ord(ch) in _REGIONAL_INDICATORS:
            if not half_flag:
                words.append(FLAG)
            half_flag = not half_flag
        elif ch in EMOJI_WORDS:
            words.append(EMOJI_WORDS[ch])
        elif unicodedata.category(ch) == "So" and previous != _JOINER:
            words.append(OTHER_EMOJI)
        if ord(ch) not in _REGIONAL_INDICATORS:
            half_flag = False
        previous = ch
    return words


def is_emoji_only(token: str) -> bool:
    """A token of emoji, skin tones and joiners only (no letter, digit or punctuation)."""
    return not any(ch.isalnum() for ch in token) and all(
        unicodedata.category(ch) in ("So", "Sk", "Mn", "Cf") for ch in token
    )


def without_control(text: str) -> str:
    """The text without control characters (NUL, bell...: a phone or a form never means
    them), keeping line breaks and tabs."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


COMMAND_SLASHES = "/\uff0f"  # "/" and the full-width solidus some keyboards type


def _invisible(ch: str) -> bool:
    """Spaces of any script, line breaks, control and format characters (zero-width space,
    joiners, BOM, direction marks): nothing a person sees before the first letter."""
    return ch.isspace() or unicodedata.category(ch) in ("Zs", "Zl", "Zp", "Cc", "Cf")


def neutralise_command(text: str) -> str:
    """Text Rasa can never read as an intent command ("/restart", "/delete_my_data{...}"):
    when the first visible character is a slash, the invisible characters and slashes before
    the first word go. Rasa strips whitespace itself before looking for the slash, so a
    leading newline or no-break space must not hide one. Other text is left as it is."""
    start = 0
    while start < len(text) and _invisible(text[start]):
        start += 1
    if start == len(text) or text[start] not in COMMAND_SLASHES:
        return text
    while start < len(text) and (_invisible(text[start]) or text[start] in COMMAND_SLASHES):
        start += 1
    return text[start:]
