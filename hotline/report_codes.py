"""Report codes as people type them: `TRT-7K4M-Q2XH-5`, `trt7k4mq2xh5`, `trt 7k4m q2xh`.

The code is TRT, 8 Crockford base32 symbols and an optional check symbol. Crockford's
alphabet leaves out I, L, O and U; when typed, I and L read as 1 and O as 0.
"""

from __future__ import annotations

import re

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSIONS = str.maketrans({"I": "1", "L": "1", "O": "0"})
# TRT, then 8 symbols (in any grouping of separators), then an optional check symbol.
# A check symbol after a space is taken only when it is a digit or ends the text, so
# "trt 7k4m q2xh y ya" does not read "y" as the check symbol.
CODE_PATTERN = re.compile(
    r"(?<![0-9A-Za-z])[Tt][Rr][Tt][\s\-\.]*"
    r"(?:[0-9A-Za-z][\s\-\.]*){7}[0-9A-Za-z]"
    r"(?:[\-\.]?[0-9A-Za-z]|\s+[0-9]|\s+[0-9A-Za-z](?=\s*$))?"
    r"(?![0-9A-Za-z])"
)


def find_codes(text: str) -> list[tuple[int, int, str]]:
    """Every report code in text: (start, end, normalised code)."""
    found = []
    for match in CODE_PATTERN.finditer(text):
        value = normalize_code(match.group(0))
        if value:
            found.append((match.start(), match.end(), value))
    return found


def normalize_code(raw: str) -> str | None:
    """`TRT-XXXX-XXXX-C` (or `TRT-XXXX-XXXX` without check symbol), or None if not a code."""
    symbols = re.sub(r"[\s\-\.]", "", raw).upper()
    if not symbols.startswith("TRT"):
        return None
    body = symbols[3:].translate(_CONFUSIONS)
    if len(body) not in (8, 9) or any(ch not in CROCKFORD for ch in body):
        return None
    code = f"TRT-{body[:4]}-{body[4:8]}"
    return f"{code}-{body[8]}" if len(body) == 9 else code
