"""Splitting a reply into messages a phone shows well: on word boundaries, by SMS segments
(GSM-7 or UCS-2, counted by hotline.sms) or by a channel's character limit.

A part never cuts a word unless the word alone is longer than a part; whitespace between
parts is dropped, whitespace inside a part (the line breaks of a menu) is kept. The caller
folds the text first (`hotline.sms.to_gsm7`) when it wants GSM-7 parts: this module counts
what it is given, so an emoji left in the text makes its part UCS-2 (67 characters a segment).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hotline.sms import segment_count

TWILIO_MAX_CHARS = 1600  # Twilio refuses a longer Body (error 21617)
SMS_MAX_SEGMENTS = 2  # a reply part costs the person at most two SMS

_TOKEN = re.compile(r"\S+\s*")


def split_sms(text: str, max_segments: int = SMS_MAX_SEGMENTS) -> list[str]:
    """Parts of text that each need at most max_segments SMS segments, cut between words."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    return _split(text, lambda part: segment_count(part) <= max_segments and len(part) <= TWILIO_MAX_CHARS)


def split_text(text: str, max_chars: int = TWILIO_MAX_CHARS) -> list[str]:
    """Parts of text of at most max_chars characters each, cut between words (WhatsApp)."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    return _split(text, lambda part: len(part) <= max_chars)


def _split(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Greedy: add words to the current part while it fits (a longer prefix never needs
    fewer segments, so the first word that does not fit closes the part)."""
    parts: list[str] = []
    current = ""
    for token in _TOKEN.findall(text.strip()):
        if fits((current + token).rstrip()):
            current += token
            continue
        if current.strip():
            parts.append(current.rstrip())
        word, space = token.rstrip(), token[len(token.rstrip()) :]
        if fits(word):
            current = token
            continue
        pieces = _hard_split(word, fits)
        parts.extend(pieces[:-1])
        current = pieces[-1] + space
    if current.strip():
        parts.append(current.rstrip())
    return parts


def _hard_split(word: str, fits: Callable[[str], bool]) -> list[str]:
    """A word longer than a part (a long link), cut at the longest prefix that fits."""
    pieces: list[str] = []
    while word:
        low, high = 1, len(word)  # the longest fitting prefix, by bisection (fits is monotonic)
        while low < high:
            middle = (low + high + 1) // 2
            if fits(word[:middle]):
                low = middle
            else:
                high = middle - 1
        pieces.append(word[:low])
        word = word[low:]
    return pieces
