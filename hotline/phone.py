"""Phone numbers as people type them, reduced to digits that can be compared.

People paste numbers from recruiters' messages in every form: "55 1234 5678",
"(502) 2411-9191", "+52 1 55 1234 5678", "0052...", "01 800 5533 000", "1-888-373-7888",
"*765", "9-1-1". The line compares them with the numbers of content/facts.yml, so both
sides are reduced by the same rules (Python 3.10-compatible: Rasa's component uses it too):

1. A candidate is a run of digits joined by spaces, dashes, dots or parentheses, with an
   optional leading "+", "*" or "#"; an extension ("ext. 5086") is dropped.
2. An international prefix ("+", "00" or "011") is followed by a calling code of the region
   (table below); without one, a run that starts with a calling code and has the right
   length for that country is read the same way ("52 55 1234 5678").
3. Trunk prefixes are dropped: Mexico's old "01", "044", "045" and the mobile "1" after +52;
   North America's leading "1"; a leading "0" of numbers of 8 digits or more (Belize
   "0-800...").
4. What is left is the national number. Short numbers (2 to 6 digits: 90, 911, 110, 089,
   *765, 233733) are compared as they are, the star kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Calling code -> (ISO codes, lengths of a national number there).
CALLING_CODES = {
    "52": (("MX",), (10,)),
    "501": (("BZ",), (7,)),
    "502": (("GT",), (8,)),
    "503": (("SV",), (8,)),
    "504": (("HN",), (8,)),
    "505": (("NI",), (8,)),
    "506": (("CR",), (8,)),
    "507": (("PA",), (7, 8)),
    "1": (("US", "CA", "DO"), (10,)),
}
SHORT_DIGITS = (2, 6)  # a short number: emergency (Belize 90), hotline or text short codes
MIN_DIGITS, MAX_DIGITS = 7, 15  # a full number (E.164 allows 15 digits with the calling code)
NATIONAL_LENGTHS = (7, 8, 10)  # a full national number of the region, prefixes dropped

# A number as typed: optional +, * or #, digits joined by spaces, dashes, dots or brackets.
_RUN = re.compile(r"(?<![\w*#+])[+*#]?\(?\d(?:[\d\-. ()\t]*\d)?\)?(?!\w)")
_EXTENSION_BEFORE = re.compile(r"(?:ext\.?|extensi[oó]n|x)\s*$", re.IGNORECASE)
# Digits and letters joined by dashes or dots ("55-ABC-1234", "1-800-FLOWERS").
_WITH_LETTERS = re.compile(r"(?<![\w-])(?=[\w.-]*\d)(?=[\w.-]*[^\W\d_])\w+(?:[-.]\w+)+(?![\w-])")


@dataclass(frozen=True)
class Candidate:
    """One number found in a message: its digits as typed (international prefix and star
    kept), and why it cannot be a phone number, if it cannot."""

    text: str
    digits: str
    problem: str | None = None  # "letters", "too_long", "too_short", "length"

    @property
    def usable(self) -> bool:
        return self.problem is None

    def tail(self, count: int = 4) -> str:
        """The last digits, which is all an answer repeats of a number not on the list."""
        return self.digits.lstrip("+*#")[-count:]


def _digits(text: str) -> str:
    """Digits only, keeping a leading "+", "*" or "#" (an international or service prefix)."""
    stripped = text.strip().lstrip("(")
    prefix = stripped[0] if stripped[:1] in ("+", "*", "#") else ""
    return prefix + re.sub(r"\D", "", stripped)


def _problem(digits: str) -> str | None:
    bare = digits.lstrip("+*#")
    if len(bare) > MAX_DIGITS:
        return "too_long"
    if len(bare) < SHORT_DIGITS[0] or SHORT_DIGITS[1] < len(bare) < MIN_DIGITS:
        return "too_short"
    if not keys(digits):
        return "length"
    return None


def find_numbers(text: str, ignore: tuple[tuple[int, int], ...] = ()) -> list[Candidate]:
    """Every number-like run in a message, in order, each with its problem if it cannot be a
    phone number: digits and letters mixed ("55-ABC-1234"), too many digits, too few (a single
    digit is kept as too short; two digits are a short number, like Belize's 90: the caller
    decides whether a short run, "tengo 25 años", was meant as a number). Spans in `ignore`
    (a case code, for instance) are skipped."""
    found: list[tuple[int, Candidate]] = []
    taken: list[tuple[int, int]] = list(ignore)
    for match in _WITH_LETTERS.finditer(text):
        word = match.group(0)
        phone_like = sum(c.isdigit() for c in word) >= 4 and sum(c.isalnum() for c in word) >= 7
        if phone_like and not _overlaps(match.span(), taken):
            found.append((match.start(), Candidate(word, _digits(word), "letters")))
            taken.append(match.span())
    for match in _RUN.finditer(text):
        if _overlaps(match.span(), taken) or _EXTENSION_BEFORE.search(text[: match.start()]):
            continue
        raw = match.group(0).strip(" .-\t")
        digits = _digits(raw)
        found.append((match.start(), Candidate(raw, digits, _problem(digits))))
    return [candidate for _, candidate in sorted(found, key=lambda item: item[0])]


def _overlaps(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def has_long_number(text: str, min_digits: int = MIN_DIGITS) -> bool:
    """Whether a message carries a number of at least `min_digits` digits (a full phone
    number, not a year or a price)."""
    return any(len(c.digits.lstrip("+*#")) >= min_digits for c in find_numbers(text) if c.problem != "letters")


def _national(bare: str, code: str) -> str | None:
    """The national number after calling code `code`, if its length fits that country."""
    lengths = CALLING_CODES[code][1]
    rest = bare[len(code) :]
    if code == "52" and len(rest) == 11 and rest.startswith("1"):
        rest = rest[1:]  # Mexico's old mobile "1" after +52
    return rest if len(rest) in lengths else None


def keys(digits: str) -> frozenset[tuple[str | None, str]]:
    """What a number may mean: (calling code or None, national number) pairs. Two numbers
    are the same when they share national digits and their calling codes do not contradict
    (see same_number). No pair: not a number of any length the region uses."""
    if digits.startswith(("*", "#")):
        bare = digits[1:]
        short = SHORT_DIGITS[0] <= len(bare) <= SHORT_DIGITS[1]
        return frozenset({(None, digits[0] + bare)}) if short else frozenset()
    international = digits.startswith("+")
    bare = digits.lstrip("+")
    if not international:
        for prefix in ("011", "00"):
            if bare.startswith(prefix) and len(bare) - len(prefix) >= MIN_DIGITS:
                bare, international = bare[len(prefix) :], True
                break
    found: set[tuple[str | None, str]] = set()
    for code in CALLING_CODES:
        national = _national(bare, code) if bare.startswith(code) else None
        if national:
            found.add((code, national))
    if international:
        region = any(bare.startswith(code) for code in CALLING_CODES if code != "1")
        if not found and not region and MIN_DIGITS <= len(bare) <= MAX_DIGITS:
            found.add(("?", bare))  # a country outside the region: compared as a whole
        return frozenset(found)
    if SHORT_DIGITS[0] <= len(bare) <= SHORT_DIGITS[1]:
        found.add((None, bare))
    found |= {(None, national) for national in _without_trunk(bare) if len(national) in NATIONAL_LENGTHS}
    return frozenset(found)


def _without_trunk(bare: str) -> list[str]:
    """The number as typed and without each trunk prefix the region used ("01 800...")."""
    forms = [bare]
    for prefix in ("044", "045", "01"):
        if bare.startswith(prefix) and len(bare) - len(prefix) == 10:
            forms.append(bare[len(prefix) :])
    if len(bare) == 11 and bare.startswith("1"):
        forms.append(bare[1:])
    if len(bare) >= 8 and bare.startswith("0"):
        forms.append(bare[1:])
    return forms


def same_number(typed: frozenset[tuple[str | None, str]], known: frozenset[tuple[str | None, str]]) -> bool:
    """Whether two sets of keys name one number: the same national digits, and calling codes
    that agree when both sides give one."""
    for code_a, national_a in typed:
        for code_b, national_b in known:
            if national_a == national_b and (code_a is None or code_b is None or code_a == code_b):
                return True
    return False


def calling_code_of(country: str | None) -> str | None:
    """The calling code of an ISO country of the region, if it is one."""
    for code, (countries, _) in CALLING_CODES.items():
        if country in countries:
            return code
    return None


def fact_numbers(value: str) -> list[str]:
    """The numbers one fact's value lists ("1-888-373-7888 / 233733"), as digits."""
    numbers = []
    for candidate in find_numbers(value):
        if candidate.usable:
            numbers.append(candidate.digits)
    return numbers


def fact_keys(digits: str, country: str | None) -> frozenset[tuple[str | None, str]]:
    """The keys of a number of the fact sheet: a full number written without its calling
    code belongs to the fact's country (so "+503 2411 9191" is not Guatemala's 2411-9191)."""
    code = calling_code_of(country)
    return frozenset(
        (code, national) if found is None and code and len(national) >= MIN_DIGITS else (found, national)
        for found, national in keys(digits)
    )
