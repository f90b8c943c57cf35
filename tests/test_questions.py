"""Questions by topic (issue 13, item 6): the content build marks each topic's answer, the
gateway counts the marks of the answers it relays and adds them to the database in each
background round (several gateways at once, a failing database keeps the counts), and
the public page publishes them by topic and month with complementary suppression. End to
end: a question to the real Rasa server through the real gateway is counted, and nothing
but counts reaches the database."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import Engine, create_engine, select

from hotline.build import build, domain_intents
from hotline.paths import CONTENT
from reports import public_figures
from reports.db import make_engine, transaction
from reports.models import QuestionCount
from reports.questions import QuestionTally, TopicMark, add_counts, count_questions
from reports.suppression import determined
from scripts.stack import Stack, free_port
from tests.test_e2e_gateway import new_phone, sms_form, twilio_post, twiml_messages, wait_for
from tests.test_public_figures import published

NOVEMBER = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


# -- the content build ------------------------------------------------------------------


def test_each_topic_answer_carries_its_topic_and_country_and_continuations_do_not() -> None:
    responses = build(write=False)["responses"]
    shelter = responses["utter_ask_shelter"]
    marks = [v["custom"]["hotline"] for v in shelter]
    assert all(mark["topic"] == "ask_shelter" for mark in marks)
    for variation in shelter:  # the country a variation was written for, or none
        countries = [c["value"] for c in variation.get("condition", []) if c["name"] == "country"]
        assert variation["custom"]["hotline"].get("country") == (countries[0] if countries else None)
    continuations = [name for name in responses if "_more" in name]
    assert continuations and not any("topic" in str(v.get("custom")) for n in continuations for v in responses[n])
    discreet_on = responses["utter_discreet_on"]  # a mode switch keeps its own mark
    assert all(v["custom"]["hotline"]["discreet"] is True for v in discreet_on)


def test_the_published_topics_are_intents_of_the_domain() -> None:
    labels = yaml.safe_load((CONTENT / "public_figures.yml").read_text(encoding="utf-8"))["topics"]
    assert set(labels) <= domain_intents()
    variations = [v for vs in build(write=False)["responses"].values() for v in vs]
    marked = {v["custom"]["hotline"].get("topic") for v in variations if "custom" in v}
    assert set(labels) - {"check_job_offer"} <= marked  # the job checklist is a form: its first answer is marked too


# -- counting and storing ---------------------------------------------------------------


def test_counts_from_several_gateways_add_up(engine: Engine) -> None:
    """Four gateways flushing the same keys at once: no count lost, none counted twice."""
    tallies = [QuestionTally() for _ in range(4)]
    for tally in tallies:
        for _ in range(25):
            tally.add([TopicMark("ask_shelter", "MX"), TopicMark("emergency")], now=NOVEMBER)
    barrier = threading.Barrier(len(tallies))

    def flush(tally: QuestionTally) -> None:
        barrier.wait()
        tally.flush(engine)

    threads = [threading.Thread(target=flush, args=(t,)) for t in tallies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert count_questions(engine) == Counter(
        {("2026-11", "MX", "ask_shelter"): 100, ("2026-11", "", "emergency"): 100}
    )
    assert all(not t.counts for t in tallies)


def test_a_failing_database_keeps_the_counts_for_the_next_round(engine: Engine) -> None:
    tally = QuestionTally()
    tally.add([TopicMark("ask_rights", "GT")] * 3, now=NOVEMBER)
    broken = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")  # nothing listens
    with pytest.raises(Exception):  # noqa: B017  (whatever the driver raises)
        tally.flush(broken)
    assert tally.counts == Counter({("2026-11", "GT", "ask_rights"): 3})
    tally.add([TopicMark("ask_rights", "GT")], now=NOVEMBER)
    assert tally.flush(engine) == 4
    assert count_questions(engine) == Counter({("2026-11", "GT", "ask_rights"): 4})
    assert tally.flush(engine) == 0  # nothing kept twice


# -- the public page --------------------------------------------------------------------


def test_questions_by_topic_are_published_with_their_small_counts_suppressed(engine: Engine, tmp_path: Path) -> None:
    add_counts(
        engine,
        Counter(
            {
                ("2026-11", "MX", "ask_shelter"): 7,
                ("2026-11", "GT", "ask_shelter"): 2,  # 9 over both countries: published
                ("2026-10", "", "ask_shelter"): 12,
                ("2026-11", "", "ask_rights"): 3,  # small: hidden, with what gives it back
                ("2026-10", "HN", "ask_rights"): 8,
                ("2026-11", "", "greet"): 50,  # not a published topic
            }
        ),
    )
    page = public_figures.write_page(engine, tmp_path, 5, NOW).read_text(encoding="utf-8")
    cells = published(page)
    assert "Preguntas por tema y mes" in page and "albergues" in page and "derechos" in page
    assert cells["q|ask_shelter|2026-11"] == "9" or cells["q|ask_shelter|2026-11"] == "s"
    assert cells["q|ask_rights|2026-11"] == "s"
    assert "greet" not in page and "50" not in cells.values()
    hidden = {name for name, shown in cells.items() if shown == "s" and name.startswith("q")}
    assert len(hidden) >= 4  # the 3, its row, its column and the cell closing the rectangle
    values, equations = public_figures.question_table(public_figures.published_questions(count_questions(engine)))
    keys = {"|".join(key): key for key in values}
    assert {name for name in cells if name.startswith("q")} == set(keys)
    known = {keys[name]: int(shown) for name, shown in cells.items() if name in keys and shown != "s"}
    assert determined({**dict.fromkeys(values, 0), **known}, equations, {keys[n] for n in hidden}) == {}
    assert cells["qtotal"] == "s" or int(cells["qtotal"]) == 32


def test_a_page_without_questions_says_so(engine: Engine, tmp_path: Path) -> None:
    page = public_figures.write_page(engine, tmp_path, 5, NOW).read_text(encoding="utf-8")
    assert 'id="no-questions"' in page and "Todavía no hay preguntas" in page


# -- end to end: the real gateway and Rasa ----------------------------------------------


def shelter_answers(stack: Stack) -> int:
    engine = make_engine(stack.database_url)
    try:
        with transaction(engine) as session:
            rows = session.execute(select(QuestionCount.answers).where(QuestionCount.topic == "ask_shelter"))
            return sum(n for (n,) in rows)
    finally:
        engine.dispose()


@pytest.mark.rasa
def test_a_question_through_the_gateway_is_counted_and_only_counted(client: httpx.Client, stack: Stack) -> None:
    before, phone = shelter_answers(stack), new_phone()
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "estoy en guatemala")))
    said = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "donde hay un albergue")))
    assert "dato por confirmar" in " ".join(said)  # a Guatemalan entry of the services directory
    wait_for(lambda: shelter_answers(stack) > before, timeout=60)  # added each background round (10 s)
    assert shelter_answers(stack) == before + 1
    engine = make_engine(stack.database_url)
    try:
        with transaction(engine) as session:
            row = session.execute(select(QuestionCount).where(QuestionCount.topic == "ask_shelter")).scalars().all()
    finally:
        engine.dispose()
    assert any(r.country == "GT" and r.month == datetime.now(UTC).strftime("%Y-%m") for r in row)
    stored = " ".join(f"{r.month} {r.country} {r.topic} {r.answers}" for r in row)
    assert phone[-6:] not in stored and "albergue" not in stored
