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
}

_REPEATS = re.compile(r"([a-zñ])\1{2,}")


def fold_accents(text: str) -> str:
    """Remove accents but keep ñ, which changes the word (año/ano)."""
    text = text.replace("ñ", "\0").replace("Ñ", "\1")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("\0", "ñ").replace("\1", "ñ")


def normalize_token(token: str) -> str:
    """One token as the classifier should see it: lower case, unaccented, no stutter."""
    token = fold_accents(token.lower())
    token = _REPEATS.sub(r"\1\1", token)
    return ABBREVIATIONS.get(token, token)


# Emoji people answer with, read as the word they stand for (the tokenizer drops emoji).
EMOJI_WORDS = {
    "👍": "si",
    "👌": "ok",
    "✅": "si",
    "🙏": "gracias",
    "🙌": "gracias",
    "❤": "gracias",
    "👋": "hola",
    "👎": "no",
    "❌": "no",
    "🆘": "auxilio",
    "🚨": "auxilio",
    "😭": "llorando",
    "😢": "triste",
}


def emoji_words(text: str) -> list[str]:
    """The words for the known emoji in text, in order."""
    return [word for ch in text for emoji, word in EMOJI_WORDS.items() if ch == emoji[0]]


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
