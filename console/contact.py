"""Contact back: a message sent to a tipster through their own channel, only when they
agreed to be contacted (the report holds their reply address sealed to the staff key).
The console opens the address with the private key just to send, through the gateway's
signed relay (the same `Relay` as the live hand-off). The message is also kept for the tipster to read
at follow-up with their code, and the sending is audited (never the text)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channels.base import DiscreetWords, Reply, SendError
from console import auth
from console.app import Console, console_of
from console.cases import CONTACT_MAX_CHARS as MAX_CHARS
from console.cases import _not_found, _report_id, _report_page, _target
from console.handoff import send_failure, words_to_leave_out
from console.labels import label
from console.pages import form_text
from console.relay import RelayUnavailable
from reports import service
from reports.db import transaction
from reports.models import Report, StaffAccount


def _contact(console: Console, report_id: str) -> tuple[str, str] | None:
    """The (channel, address) a consenting tipster gave, opened now; None without consent."""
    with transaction(console.engine) as session:
        report = session.get(Report, report_id)
        if report is None or not report.contact_consent:
            return None
        return console.open_address(report.contact_sealed)


def _exists(console: Console, report_id: str) -> bool:
    with transaction(console.engine) as session:
        return session.get(Report, report_id) is not None


@auth.requires("agent")
async def contact_submit(request: Request, account: StaffAccount) -> Response:
    report_id = _report_id(request)
    console = console_of(request)
    if report_id is None or not await run_in_threadpool(_exists, console, report_id):
        return _not_found(request)
    text = form_text(request, "contact_text", MAX_CHARS * 4).strip()
    kept = {"contact_text": text}
    if not text:
        return await _report_page(request, account, report_id, 400, kept, error=label("contact", "empty"))
    if len(text) > MAX_CHARS:
        error = label("contact", "too_long").format(n=len(text), limit=MAX_CHARS)
        return await _report_page(request, account, report_id, 400, kept, error=error)
    relay = console.relay() if console.relay is not None else None
    if relay is None:
        return await _report_page(request, account, report_id, 503, kept, error=label("contact", "no_gateway"))
    contact = await run_in_threadpool(_contact, console, report_id)
    if contact is None:
        return await _report_page(request, account, report_id, 409, kept, error=label("contact", "no_consent"))
    try:
        path = await relay.send_to(contact[0], contact[1], [Reply(text)])
    except DiscreetWords:
        refused = label("contact", "discreet_words").format(words=words_to_leave_out(text))
        return await _report_page(request, account, report_id, 409, kept, error=refused)
    except SendError as error:
        await run_in_threadpool(_audit_failure, console, account, report_id, error.code)
        failed = send_failure("contact", error.code)
        return await _report_page(request, account, report_id, 502, kept, error=failed)
    except RelayUnavailable:
        return await _report_page(request, account, report_id, 503, kept, error=label("contact", "no_gateway"))

    def keep() -> None:
        now = console.now()
        detail = label("channel_send", "paths", path) if path != "direct" else None
        with transaction(console.engine) as session:
            keys = console.report_keys()[0]
            service.leave_message_for_tipster(session, report_id, text, account.username, now, keys=keys)
            auth.record(
                session, "tipster_contacted", now, actor=account.username, target=_target(report_id), detail=detail
            )

    await run_in_threadpool(keep)
    sent = label("contact", f"sent_{path}") if path in ("template", "held") else label("contact", "sent")
    return await _report_page(request, account, report_id, 200, message=sent)


def _audit_failure(console: Console, account: StaffAccount, report_id: str, code: str) -> None:
    """A contact the channel refused (a WhatsApp template that does not exist...): audited."""
    auth.audit(
        console.engine,
        "tipster_contact_failed",
        console.now(),
        actor=account.username,
        target=_target(report_id),
        detail=code,
    )


def routes() -> list[Route]:
    return [Route("/casos/{report_id}/contactar", contact_submit, methods=["POST"], name="case_contact")]
