"""Content: every answer renders, fits its SMS budget, and shows only sourced, showable facts.
The budget itself (one segment unless listed, the emergency rule, the share) is tested in
tests/test_sms_budget.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hotline.build import build
from hotline.content import (
    SHOWABLE,
    ContentError,
    Fact,
    load_facts,
    load_sms_budget,
    load_topics,
    page_name,
    render_all,
    render_template,
)
from hotline.countries import country_names
from hotline.paths import CONTENT, ROOT
from hotline.sms import sms_segments

# A phone-like run: 3+ digits, possibly split by spaces, dashes or dots ("800 5533 000").
PHONE_LIKE = re.compile(r"\*?\+?\d(?:[\d\s\-.]*\d){2,}")
RASA_VARIABLE = re.compile(r"\{[a-z_]+\}")


def all_pages() -> list[tuple[str, str, int, str, list[str]]]:
    return [
        (name, variant, page.index, page.text, page.facts)
        for name, variants in render_all().items()
        for variant, pages in variants.items()
        for page in pages
    ]


def test_facts_have_sources_dates_and_confidence() -> None:
    facts = load_facts()
    assert len(facts) > 50
    for fact in facts.values():
        raw = fact.raw
        assert fact.confidence in {"verified", "secondary", "unverified"}, fact.id
        assert raw.get("mark"), fact.id
        if fact.confidence != "unverified":
            assert raw.get("sources"), f"{fact.id} has no source"
            assert all(str(s).startswith("http") for s in raw["sources"]), fact.id
            assert "source_date" in raw, fact.id


def test_every_page_fits_its_sms_budget() -> None:
    """One segment, or two for the pages content/sms_budget.yml lists; never three."""
    pages, budget = all_pages(), load_sms_budget()
    assert len(pages) > 40
    too_long = [
        (n, v, i, sms_segments(t)) for n, v, i, t, _ in pages if sms_segments(t) > budget.allowed(page_name(n, i), v)
    ]
    assert too_long == []
    assert max(sms_segments(t) for *_, t, _ in pages) == 2  # the listed pages use their second segment


def notes(fact: Fact) -> list[str]:
    """What may follow a fact's value: its caveat, its phone confirmation note, or both."""
    return fact.notes() + fact.notes(confirmed=False)


def test_phone_numbers_come_only_from_facts_used_on_that_page() -> None:
    """A number in an answer must be the value (or in the caveat or phone confirmation note) of
    a fact the page names."""
    facts = load_facts()
    unsourced = []
    for name, variant, index, text, used in all_pages():
        allowed = {re.sub(r"\D", "", facts[f].value or "") for f in used}
        allowed |= {re.sub(r"\D", "", m) for f in used for m in PHONE_LIKE.findall("; ".join(notes(facts[f])))}
        for match in PHONE_LIKE.finditer(text):
            digits = re.sub(r"\D", "", match.group(0))
            if len(digits) >= 3 and not any(digits in a for a in allowed if a):
                unsourced.append((name, variant, index, match.group(0)))
    assert unsourced == []


def test_templates_type_no_digits_of_their_own() -> None:
    """Numbers are written only through {fact:ID}, never typed into a template."""
    typed = []
    for name, variants in load_topics().items():
        for variant, pages in variants.items():
            for page in pages:
                without_placeholders = re.sub(r"\{(fact|ref):[a-z0-9_.]+\}", "", page)
                typed += [(name, variant, m.group(0)) for m in PHONE_LIKE.finditer(without_placeholders)]
    assert typed == []


def test_unverified_facts_are_never_shown() -> None:
    unverified = [f for f in load_facts().values() if f.confidence not in SHOWABLE]
    assert unverified, "the fact sheet has unverified facts; the guard must be exercised"
    with pytest.raises(ContentError, match="never be shown"):
        render_template(f"llama al {{fact:{unverified[0].id}}}")
    used = {f for *_, facts in all_pages() for f in facts}
    assert used.isdisjoint({f.id for f in unverified})


def test_unknown_fact_is_refused() -> None:
    with pytest.raises(ContentError, match="unknown fact"):
        render_template("{fact:xx.nothing}")


def test_caveat_travels_with_the_number() -> None:
    facts = load_facts()
    fact = next(f for f in facts.values() if f.showable and f.value and f.caveat_es)
    text, used = render_template(f"Llama al {{fact:{fact.id}}}.")
    assert f"{fact.value} ({fact.caveat_es})" in text
    assert used == [fact.id]


def test_only_rasa_variables_are_left_in_text() -> None:
    leftovers = {v for *_, t, _ in all_pages() for v in RASA_VARIABLE.findall(t)}
    filled_by_actions = {
        "{reasons}",  # action_job_offer_verdict
        *("{what}", "{report_country}", "{place}", "{when}", "{people}", "{minors}", "{kind}"),  # the summary
        *("{danger}", "{contact}", "{code}", "{limit}"),  # summary, filing, message limit
        *("{date}", "{status}", "{message}"),  # follow-up
        *("{number}", "{who}", "{where}", "{mark}", "{note}", "{tail}", "{cap}"),  # number check (and {date})
    }
    assert leftovers <= filled_by_actions


def test_emergency_answer_names_each_country_first_number() -> None:
    """Emergency first: every country has its own variant with at least one number."""
    variants = render_all()["utter_emergency"]
    assert set(country_names()) <= set(variants)
    for code, pages in variants.items():
        assert PHONE_LIKE.search(pages[0].text), code
    assert "110" in variants["GT"][0].text.split("911")[0]  # Guatemala has no 911: police 110 first


def test_build_covers_every_response_the_dialogue_uses() -> None:
    generated = build(write=False)
    responses = set(generated["responses"])
    used: set[str] = set()
    for path in (ROOT / "bot").rglob("*.yml"):
        used |= set(re.findall(r"\butter_[a-z0-9_]+", path.read_text(encoding="utf-8")))
    for rule in generated["rules"]:
        used |= {s["action"] for s in rule["steps"] if str(s.get("action", "")).startswith("utter_")}
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    for form in domain["forms"].values():
        used |= {f"utter_ask_{slot}" for slot in form["required_slots"]}
    assert used - responses == set()


def test_menu_rules_match_the_menu() -> None:
    menu = yaml.safe_load((CONTENT / "menu.yml").read_text(encoding="utf-8"))
    rules = {r["rule"]: r for r in build(write=False)["rules"]}
    assert sorted(menu["options"]) == [str(i) for i in range(1, 10)]
    for option in menu["options"]:
        steps = rules[f"menu option {option}"]["steps"]
        assert steps[1] == {"slot_was_set": [{"menu_option": option}]}


def test_job_checklist_reasons_are_sourced_and_fit() -> None:
    checklist = yaml.safe_load((CONTENT / "job_offer.yml").read_text(encoding="utf-8"))
    facts = load_facts()
    for item in checklist["questions"].values():
        assert facts[item["fact"]].showable
    all_reasons = "; ".join(item["reason"] for item in checklist["questions"].values())
    for level in ("high", "medium", "low"):
        template = render_all()[f"utter_job_risk_{level}"]["default"][0].text
        assert sms_segments(template.replace("{reasons}", all_reasons)) <= 2, level
        for item in checklist["questions"].values():  # medium has one reason; high usually few
            if level != "low" and (level == "high" or not item["grave"]):
                assert sms_segments(template.replace("{reasons}", item["reason"])) == 1, (level, item["reason"])


def test_content_files_are_only_yaml_with_a_version() -> None:
    for path in Path(CONTENT).rglob("*"):
        if path.is_file():
            assert path.suffix == ".yml", path
            assert "version" in yaml.safe_load(path.read_text(encoding="utf-8")), path
