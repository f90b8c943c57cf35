"""Live hand-off in the console: the list of conversations where a person asked for a human
(or the assistant failed twice), taking one over (Rasa is paused with its own `pause`
event), writing to the person through their channel, and handing the conversation back
(`resume`). The gateway does the talking to Rasa and the channels (the `Relay`); the
console opens the sealed reply address and messages with the staff private key.

Every take, message and hand-back is audited (never the text). A page polls the
conversation every few seconds (console/static/handoff.js); those polls do not count as
activity for the session's idle expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from channels.base import DiscreetWords, Reply, SendError
from console import auth
from console.app import Console, console_of, redirect_to
from console.labels import console_labels, label
from console.pages import form_text, not_found
from console.relay import RelayUnavailable
from hotline.discreet import sensitive_words_in
from reports import crypto, handoffs
from reports.db import transaction
from reports.models import DiscreetConversation, Handoff, HandoffMessage, StaffAccount

CLOSED_SHOWN = 20
POLL_SECONDS = 3
DONE = ("taken", "sent", "sent_session", "sent_template", "sent_held", "returned")  # ?hecho= on the page


class Relay(Protocol):
    """What the gateway does for the console, over its signed relay (console/relay.py
    GatewayRelay). RelayUnavailable: the gateway did not take the call."""

    async def pause(self, pseudonym: str) -> None: ...

    async def resume(self, pseudonym: str) -> None: ...

    async def send_to(self, channel: str, address: str, replies: list[Reply]) -> str:
        """The path the message took (channels.core.SEND_PATHS)."""
        ...

    async def history(self, pseudonym: str, limit: int = 12) -> list[tuple[bool, str]]: ...


def _target(handoff_id: int) -> str:
    return label("audit_log", "targets", "handoff").format(id=handoff_id)


@dataclass(frozen=True)
class Row:
    """One hand-off as the list shows it."""

    id: int
    state: str
    reason: str
    channel: str | None
    requested_at: datetime
    taken_at: datetime | None
    last_inbound_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    holder: str | None
    holder_id: int | None
    danger: bool
    can_reply: bool
    language: str | None  # the other language the person wrote (en, pt, fr, ht), None: Spanish


def _rows(session: Session, query: Any) -> list[Row]:
    names = {a.id: a.username for a in session.scalars(select(StaffAccount))}
    danger = set(session.scalars(select(HandoffMessage.handoff_id).where(HandoffMessage.danger.is_(True))))
    return [
        Row(
            id=h.id,
            state=h.state,
            reason=h.reason,
            channel=h.channel,
            requested_at=h.requested_at,
            taken_at=h.taken_at,
            last_inbound_at=h.last_inbound_at,
            closed_at=h.closed_at,
            close_reason=h.close_reason,
            holder=names.get(h.staff_id) if h.staff_id else None,
            holder_id=h.staff_id,
            danger=h.id in danger,
            can_reply=h.reply_sealed is not None,
            language=h.language,
        )
        for h in session.scalars(query)
    ]


def handoff_lists(session: Session) -> dict[str, list[Row]]:
    """Waiting (oldest first: they have waited longest), live, and the last closed ones."""
    return {
        "waiting": _rows(session, select(Handoff).where(Handoff.state == "waiting").order_by(Handoff.requested_at)),
        "live": _rows(session, select(Handoff).where(Handoff.state == "live").order_by(Handoff.taken_at)),
        "closed": _rows(
            session,
            select(Handoff).where(Handoff.state == "closed").order_by(Handoff.closed_at.desc()).limit(CLOSED_SHOWN),
        ),
    }


def _relay(console: Console) -> Relay | None:
    return console.relay() if console.relay is not None else None


def _handoff_id(request: Request) -> int:
    return int(request.path_params["handoff_id"])


def _messages(session: Session, handoff_id: int, private_key: PrivateKey) -> list[dict[str, Any]]:
    names = {a.id: a.username for a in session.scalars(select(StaffAccount))}
    shown = []
    for m in session.scalars(
        select(HandoffMessage).where(HandoffMessage.handoff_id == handoff_id).order_by(HandoffMessage.id)
    ):
        try:
            text = crypto.unseal_text(private_key, m.sealed_body)
        except crypto.SealError:
            text = label("handoff", "unreadable")
        author = label("handoff", "person") if m.inbound else names.get(m.staff_id or -1, label("common", "none"))
        shown.append(
            {"at": m.at, "inbound": m.inbound, "author": author, "text": text, "danger": m.danger, "path": m.path}
        )
    return shown


def _row(session: Session, handoff_id: int) -> Row | None:
    found = _rows(session, select(Handoff).where(Handoff.id == handoff_id))
    return found[0] if found else None


def _may_see(account: StaffAccount, row: Row) -> bool:
    """Agents see what waits and what they hold; supervisors see everything."""
    return row.state == "waiting" or row.holder_id == account.id or auth.has_role(account.role, "supervisor")


def _not_found(request: Request) -> Response:
    return not_found(request, label("handoff", "not_found"), label("handoff", "not_found_title"))


def _unavailable(request: Request, text: str) -> Response:
    return console_of(request).error(request, 503, label("handoff", "unavailable_title"), text)


# -- pages ------------------------------------------------------------------------------------


@auth.requires("agent")
async def list_page(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)

    def read() -> dict[str, list[Row]]:
        with transaction(console.engine) as session:
            return handoff_lists(session)

    lists = await run_in_threadpool(read)
    return console.render(
        request, "handoffs.html", account=account, lists=lists, labels=console_labels()["handoff"], now=console.now()
    )


async def _page(
    request: Request, account: StaffAccount, handoff_id: int, status: int = 200, draft: str = "", **context: Any
) -> Response:
    console = console_of(request)
    private_key = await run_in_threadpool(console.private_key)
    if private_key is None:
        return _unavailable(request, label("handoff", "no_key"))

    def read() -> tuple[Row | None, str, list[dict[str, Any]], bool]:
        with transaction(console.engine) as session:
            handoff = session.get(Handoff, handoff_id)
            row = _row(session, handoff_id)
            if handoff is None or row is None or not _may_see(account, row):
                return row, "", [], False
            auth.record(session, "handoff_viewed", console.now(), actor=account.username, target=_target(handoff_id))
            discreet = session.get(DiscreetConversation, handoff.conversation_id) is not None
            return row, handoff.conversation_id, _messages(session, handoff_id, private_key), discreet

    row, conversation_id, messages, discreet = await run_in_threadpool(read)
    if row is None:
        return _not_found(request)
    if not _may_see(account, row):
        await run_in_threadpool(
            auth.audit, console.engine, "forbidden", console.now(), actor=account.username, target=request.url.path
        )
        return console.error(request, 403, label("handoff", "forbidden_title"), label("handoff", "forbidden"))
    relay = _relay(console)
    earlier = await relay.history(conversation_id) if relay is not None and row.state != "closed" else []
    return console.render(
        request,
        "handoff.html",
        status,
        account=account,
        row=row,
        state=row.state,
        messages=messages,
        earlier=earlier,
        discreet=discreet,
        draft=draft,
        mine=row.state == "live" and row.holder_id == account.id,
        supervisor=auth.has_role(account.role, "supervisor"),
        labels=console_labels()["handoff"],
        send_labels=console_labels()["channel_send"],
        max_chars=handoffs.MAX_MESSAGE_CHARS,
        poll_seconds=POLL_SECONDS,
        **context,
    )


@auth.requires("agent")
async def handoff_page(request: Request, account: StaffAccount) -> Response:
    done = request.query_params.get("hecho", "")
    message = label("handoff", f"done_{done}") if done in DONE else None
    return await _page(request, account, _handoff_id(request), message=message)


async def messages_fragment(request: Request) -> Response:
    """The messages only, for the page's poll: HTML escaped by the template, like the page.
    A poll is not activity: the session's idle clock is left where the last real request put it."""
    console = console_of(request)
    seen = request.session.get("seen")
    admitted = await console.admit(request, "agent")
    if seen is not None and "seen" in request.session:
        request.session["seen"] = seen
    if isinstance(admitted, Response):
        return admitted if admitted.status_code != 303 else HTMLResponse("", status_code=401)
    account = admitted
    private_key = await run_in_threadpool(console.private_key)
    if private_key is None:
        return HTMLResponse("", status_code=503)
    handoff_id = _handoff_id(request)

    def read() -> tuple[Row | None, list[dict[str, Any]]]:
        with transaction(console.engine) as session:
            row = _row(session, handoff_id)
            if row is None or not _may_see(account, row):
                return row, []
            return row, _messages(session, handoff_id, private_key)

    row, messages = await run_in_threadpool(read)
    if row is None or not _may_see(account, row):
        return HTMLResponse("", status_code=404)
    html = console.templates.get_template("handoff_messages.html").render(
        messages=messages,
        labels=console_labels()["handoff"],
        send_labels=console_labels()["channel_send"],
        state=row.state,
    )
    return HTMLResponse(html)


messages_fragment.required_role = "agent"  # type: ignore[attr-defined]  # checked by console.admit above


# -- actions ----------------------------------------------------------------------------------


def _address(console: Console, handoff_id: int) -> tuple[str, str] | None:
    """The person's (channel, address), opened with the private key only to send now."""
    with transaction(console.engine) as session:
        handoff = session.get(Handoff, handoff_id)
        return console.open_address(handoff.reply_sealed if handoff is not None else None)


async def _tell(console: Console, handoff_id: int, relay: Relay, text: str) -> tuple[str | None, str, str]:
    """Send one text to the person: (None, path, "") when sent, else (the reason for staff,
    "", the gateway's error code for the audit log)."""
    address = await run_in_threadpool(_address, console, handoff_id)
    if address is None:
        return label("handoff", "no_address"), "", "no_address"
    try:
        path = await relay.send_to(address[0], address[1], [Reply(text)])
    except DiscreetWords as error:
        return label("handoff", "discreet_words").format(words=words_to_leave_out(text)), "", error.code
    except SendError as error:
        return send_failure("handoff", error.code), "", error.code
    except RelayUnavailable:
        return label("handoff", "no_gateway"), "", "no_gateway"
    return None, path, ""


def send_failure(section: str, code: str) -> str:
    """Why the channel did not take a message, in Spanish (content/console.yml channel_send),
    inside the section's own "not sent" sentence."""
    reasons = console_labels()["channel_send"]["failures"]
    return label(section, "send_failed").format(reason=reasons.get(code, reasons["send_error"]), code=code)


def words_to_leave_out(text: str) -> str:
    """The sensitive words of a staff text, as staff wrote them, for the refusal's label."""
    return ", ".join(dict.fromkeys(sensitive_words_in(text)))


def _back(request: Request, handoff_id: int, done: str) -> Response:
    return redirect_to(request, "handoff", query={"hecho": done}, handoff_id=handoff_id)


@auth.requires("agent")
async def take_submit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    handoff_id = _handoff_id(request)
    relay = _relay(console)
    if relay is None:
        return _unavailable(request, label("handoff", "no_gateway"))
    override = auth.has_role(account.role, "supervisor") and request.state.form.get("override") == "1"

    def current() -> tuple[str, str, int | None] | None:
        with transaction(console.engine) as session:
            handoff = session.get(Handoff, handoff_id)
            if handoff is None or handoff.state == "closed":
                return None
            return handoff.conversation_id, handoff.state, handoff.staff_id

    found = await run_in_threadpool(current)
    if found is None:
        return _not_found(request)
    conversation_id, state, holder = found
    if state == "live" and holder != account.id and not override:
        return await _page(request, account, handoff_id, 409, error=label("handoff", "taken_by_other"))
    try:
        await relay.pause(conversation_id)
    except RelayUnavailable:
        return _unavailable(request, label("handoff", "no_gateway"))
    except Exception:
        return _unavailable(request, label("handoff", "rasa_unavailable"))

    def take() -> None:
        with transaction(console.engine) as session:
            handoffs.take(session, handoff_id, account.id, console.now(), override=override)
            detail = label("audit_log", "handoff_override") if override and holder not in (None, account.id) else None
            auth.record(
                session,
                "handoff_taken",
                console.now(),
                actor=account.username,
                target=_target(handoff_id),
                detail=detail,
            )

    try:
        await run_in_threadpool(take)
    except handoffs.HandoffNotFound:
        return _not_found(request)
    except handoffs.HandoffTaken:
        return await _page(request, account, handoff_id, 409, error=label("handoff", "taken_by_other"))
    if state == "waiting":
        problem, _, _ = await _tell(console, handoff_id, relay, label_for_person("handoff_started"))
        if problem:
            return await _page(request, account, handoff_id, 200, error=problem)
    return _back(request, handoff_id, "taken")


def label_for_person(key: str) -> str:
    """What the person reads is the gateway's content (content/gateway.yml)."""
    from channels.core import gateway_text

    return gateway_text(key)


def _holder_check(console: Console, handoff_id: int, account: StaffAccount) -> str | None:
    """None when this account may write in or hand back the conversation, else why not."""
    with transaction(console.engine) as session:
        handoff = session.get(Handoff, handoff_id)
        if handoff is None or handoff.state == "closed":
            return "not_found"
        if handoff.state != "live":
            return "not_taken"
        if handoff.staff_id != account.id and not auth.has_role(account.role, "supervisor"):
            return "forbidden"
        return None


async def _refuse(request: Request, account: StaffAccount, handoff_id: int, why: str, draft: str = "") -> Response:
    console = console_of(request)
    if why == "not_found":
        return _not_found(request)
    if why == "forbidden":
        await run_in_threadpool(
            auth.audit, console.engine, "forbidden", console.now(), actor=account.username, target=request.url.path
        )
        return console.error(request, 403, label("handoff", "forbidden_title"), label("handoff", "not_holder"))
    return await _page(request, account, handoff_id, 409, draft=draft, error=label("handoff", "take_first"))


@auth.requires("agent")
async def send_submit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    handoff_id = _handoff_id(request)
    text = form_text(request, "text", handoffs.MAX_MESSAGE_CHARS * 4)
    why = await run_in_threadpool(_holder_check, console, handoff_id, account)
    if why:
        return await _refuse(request, account, handoff_id, why, text)
    if not text.strip():
        return await _page(request, account, handoff_id, 400, error=label("handoff", "empty"))
    if len(text) > handoffs.MAX_MESSAGE_CHARS:
        error = label("handoff", "too_long").format(n=len(text), limit=handoffs.MAX_MESSAGE_CHARS)
        return await _page(request, account, handoff_id, 400, draft=text, error=error)
    relay = _relay(console)
    if relay is None:
        return _unavailable(request, label("handoff", "no_gateway"))
    problem, path, code = await _tell(console, handoff_id, relay, text.strip())
    if problem:
        await run_in_threadpool(
            auth.audit,
            console.engine,
            "handoff_message_failed",
            console.now(),
            actor=account.username,
            target=_target(handoff_id),
            detail=code,
        )
        return await _page(request, account, handoff_id, 502, draft=text, error=problem)

    def keep() -> None:
        with transaction(console.engine) as session:
            keys = console.report_keys()[0]
            handoffs.record_outbound(session, handoff_id, account.id, text.strip(), keys, console.now(), path=path)
            auth.record(
                session,
                "handoff_message",
                console.now(),
                actor=account.username,
                target=_target(handoff_id),
                detail=label("channel_send", "paths", path) if path != "direct" else None,
            )

    await run_in_threadpool(keep)
    return _back(request, handoff_id, "sent" if path == "direct" else f"sent_{path}")


@auth.requires("agent")
async def return_submit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    handoff_id = _handoff_id(request)
    why = await run_in_threadpool(_holder_check, console, handoff_id, account)
    if why:
        return await _refuse(request, account, handoff_id, why)
    relay = _relay(console)
    if relay is None:
        return _unavailable(request, label("handoff", "no_gateway"))

    def conversation() -> str:
        with transaction(console.engine) as session:
            handoff = session.get(Handoff, handoff_id)
            return handoff.conversation_id if handoff else ""

    try:
        await relay.resume(await run_in_threadpool(conversation))
    except RelayUnavailable:
        return _unavailable(request, label("handoff", "no_gateway"))
    except Exception:
        return _unavailable(request, label("handoff", "rasa_unavailable"))
    problem, _, _ = await _tell(console, handoff_id, relay, label_for_person("handoff_ended"))

    def close() -> None:
        with transaction(console.engine) as session:
            handoffs.close(session, handoff_id, "returned", console.now())
            auth.record(
                session,
                "handoff_returned",
                console.now(),
                actor=account.username,
                target=_target(handoff_id),
                detail=label("audit_log", "handoff_untold") if problem else None,
            )

    try:
        await run_in_threadpool(close)
    except handoffs.HandoffNotFound:
        return _not_found(request)
    return _back(request, handoff_id, "returned")


def routes() -> list[Route]:
    return [
        Route("/conversaciones", list_page, methods=["GET"], name="handoffs"),
        Route("/conversaciones/{handoff_id:int}", handoff_page, methods=["GET"], name="handoff"),
        Route("/conversaciones/{handoff_id:int}/mensajes", messages_fragment, methods=["GET"], name="handoff_messages"),
        Route("/conversaciones/{handoff_id:int}/atender", take_submit, methods=["POST"], name="handoff_take"),
        Route("/conversaciones/{handoff_id:int}/enviar", send_submit, methods=["POST"], name="handoff_send"),
        Route("/conversaciones/{handoff_id:int}/devolver", return_submit, methods=["POST"], name="handoff_return"),
    ]
