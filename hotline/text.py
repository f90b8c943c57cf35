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
