"""Build Rasa's responses and generated rules from content/, so that content turns are
plain responses (no action server round trip) and the Spanish text stays in content/.

  python -m hotline.build          writes build/domain/ and build/data/
  python -m hotline.build --check  renders and checks everything, writes nothing
  python -m hotline.build --check --confirmations FILE   the same with another confirmations
                                   file (content/confirmations.yml otherwise), before committing it
  python -m hotline.build --check --service-corrections FILE   the same with another services
                                   corrections file (content/service_corrections.yml otherwise)

Generated:
- build/domain/domain.yml: a copy of domain.yml (Rasa merges the folder);
- build/domain/responses.yml: one response per content response, a conditional variation
  per country (slot `country`), MAS pages as `<name>_more`, `<name>_more2`...;
- build/data/generated_rules.yml: the numbered menu, MAS continuations, and answering
  again once a person gives their country after a country-dependent answer.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from hotline.content import (
    MAX_SEGMENTS,
    SMS_BUDGET,
    ContentError,
    Fact,
    Page,
    SmsBudget,
    check_confirmation_dates,
    load_common,
    load_facts,
    load_sms_budget,
    load_topic_languages,
    page_name,
    render_all,
    render_language_pages,
    render_pages,
    utc_today,
)
from hotline.countries import country_names
from hotline.discreet import discreet_content, discreet_override, rephrase, sensitive_words_in
from hotline.paths import BUILD, CONTENT, ROOT
from hotline.services import CORRECTIONS, ServicesError, load_services
from hotline.sms import sms_segments

RASA_VERSION = "3.1"


def _variation(page: Page) -> dict[str, Any]:
    if page.variant == "default":
        return {"text": page.text}
    condition = [{"type": "slot", "name": "country", "value": page.variant}]
    return {"condition": condition, "text": page.text}


def build_responses(rendered: dict[str, dict[str, list[Page]]]) -> dict[str, list[dict[str, Any]]]:
    """Rasa `responses:` with country variations first and the default last."""
    no_more = load_common()["no_more"]
    responses: dict[str, list[dict[str, Any]]] = {}
    for name, variants in rendered.items():
        if "default" not in variants:
            raise ContentError(f"{name} has no default variant")
        depth = max(len(pages) for pages in variants.values())
        for index in range(depth):
            ordered = sorted(variants, key=lambda v: (v == "default", v))
            variations = []
            for variant in ordered:
                pages = variants[variant]
                if index < len(pages):
                    variations.append(_variation(pages[index]))
                elif variant == "default":
                    variations.append({"text": no_more})
            responses[page_name(name, index)] = variations
    return responses


def more_rules(rendered: dict[str, dict[str, list[Page]]]) -> list[dict[str, Any]]:
    rules = []
    for name, variants in rendered.items():
        depth = max(len(pages) for pages in variants.values())
        for index in range(depth - 1):
            current, following = page_name(name, index), page_name(name, index + 1)
            rules.append(
                {
                    "rule": f"MAS after {current}",
                    "steps": [{"action": current}, {"intent": "more"}, {"action": following}],
                }
            )
    return rules


def menu_rules(menu: dict[str, Any]) -> list[dict[str, Any]]:
    rules = []
    for option, entry in menu["options"].items():
        actions = entry["action"] if isinstance(entry["action"], list) else [entry["action"]]
        steps: list[dict[str, Any]] = [
            {"intent": "choose_option"},
            {"slot_was_set": [{"menu_option": str(option)}]},
            *({"action": action} for action in actions),
        ]
        if entry.get("form"):
            steps.append({"active_loop": actions[-1]})
        rules.append({"rule": f"menu option {option}", "steps": steps})
    return rules


def country_late_rules(menu: dict[str, Any]) -> list[dict[str, Any]]:
    """After an answer that asked for the country, the country alone repeats it, localised."""
    return [
        {
            "rule": f"country given after {entry['after']}",
            "steps": [{"action": entry["after"]}, {"intent": "inform_country"}, {"action": entry["repeat"]}],
        }
        for entry in menu["asks_country"]
    ]


def menu_response(menu: dict[str, Any]) -> list[dict[str, Any]]:
    lines = [menu["intro"]] + [f"{option} {entry['label']}" for option, entry in menu["options"].items()]
    lines.append(menu["outro"])
    return [{"text": "\n".join(lines)}]


def page_segments(responses: dict[str, list[dict[str, Any]]]) -> list[int]:
    """SMS segments of every page a person can receive: each variation of each response
    (country variants, MAS pages, the "nothing more" fillers and the menu)."""
    return [sms_segments(str(variation["text"])) for variations in responses.values() for variation in variations]


def one_segment_share(responses: dict[str, list[dict[str, Any]]]) -> float:
    segments = page_segments(responses)
    return sum(1 for s in segments if s == 1) / len(segments) if segments else 1.0


def _variant(variation: dict[str, Any]) -> str:
    condition = variation.get("condition")
    return str(condition[0]["value"]) if condition else "default"


def check_allowlist(responses: dict[str, list[dict[str, Any]]], budget: SmsBudget) -> None:
    """The allowlist names only pages that exist and still need their second segment."""
    texts = {(name, _variant(v)): str(v["text"]) for name, variations in responses.items() for v in variations}
    for page, variant in budget.two_segments:
        text = texts.get((page, variant))
        if text is None:
            raise ContentError(f"{SMS_BUDGET.name}: {page} [{variant}] is not a page of the content")
        if sms_segments(text) == 1:
            raise ContentError(f"{SMS_BUDGET.name}: {page} [{variant}] fits one segment: remove it from the list")


def check_sms_share(responses: dict[str, list[dict[str, Any]]], budget: SmsBudget) -> None:
    """Most pages fit one SMS; the allowlist must not grow into the rule."""
    share = one_segment_share(responses)
    if share < budget.min_one_segment_share:
        raise ContentError(
            f"only {share:.0%} of the pages fit one SMS segment "
            f"(at least {budget.min_one_segment_share:.0%}, {SMS_BUDGET.name}): shorten or split pages"
        )


def menu_response_discreet(menu: dict[str, Any]) -> str:
    """The menu as a watched phone may show it: every option's neutral label."""
    lines = [menu["intro"]]
    lines += [f"{option} {entry.get('discreet_label', entry['label'])}" for option, entry in menu["options"].items()]
    lines.append(menu.get("discreet_outro", menu["outro"]))
    return "\n".join(lines)


def discreet_twins(
    rendered: dict[str, dict[str, list[Page]]],
    facts: dict[str, Fact],
    menu: dict[str, Any],
    budget: SmsBudget | None = None,
) -> dict[tuple[str, str], str]:
    """(page name, normal text) -> the text a watched phone may show: hand-written in
    content/discreet.yml or the normal text rephrased. Refuses a twin that still holds a
    sensitive word or grows past its page's SMS budget (a person in discreet mode pays the
    same as anyone)."""
    budget = load_sms_budget() if budget is None else budget
    twins: dict[tuple[str, str], str] = {}
    allowed: dict[tuple[str, str], int] = {}
    no_more = load_common()["no_more"]
    languages = load_topic_languages()

    def add(page: str, variant: str, normal: str, twin: str) -> None:
        twins[(page, normal)] = twin
        allowed[(page, normal)] = max(allowed.get((page, normal), 0), budget.allowed(page, variant))

    for name, variants in rendered.items():
        topic = languages.get(name)
        for variant, pages in variants.items():
            if topic is not None:  # another language: its own twins (the Spanish replacements do not apply)
                override = topic.discreet.get(name, {}).get(variant)
                if override is None:
                    raise ContentError(f"{name} [{variant}] has no discreet twin in its language file")
            else:
                override = discreet_override(name, variant)
            if override is not None and len(override) != len(pages):
                raise ContentError(f"discreet.yml: {name} [{variant}] must have {len(pages)} page(s)")
            texts = (
                [
                    p.text
                    for p in (
                        render_language_pages(name, variant, override, facts, topic, budget)
                        if topic is not None
                        else render_pages(name, variant, override, facts, budget)
                    )
                ]
                if override is not None
                else [rephrase(p.text) for p in pages]
            )
            for page, text in zip(pages, texts, strict=True):
                add(page_name(name, page.index), variant, page.text, text)
        depth = max(len(pages) for pages in variants.values())
        for index in range(depth):
            add(page_name(name, index), "default", no_more, rephrase(no_more))
    add("utter_menu", "default", menu_response(menu)[0]["text"], menu_response_discreet(menu))
    for key, text in twins.items():
        shown = key[0]
        found = sensitive_words_in(text)
        if found:
            raise ContentError(f"{shown} in discreet mode still says {', '.join(sorted(set(found)))}: {text!r}")
        if sms_segments(text) > min(allowed[key], MAX_SEGMENTS):
            raise ContentError(
                f"{shown} in discreet mode needs {sms_segments(text)} SMS segments (budget {allowed[key]}): {text!r}"
            )
    return twins


def _country_of(variation: dict[str, Any]) -> str | None:
    for condition in variation.get("condition", []):
        if condition["name"] == "country":
            return str(condition["value"])
    return None


def normal_text_for(variations: list[dict[str, Any]], country: str | None) -> str:
    """The text Rasa picks for this country (None: not known) when the mode is normal."""
    for variation in variations:
        if "condition" in variation and _country_of(variation) == country:
            return str(variation["text"])
    return str(next(v["text"] for v in variations if "condition" not in v))


def _slot(name: str, value: Any) -> dict[str, Any]:
    return {"type": "slot", "name": name, "value": value}


def _when_normal(variations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The normal variations, each conditional one also requiring `discreet` false."""
    return [
        {**v, "condition": [*(dict(c) for c in v["condition"]), _slot("discreet", False)]}
        if "condition" in v
        else dict(v)
        for v in variations
    ]


def with_discreet_twins(
    responses: dict[str, list[dict[str, Any]]], twins: dict[tuple[str, str], str]
) -> dict[str, list[dict[str, Any]]]:
    """Every response with its discreet variations first (slot `discreet` true, and one per
    country when the text depends on it), the normal ones conditioned on `discreet` false,
    and the unconditioned default last. Rasa picks at random among matching conditional
    variations, so exactly one must match in each mode."""
    switches = discreet_content().switches
    result: dict[str, list[dict[str, Any]]] = {}
    for name, variations in responses.items():
        countries: list[str | None] = [*country_names(), None]
        texts = {country: twins[(name, normal_text_for(variations, country))] for country in countries}
        if all(texts[country] == normal_text_for(variations, country) for country in countries):
            merged = [dict(v) for v in variations]  # already neutral in every variant
        elif len(set(texts.values())) == 1:
            merged = [{"condition": [_slot("discreet", True)], "text": texts[None]}, *_when_normal(variations)]
        else:
            merged = [
                {"condition": [_slot("discreet", True), _slot("country", country)], "text": text}
                for country, text in texts.items()
            ] + _when_normal(variations)
        if name in switches:  # the gateway learns the mode from these answers
            for variation in merged:
                variation["custom"] = {"hotline": {"discreet": switches[name]}}
        result[name] = merged
    return result


def domain_intents() -> frozenset[str]:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return frozenset(str(intent) for intent in domain.get("intents") or [])


def with_topic_marks(
    responses: dict[str, list[dict[str, Any]]], intents: frozenset[str]
) -> dict[str, list[dict[str, Any]]]:
    """The first page of each intent's answer (utter_<intent>) carries its topic, and the
    country it was written for, as `custom.hotline` (reports/questions.py): the gateway
    counts questions by topic without reading the conversation."""
    for name, variations in responses.items():
        topic = name.removeprefix("utter_")
        if topic == name or topic not in intents:
            continue
        for variation in variations:
            country = _country_of(variation)
            mark = {"topic": topic, **({"country": country} if country else {})}
            variation["custom"] = {"hotline": {**variation.get("custom", {}).get("hotline", {}), **mark}}
    return responses


def check_services(corrections: Path | None = None) -> int:
    """The services directory with its approved corrections (the shelter answer reads it at
    run time): a correction the validator refuses stops the build. Returns the entry count."""
    try:
        return len(load_services(corrections=corrections or CORRECTIONS))
    except ServicesError as error:
        raise ContentError(f"services directory: {error}") from error


def build(
    write: bool = True,
    confirmations: Path | None = None,
    today: date | None = None,
    budget: SmsBudget | None = None,
    service_corrections: Path | None = None,
) -> dict[str, Any]:
    """Render and check everything. Confirmations come from content/confirmations.yml (or
    the given file): an unknown fact id or a date after `today` (UTC today) is an error.
    Every page must keep its SMS budget (content/sms_budget.yml, or the given one).
    The services directory must validate with its corrections (or the given file's)."""
    budget = load_sms_budget() if budget is None else budget
    check_services(service_corrections)
    facts = load_facts(confirmations)
    check_confirmation_dates(facts, today or utc_today())
    rendered = render_all(facts, budget)
    menu = yaml.safe_load((CONTENT / "menu.yml").read_text(encoding="utf-8"))
    responses = build_responses(rendered)
    if "utter_menu" in responses:
        raise ContentError("utter_menu is generated from content/menu.yml; do not write it in topics")
    responses["utter_menu"] = menu_response(menu)
    menu_segments = sms_segments(responses["utter_menu"][0]["text"])
    menu_budget = budget.allowed("utter_menu", "default")
    if menu_segments > menu_budget:
        raise ContentError(f"the menu needs {menu_segments} SMS segments (budget {menu_budget})")
    check_allowlist(responses, budget)
    check_sms_share(responses, budget)  # the normal pages; discreet twins are checked in discreet_twins
    responses = with_discreet_twins(responses, discreet_twins(rendered, facts, menu, budget))
    responses = with_topic_marks(responses, domain_intents())
    rules = menu_rules(menu) + more_rules(rendered) + country_late_rules(menu)
    if write:
        domain_dir, data_dir = BUILD / "domain", BUILD / "data"
        for folder in (domain_dir, data_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        shutil.copyfile(ROOT / "domain.yml", domain_dir / "domain.yml")
        _dump(domain_dir / "responses.yml", {"version": RASA_VERSION, "responses": responses})
        _dump(data_dir / "generated_rules.yml", {"version": RASA_VERSION, "rules": rules})
    return {"responses": responses, "rules": rules}


def _dump(path: Any, data: Any) -> None:
    header = "# Generated by `python -m hotline.build` from content/. Do not edit.\n"
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
    path.write_text(header + text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check only, write nothing")
    parser.add_argument("--confirmations", type=Path, help="confirmations file (default content/confirmations.yml)")
    parser.add_argument("--service-corrections", type=Path, help="default content/service_corrections.yml")
    args = parser.parse_args(argv)
    if args.confirmations and not args.check:
        parser.error("--confirmations only with --check: the assistant's content is content/confirmations.yml")
    if args.service_corrections and not args.check:
        parser.error("--service-corrections only with --check: the content is content/service_corrections.yml")
    try:
        result = build(
            write=not args.check, confirmations=args.confirmations, service_corrections=args.service_corrections
        )
    except ContentError as error:
        print(f"content error: {error}", file=sys.stderr)
        return 1
    print(f"{len(result['responses'])} responses, {len(result['rules'])} generated rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
