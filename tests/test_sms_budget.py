"""The SMS budget (issue 12): one segment per page unless content/sms_budget.yml lists the page
with its reason, never three; at least 90% of the pages in one segment; the emergency answer
one segment for a known country (with its emergency number), two at most while it asks the
country. The build refuses content that breaks any of these."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hotline import content as content_module
from hotline.build import build, main, one_segment_share, page_segments
from hotline.content import (
    SMS_BUDGET,
    ContentError,
    SmsBudget,
    load_facts,
    load_sms_budget,
    load_topics,
    read_sms_budget,
    render_all,
    render_pages,
)
from hotline.countries import country_names
from hotline.discreet import rephrase, sensitive_words_in
from hotline.sms import sms_segments

# Two and three segments of plain GSM-7 text (a segment of a long message carries 153).
TWO_SEGMENTS = "Una página demasiado larga para un solo mensaje. " * 4  # about 200 characters
THREE_SEGMENTS = "Una página demasiado larga para un solo mensaje. " * 8  # about 400 characters


def with_topic(monkeypatch: pytest.MonkeyPatch, name: str, variants: dict[str, list[str]]) -> None:
    """The real content plus (or with one response replaced by) a fake response."""
    topics = load_topics()
    topics[name] = variants
    monkeypatch.setattr(content_module, "load_topics", lambda: topics)


def allowing(budget: SmsBudget, *pages: tuple[str, str]) -> SmsBudget:
    return replace(budget, two_segments={**budget.two_segments, **{page: "a test" for page in pages}})


def normal_mode(responses: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The responses without their discreet-mode twins (hotline/discreet.py)."""
    twin = {"type": "slot", "name": "discreet", "value": True}
    return {name: [v for v in vs if twin not in v.get("condition", [])] for name, vs in responses.items()}


def test_the_real_content_keeps_its_budget() -> None:
    built = build(write=False)["responses"]
    responses = normal_mode(built)
    segments = page_segments(responses)
    budget = load_sms_budget()
    assert len(segments) > 200
    assert max(segments) == 2
    assert one_segment_share(responses) >= budget.min_one_segment_share == 0.9
    assert sum(s == 2 for s in segments) == len(budget.two_segments)  # only the listed pages take two
    assert len(page_segments(built)) > len(segments)  # the discreet twins keep the same budgets
    assert one_segment_share(built) >= budget.min_one_segment_share and max(page_segments(built)) == 2


def test_the_fixtures_are_as_long_as_they_say() -> None:
    assert sms_segments(TWO_SEGMENTS) == 2 and sms_segments(THREE_SEGMENTS) == 3


def test_a_page_past_one_segment_is_refused() -> None:
    with pytest.raises(ContentError, match=r"utter_fake \[default\] needs 2 SMS segments \(budget 1; only pages"):
        render_pages("utter_fake", "default", [TWO_SEGMENTS])


def test_a_long_fake_topic_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    with_topic(monkeypatch, "utter_fake", {"default": ["Corta.", TWO_SEGMENTS]})
    with pytest.raises(ContentError, match=r"utter_fake_more \[default\] needs 2 SMS segments"):
        build(write=False)
    assert main(["--check"]) == 1


def test_the_more_invitation_counts_in_the_length() -> None:
    """A page that fits alone can be too long once "Hay más: escribe MAS." is added."""
    fits_alone = "a" * 150
    assert sms_segments(fits_alone) == 1
    render_pages("utter_fake", "default", [fits_alone])
    with pytest.raises(ContentError, match=r"utter_fake \[default\] needs 2"):
        render_pages("utter_fake", "default", [fits_alone, "Fin."])


def test_a_listed_page_may_take_two_segments_but_never_three(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = allowing(load_sms_budget(), ("utter_fake", "default"))
    (page,) = render_pages("utter_fake", "default", [TWO_SEGMENTS], budget=budget)
    assert sms_segments(page.text) == 2
    with pytest.raises(ContentError, match=r"needs 3 SMS segments \(budget 2\)"):
        render_pages("utter_fake", "default", [THREE_SEGMENTS], budget=budget)
    # the listing is per page and variant: the MAS page and a country variant keep one segment
    with pytest.raises(ContentError, match=r"utter_fake_more \[default\] needs 2"):
        render_pages("utter_fake", "default", ["Corta.", TWO_SEGMENTS], budget=budget)
    with pytest.raises(ContentError, match=r"utter_fake \[MX\] needs 2"):
        render_pages("utter_fake", "MX", [TWO_SEGMENTS], budget=budget)
    with_topic(monkeypatch, "utter_fake", {"default": [TWO_SEGMENTS]})
    build(write=False, budget=budget)


def test_the_list_names_only_pages_that_need_two(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = load_sms_budget()
    with pytest.raises(ContentError, match=r"utter_nothing \[default\] is not a page of the content"):
        build(write=False, budget=allowing(budget, ("utter_nothing", "default")))
    with pytest.raises(ContentError, match=r"utter_greet \[default\] fits one segment: remove it"):
        build(write=False, budget=allowing(budget, ("utter_greet", "default")))


def test_the_one_segment_share_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing many pages cannot replace the rule: below 90% in one segment the build fails."""
    variants = {code: [TWO_SEGMENTS] for code in country_names()}
    names = [f"utter_fake{i}" for i in range(3)]
    topics = load_topics()
    for name in names:
        topics[name] = {"default": [TWO_SEGMENTS], **variants}
    monkeypatch.setattr(content_module, "load_topics", lambda: topics)
    listed = [(name, variant) for name in names for variant in ["default", *variants]]
    budget = allowing(load_sms_budget(), *listed)
    with pytest.raises(ContentError, match=r"only 8\d% of the pages fit one SMS segment \(at least 90%"):
        build(write=False, budget=budget)
    build(write=False, budget=replace(budget, min_one_segment_share=0.8))


def test_a_known_country_emergency_answer_is_one_segment_with_its_number() -> None:
    budget, facts = load_sms_budget(), load_facts()
    variants = render_all()["utter_emergency"]
    assert set(budget.emergency_numbers) == set(country_names()) <= set(variants)
    for code in country_names():
        (page,) = variants[code]
        assert sms_segments(page.text) == 1, code
        assert str(facts[budget.emergency_numbers[code]].value) in page.text, code
    (default,) = variants["default"]
    assert sms_segments(default.text) == 2 and default.text.endswith(budget.asks_country_es)
    # the gateway may send the region's answer on its own while the mode is unknown: it reads
    # the same in discreet mode
    assert sensitive_words_in(default.text) == [] and rephrase(default.text) == default.text


def test_a_long_known_country_emergency_answer_fails_even_if_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    emergency = load_topics()["utter_emergency"]
    long_mx = "Si estás en peligro, llama al {fact:mx.emergency}. " + TWO_SEGMENTS
    with_topic(monkeypatch, "utter_emergency", {**emergency, "MX": [long_mx]})
    budget = allowing(load_sms_budget(), ("utter_emergency", "MX"))
    with pytest.raises(ContentError, match=r"utter_emergency \[MX\] needs 2 SMS segments: a known country's must"):
        render_all(budget=budget)


def test_the_emergency_answer_keeps_its_number_its_question_and_one_page(monkeypatch: pytest.MonkeyPatch) -> None:
    emergency = load_topics()["utter_emergency"]
    with_topic(monkeypatch, "utter_emergency", {**emergency, "GT": ["Si estás en peligro, busca un lugar seguro."]})
    with pytest.raises(ContentError, match=r"utter_emergency \[GT\] must show the country's emergency number"):
        render_all()
    with_topic(monkeypatch, "utter_emergency", {**emergency, "GT": ["Llama al {ref:gt.police}110."]})
    with pytest.raises(ContentError, match=r"\(gt.police\)"):  # stated, but without its caveat
        render_all()
    asks_nothing = emergency["default"][0].replace(load_sms_budget().asks_country_es, "")
    with_topic(monkeypatch, "utter_emergency", {**emergency, "default": [asks_nothing]})
    with pytest.raises(ContentError, match=r"utter_emergency \[default\] must ask"):
        render_all()
    with_topic(monkeypatch, "utter_emergency", {**emergency, "HN": [*emergency["HN"], "Más."]})
    with pytest.raises(ContentError, match=r"utter_emergency \[HN\] must be one page"):
        render_all()
    without_belize = {variant: pages for variant, pages in emergency.items() if variant != "BZ"}
    with_topic(monkeypatch, "utter_emergency", without_belize)
    with pytest.raises(ContentError, match=r"utter_emergency has no variant for BZ"):
        render_all()


def test_a_malformed_budget_file_is_refused(tmp_path: Path) -> None:
    text = SMS_BUDGET.read_text(encoding="utf-8")
    path = tmp_path / "sms_budget.yml"
    path.write_text(text.replace("min_one_segment_share: 0.9", "min_one_segment_share: 90"), encoding="utf-8")
    with pytest.raises(ContentError, match="min_one_segment_share must be a share"):
        read_sms_budget(path)
    no_reason = text.replace("two_segments:\n", "two_segments:\n  utter_greet:\n    default: ''\n")
    path.write_text(no_reason, encoding="utf-8")
    with pytest.raises(ContentError, match=r"utter_greet \[default\] needs a reason"):
        read_sms_budget(path)
    assert read_sms_budget(SMS_BUDGET) == load_sms_budget()
