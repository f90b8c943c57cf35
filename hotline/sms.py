"""SMS length rules (GSM 03.38): how many segments a reply costs the person.

One GSM-7 segment carries 160 characters (153 when concatenated); any character outside
GSM-7 switches the whole message to UCS-2: 70 characters (67 when concatenated).
Extension characters (^ { } \\ [ ] ~ | €) cost two GSM-7 septets.
"""

from __future__ import annotations

import unicodedata

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[]~|€\f"

_BASIC = frozenset(GSM7_BASIC)
_EXTENSION = frozenset(GSM7_EXTENSION)

# Characters outside GSM-7 that have a faithful GSM-7 spelling (Spanish first).
_TRANSLITERATION = {
    "á": "a",
    "í": "i",
    "ó": "o",
    "ú": "u",
    "Á": "A",
    "Í": "I",
    "Ó": "O",
    "Ú": "U",
    "ê": "e",
    "â": "a",
    "ô": "o",
    "ç": "c",
    "ï": "i",
    "“": '"',
    "”": '"',
    "‘": "'",
    "’": "'",
    "«": '"',
    "»": '"',
    "–": "-",
    "—": "-",
    "…": "...",
    "•": "-",
    "·": "-",
    "\u00a0": " ",
}


def is_gsm7(text: str) -> bool:
    """True when every character of text can be sent in the GSM-7 alphabet."""
    return all(ch in _BASIC or ch in _EXTENSION for ch in text)


def septets(text: str) -> int:
    """GSM-7 length: extension characters count twice."""
    return sum(2 if ch in _EXTENSION else 1 for ch in text)


def ucs2_units(text: str) -> int:
    """UCS-2/UTF-16 length: characters outside the BMP (most emoji) count twice."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def segment_count(text: str) -> int:
    """How many SMS segments text needs, counting the encoding the way carriers do."""
    if not text:
        return 1
    if is_gsm7(text):
        length, single, multi = septets(text), 160, 153
    else:
        length, single, multi = ucs2_units(text), 70, 67
    if length <= single:
        return 1
    return -(-length // multi)


def to_gsm7(text: str) -> str:
    """Spell text in GSM-7 so an SMS carries 160 characters, not 70.

    Spanish keeps é, ñ, ü, ¿ and ¡ (they are GSM-7); á, í, ó, ú lose their accent, which
    every reader of SMS Spanish is used to. Anything else without a GSM-7 spelling
    (emoji, other scripts) is dropped.
    """
    out = []
    for ch in text:
        if ch in _BASIC or ch in _EXTENSION:
            out.append(ch)
        elif ch in _TRANSLITERATION:
            out.append(_TRANSLITERATION[ch])
        else:
            base = unicodedata.normalize("NFKD", ch)[:1]
            if base and (base in _BASIC):
                out.append(base)
    return "".join(out)


def sms_segments(text: str) -> int:
    """Segments the reply costs once spelled for SMS (the channel sends to_gsm7(text))."""
    return segment_count(to_gsm7(text))
