"""Report codes as people type them: `TRT-7K4M-Q2XH-5`, `trt7k4mq2xh5`, `trt 7k4m q2xh`.

The code is TRT, 8 Crockford base32 symbols and an optional check symbol. Crockford's
alphabet leaves out I, L, O and U; when typed, I and L read as 1 and O as 0.
"""

from __future__ import annotations

import re
import secrets

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


def check_symbol(body: str) -> str:
    """Luhn mod 32 over Crockford symbols: catches every single wrong symbol and every swap
    of two neighbouring symbols but one pair (0 and Z): the usual typing errors on a keypad."""
    factor, total, n = 2, 0, len(CROCKFORD)
    for symbol in reversed(body):
        addend = factor * CROCKFORD.index(symbol)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return CROCKFORD[(n - total % n) % n]


def new_code() -> str:
    """A fresh code: 8 random symbols (40 bits from the OS's CSPRNG) and the check symbol."""
    body = "".join(secrets.choice(CROCKFORD) for _ in range(8))
    return f"TRT-{body[:4]}-{body[4:]}-{check_symbol(body)}"


def code_body(code: str) -> str:
    """The 8 symbols that identify a report (what is hashed), from a normalised code."""
    return code.replace("-", "")[3:11]


def check_code(raw: str) -> str:
    """Why a typed code is usable or not: "ok", "no_check" (8 symbols, no check symbol:
    still looked up), "typo" (the check symbol does not match) or "invalid" (not a code)."""
    code = normalize_code(raw)
    if code is None:
        return "invalid"
    symbols = code.replace("-", "")[3:]
    if len(symbols) == 8:
        return "no_check"
    return "ok" if check_symbol(symbols[:8]) == symbols[8] else "typo"
