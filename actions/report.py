"""The anonymous report form: reading each answer (skip, cancel, corrections), the
summary before sending, and filing. Filing seals the report with the staff console's
public key (reports.service); this process never holds the private key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import answers, metrics
from actions.answers import SKIPPED
from actions.config import engine, keys, settings
from actions.metadata import trusted_metadata
from hotline.content import MAX_SEGMENTS
from hotline.countries import country_names, find_countries
from hotline.discreet import is_mode_command
from hotline.sms import sms_segments, to_gsm7
from reports.crypto import contact_blob
from reports.db import transaction
from reports.notify import configured_channels, notify_report
from reports.service import FiledReport, ReportDraft, discard_kept_photos, file_report

logger = logging.getLogger(__name__)

FORM = "report_form"
TEXT_SLOTS = ("report_what", "report_place", "report_when", "report_people")
ALL_SLOTS = (
    "report_what",
    "report_more",
    "report_country",
    "report_place",
    "report_when",
    "report_people",
    "report_minors",
    "report_kind",
    "report_danger",
    "report_contact",
    "report_confirm",
    "report_cancelled",
)
# All "what happened" messages together, and each short answer: the sealed report stays
# under reports.service.MAX_SEALED_BYTES even in 4-byte characters (emoji).
MAX_WHAT_CHARS = 12_000
MAX_SHORT_ANSWER_CHARS = 500


def latest_text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


def latest_intent(tracker: Tracker) -> tuple[str | None, float]:
    intent = tracker.latest_message.get("intent") or {}
    return intent.get("name"), float(intent.get("confidence") or 0.0)


def join_text(before: str | None, added: str) -> str:
    kept = before if before and before != SKIPPED else ""
    return f"{kept}\n{added}".strip()[:MAX_WHAT_CHARS]


class ActionStartReport(Action):
    """A new report starts empty: answers of a report left halfway in an earlier session
    (Rasa carries slots over sessions) must not fill this one."""

    def name(self) -> str:
        return "action_start_report"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return [SlotSet(slot, None) for slot in ALL_SLOTS if tracker.get_slot(slot) is not None]


class ValidateReportForm(FormValidationAction):
    """Every answer is free text; the common words (SALTAR, CANCELAR, MENU) mean the same
    at every question, so the person learns them once."""

    def name(self) -> str:
        return "validate_report_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        return [] if tracker.get_slot("report_cancelled") else domain_slots

    def _common(self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any] | None:
        """The answers every question shares, or None when the answer is the question's own."""
        text = latest_text(tracker)
        if answers.is_word(text, "cancel"):
            return {slot: None, "report_cancelled": True}
        if answers.is_word(text, "menu"):
            dispatcher.utter_message(response="utter_report_in_progress")
            return {slot: None}
        if answers.is_word(text, "skip"):
            return {slot: SKIPPED}
        return None

    def _free_text(self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> tuple[str, dict[str, Any]]:
        common = self._common(slot, dispatcher, tracker)
        if common is not None:
            return "", common
        clipped = answers.clip(latest_text(tracker).strip())
        if clipped.clipped:
            dispatcher.utter_message(response="utter_report_too_long", limit=answers.message_limit())
        if not clipped.text:
            return "", {slot: None}
        return clipped.text, {}

    async def validate_report_what(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text, decided = self._free_text("report_what", dispatcher, tracker)
        if decided:
            if decided.get("report_what") == SKIPPED:
                decided["report_more"] = "done"
            return decided
        return {"report_what": text}  # the slot already holds this message: nothing to join

    async def validate_report_more(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        raw = latest_text(tracker)
        if answers.is_word(raw, "done") or answers.is_word(raw, "skip"):
            return {"report_more": "done"}
        text, decided = self._free_text("report_more", dispatcher, tracker)
        if decided:
            return decided
        return {"report_more": None, "report_what": join_text(tracker.get_slot("report_what"), text)}

    async def validate_report_country(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text, decided = self._free_text("report_country", dispatcher, tracker)
        if decided:
            return decided
        entity = next(
            (e.get("value") for e in tracker.latest_message.get("entities", []) if e.get("entity") == "country"), None
        )
        mentions = find_countries(text)
        code = entity or (mentions[0].code if mentions else None)
        return {"report_country": code or text[:200]}  # a country we do not list is kept as typed

    async def validate_report_place(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text, decided = self._free_text("report_place", dispatcher, tracker)
        return decided or {"report_place": text[:MAX_SHORT_ANSWER_CHARS]}

    async def validate_report_when(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text, decided = self._free_text("report_when", dispatcher, tracker)
        return decided or {"report_when": text[:MAX_SHORT_ANSWER_CHARS]}

    async def validate_report_people(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text, decided = self._free_text("report_people", dispatcher, tracker)
        return decided or {"report_people": text[:MAX_SHORT_ANSWER_CHARS]}

    def _yes_no(self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        common = self._common(slot, dispatcher, tracker)
        if common is not None:
            return common
        answer = answers.yes_no(latest_text(tracker), *latest_intent(tracker))
        if answer is None:
            dispatcher.utter_message(response="utter_report_answer_yes_no")
        return {slot: answer}

    async def validate_report_minors(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._yes_no("report_minors", dispatcher, tracker)

    async def validate_report_danger(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._yes_no("report_danger", dispatcher, tracker)

    async def validate_report_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        decided = self._yes_no("report_contact", dispatcher, tracker)
        if decided.get("report_contact") == SKIPPED:
            decided["report_contact"] = "no"  # no answer is no consent
        return decided

    async def validate_report_kind(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text, decided = self._free_text("report_kind", dispatcher, tracker)
        if decided:
            if decided.get("report_kind") == SKIPPED:
                decided["report_kind"] = "unknown"
            return decided
        kind = answers.kind_of(text)
        if kind is not None:
            return {"report_kind": kind}
        if text.strip().isdigit():
            dispatcher.utter_message(response="utter_report_answer_kind")
            return {"report_kind": None}
        # Words we do not recognise: "other", and the words go into the report.
        return {"report_kind": "other", "report_what": join_text(tracker.get_slot("report_what"), text)}

    async def validate_report_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = latest_text(tracker)
        if answers.is_word(text, "cancel"):
            return {"report_confirm": None, "report_cancelled": True}
        corrections: dict[str, list[str]] = answers.form_content()["corrections"]
        choice = answers.normalize(text)
        if choice in corrections:
            return {slot: None for slot in ["report_confirm", *corrections[choice]]}
        if answers.yes_no(text, *latest_intent(tracker)) == "yes":
            return {"report_confirm": "yes"}
        dispatcher.utter_message(response="utter_report_answer_confirm")
        return {"report_confirm": None}


def summary_values(tracker: Tracker) -> dict[str, str]:
    """The answers as the summary repeats them: short, so the summary fits two SMS."""
    names = country_names()

    def text(slot: str, limit: int = 40) -> str:
        value = tracker.get_slot(slot)
        if not value or value == SKIPPED:
            return answers.shown(None)
        shown = str(value)
        return shown if len(shown) <= limit else shown[: limit - 1] + str(answers.form_content()["shown"]["ellipsis"])

    country = tracker.get_slot("report_country")
    kind = tracker.get_slot("report_kind")
    return {
        "what": text("report_what", int(answers.form_content()["limits"]["summary_what_chars"])),
        "report_country": names.get(country, text("report_country", 30)) if country else answers.shown(None),
        "place": text("report_place"),
        "when": text("report_when", 30),
        "people": text("report_people", 20),
        "minors": answers.shown(tracker.get_slot("report_minors")),
        "kind": answers.kind_label(kind) if kind in answers.form_content()["kinds"] else answers.shown(None),
        "danger": answers.shown(tracker.get_slot("report_danger")),
        "contact": answers.shown(tracker.get_slot("report_contact")),
    }


class ActionAskReportConfirm(Action):
    """The summary before sending, then the question (Rasa's action_ask_<slot>)."""

    def name(self) -> str:
        return "action_ask_report_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        values = summary_values(tracker)
        variants = domain.get("responses", {}).get("utter_report_summary") or [{"text": ""}]
        template = str(variants[0].get("text") or "")
        what = values["what"]
        for limit in (70, 50, 30, 15):  # shorten "what happened" until the summary fits
            values["what"] = what[:limit]
            if sms_segments(to_gsm7(template.format(**values))) <= MAX_SEGMENTS:
                break
        dispatcher.utter_message(response="utter_report_summary", **values)
        dispatcher.utter_message(response="utter_ask_report_confirm")
        return []


class ActionKeepReportText(Action):
    """After the emergency answer (or discreet mode) inside the form: keep what the person
    wrote as part of the report, so an alarming message is never lost."""

    def name(self) -> str:
        return "action_keep_report_text"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = answers.clip(latest_text(tracker)).text.strip()
        if not text or is_mode_command(text):  # DISCRETO alone says nothing about the case
            return []
        return [SlotSet("report_what", join_text(tracker.get_slot("report_what"), text))]


def usable_reply_to(value: Any) -> str | None:
    """The sealed contact the channel edge attached, if it is one: a malformed value is
    dropped (and logged without content) rather than blocking the report."""
    if not value:
        return None
    try:
        contact_blob(str(value))
    except ValueError:
        logger.warning("reply_to metadata is not a sealed contact; report filed without it")
        return None
    return str(value)


def draft_from(tracker: Tracker, metadata: dict[str, str]) -> ReportDraft:
    """The report as the form collected it; `metadata` is what the gateway vouched for
    (actions.metadata.trusted_metadata): the reply address is kept only with consent."""

    def text(slot: str) -> str | None:
        value = tracker.get_slot(slot)
        return None if not value or value == SKIPPED else str(value)

    def yes(slot: str) -> bool | None:
        value = tracker.get_slot(slot)
        return {"yes": True, "no": False}.get(value) if value else None

    country = text("report_country")
    place = text("report_place")
    if country and country not in country_names():  # a country we do not list, as typed
        place, country = ", ".join(p for p in (country, place) if p), None
    kind = tracker.get_slot("report_kind")
    consent = yes("report_contact") is True
    reply_to = usable_reply_to(metadata.get("reply_to")) if consent else None
    return ReportDraft(
        what=text("report_what") or "",
        country=country,
        place=place,
        when=text("report_when"),
        people=text("report_people"),
        minors=yes("report_minors"),
        kind=kind if kind in answers.form_content()["kinds"] else None,
        danger_now=yes("report_danger"),
        contact_consent=consent,
        reply_to=reply_to,
        sender=tracker.sender_id if consent else None,
        channel=(metadata.get("channel") or None) if consent else None,
        attachments_from=tracker.sender_id,
    )


def is_empty(draft: ReportDraft) -> bool:
    return not any((draft.what, draft.country, draft.place, draft.when, draft.people)) and draft.kind in (
        None,
        "unknown",
    )


def file(draft: ReportDraft) -> FiledReport:
    """One transaction: the report and its pending staff alerts (the outbox) together."""
    with transaction(engine()) as session:
        return file_report(session, draft, keys(), notify_channels=configured_channels(settings()))


# Alerts being sent after their answer went out (a reference keeps each task alive).
ALERTS_IN_FLIGHT: set[asyncio.Future[None]] = set()


def alert_staff_later(filed: FiledReport) -> None:
    """Send an urgent report's alerts after the tipster has the code: a slow or dead mail
    server or Telegram never costs a code. What fails stays in the outbox for
    `python -m reports.jobs notify-pending`."""
    if filed.priority != "urgent":
        return

    async def send() -> None:
        try:
            await asyncio.to_thread(notify_report, engine(), filed.report_id, settings())
        except Exception as error:  # the alert stays pending: reports.jobs retries it
            logger.error("urgent alert failed (%s); left in the outbox", type(error).__name__)

    task = asyncio.ensure_future(send())
    ALERTS_IN_FLIGHT.add(task)
    task.add_done_callback(ALERTS_IN_FLIGHT.discard)


def discard_photos(sender: str) -> None:
    """Photos kept for a report that is not sent go with it (and are never stored longer)."""
    try:
        with transaction(engine()) as session:
            discard_kept_photos(session, sender, keys())
    except Exception:
        logger.exception("discarding kept photos failed; the purge removes them within a day")


def clear_report() -> list[EventType]:
    """Empty the form, and let the tracker store forget the conversation's words: the
    report now lives sealed in the reports database, and the code is shown only once."""
    return [*(SlotSet(slot, None) for slot in ALL_SLOTS), SlotSet("forget_history", True)]


class ActionSubmitReport(Action):
    """Files the report (or confirms the cancellation) and shows the case code once."""

    def name(self) -> str:
        return "action_submit_report"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if tracker.get_slot("report_cancelled"):
            await asyncio.to_thread(discard_photos, tracker.sender_id)
            dispatcher.utter_message(response="utter_report_cancelled")
            dispatcher.utter_message(response="utter_report_elsewhere")
            return clear_report()
        draft = draft_from(tracker, await asyncio.to_thread(trusted_metadata, tracker))
        if is_empty(draft):
            await asyncio.to_thread(discard_photos, tracker.sender_id)
            dispatcher.utter_message(response="utter_report_nothing_to_send")
            return clear_report()
        try:
            filed = await asyncio.to_thread(file, draft)
        except Exception:
            logger.exception("filing a report failed; the answers stay in the conversation")
            metrics.REPORTS_FAILED.inc()
            dispatcher.utter_message(response="utter_report_failed")
            return [SlotSet("report_confirm", None), ActiveLoop(FORM), SlotSet("requested_slot", "report_confirm")]
        logger.info("report filed: priority=%s", filed.priority)
        metrics.REPORTS_FILED.labels(filed.priority if filed.priority in metrics.PRIORITIES else "other").inc()
        alert_staff_later(filed)
        dispatcher.utter_message(response="utter_report_filed", code=filed.code)
        dispatcher.utter_message(response="utter_report_filed_next")
        if filed.priority == "urgent" and draft.danger_now:
            dispatcher.utter_message(response="utter_report_filed_urgent")
            dispatcher.utter_message(response="utter_emergency")
        return clear_report()
