"""Twilio SMS and WhatsApp: one module, two channels that differ only by the address prefix
("whatsapp:+502...") and by rendering (SMS folded to GSM-7 and cut in parts of two segments;
WhatsApp as written). The webhook answer carries the replies as TwiML; `send` uses Twilio's
REST API for late answers. Addresses and texts are never logged, only message SIDs.

Behind a reverse proxy: Twilio signs the URL it calls, which is the public one. The signature
is checked against settings.public_url + the request's path and query string, never against
the URL uvicorn sees (http://127.0.0.1:8000/...). The proxy must keep the path as Twilio sent
it; a proxy that strips a prefix needs that prefix in HOTLINE_PUBLIC_URL
(https://example.org/hotline when it forwards /hotline/webhooks/... as /webhooks/...).

Twilio's copies: Twilio keeps every message (and its media) in its message log until it is
deleted. The channel notes the SIDs of each message it answered (and its media), of the
replies it sent by the REST API, and of the replies sent as TwiML (each <Message> asks for
status callbacks at the webhook URL, which carry the reply's SID); channels/provider_cleanup.py
stores them and deletes each through Twilio's API once Twilio allows it. Nothing is written
while answering: the SIDs wait in memory until the gateway's background work stores them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import requests
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from channels.base import (
    BadRequest,
    ConfigError,
    ConnectionFailed,
    ContactStopped,
    Endpoint,
    InboundMessage,
    InvalidSignature,
    Media,
    OutsideWindow,
    ProviderRejected,
    Reply,
    SendError,
    SendResult,
    TemplateRefused,
    Throttled,
)
from channels.config import GatewaySettings
from channels.media import MAX_DOWNLOAD_BYTES
from channels.provider_cleanup import DELETED, FAILED, GONE, NOT_READY, Record
from channels.sms_split import TWILIO_MAX_CHARS, split_sms, split_text
from hotline.discreet import sensitive_words_in
from hotline.sms import to_gsm7

logger = logging.getLogger("channels.twilio")

SMS = "sms"
WHATSAPP = "whatsapp"
WHATSAPP_PREFIX = "whatsapp:"
ADDRESS_PREFIXES: Mapping[str, str] = {SMS: "", WHATSAPP: WHATSAPP_PREFIX}  # channel -> prefix of its addresses
WEBHOOK_PATHS: Mapping[str, str] = {SMS: "/webhooks/twilio/sms", WHATSAPP: "/webhooks/twilio/whatsapp"}

TWILIO_API_URL = "https://api.twilio.com"
SIGNATURE_HEADER = "x-twilio-signature"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 64 * 1024  # the app limits bodies already; a second guard here
MAX_FORM_FIELDS = 200
MAX_MEDIA = 10  # Twilio delivers at most 10 media per message
MAX_ID_CHARS = 64
SEND_TIMEOUT_SECONDS = 10.0

# https://www.twilio.com/docs/messaging/api/message-resource#message-status-values: a person's
# message arrives "received"; any other status (sent, delivered, failed, undelivered, read...)
# is a status callback about a message we sent.
INBOUND_STATUSES = frozenset({"received", "receiving"})
# 21610: the person texted STOP (unsubscribed recipient). 63014: the person blocked the sender
# (WhatsApp). Both: never send again. Not 63016 (outside WhatsApp's 24-hour window): the person
# did not opt out, a template or their next message reopens the window -> ProviderRejected.
STOPPED_CODES = frozenset({21610, 63014})
OUTSIDE_WINDOW_CODE = 63016  # https://www.twilio.com/docs/api/errors/63016: a template is required
INVALID_CONTENT_CODE = 21655  # https://www.twilio.com/docs/api/errors/21655: the ContentSid is invalid
# WhatsApp's customer service window: free-form messages only within 24 hours of the person's
# last message; after that only an approved template (sent with ContentSid).
WHATSAPP_WINDOW = timedelta(hours=24)
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
THROTTLED_CODES = frozenset({20429, 63018})  # too many requests; channel rate limit exceeded
AUTH_FAILED_CODE = 20003
NOT_FINAL_CODE = 20009  # https://www.twilio.com/docs/api/errors/20009: not deletable yet
MAX_KEPT_RECORDS = 10_000  # SIDs waiting in memory for the database (it is down): the oldest go
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")  # Twilio SIDs: two letters and 32 hex digits
_MEDIA_SIDS = re.compile(r"/Messages/([A-Za-z0-9]+)/Media/([A-Za-z0-9]+)$")

# Twilio's library would read TWILIO_EDGE / TWILIO_REGION from os.environ and change the API
# host; the host is HOTLINE_TWILIO_API_URL only (tests must never reach the real API).
_NO_ENVIRONMENT: Mapping[str, str] = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}
_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{4,}\d")


@dataclass(frozen=True)
class _Sender:
    """How the hotline sends on this channel: a number (from_) or a Messaging Service SID."""

    account_sid: str
    auth_token: str
    from_: str | None
    messaging_service_sid: str | None


class _ApiHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type information
    """Twilio's HTTP client with the API host taken from the settings (tests point it at a
    local fake) and with its request logging kept quiet."""

    def __init__(self, api_url: str) -> None:
        super().__init__(pool_connections=True, timeout=SEND_TIMEOUT_SECONDS)
        self.api_url = api_url.rstrip("/")

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> object:
        if url.startswith(TWILIO_API_URL):
            url = self.api_url + url[len(TWILIO_API_URL) :]
        return super().request(method, url, *args, **kwargs)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


class TwilioChannel:
    """The ChannelAdapter of Twilio SMS (`TwilioChannel("sms", settings)`) and WhatsApp
    (`TwilioChannel("whatsapp", settings)`)."""

    answers_in_webhook = True  # TwiML
    keeps_message_ids = False  # Twilio's copies are deleted instead (channels/provider_cleanup.py)

    def __init__(self, name: str, settings: GatewaySettings) -> None:
        if name not in ADDRESS_PREFIXES:
            raise ValueError(f"unknown Twilio channel {name!r}")
        self.name = name
        self.prefix = ADDRESS_PREFIXES[name]
        self.settings = settings
        self._records: list[Record] = []  # Twilio SIDs to delete, until stored by provider_cleanup
        # WhatsApp only: how long after the person's last message a free-form message may go
        # (channels/core.py sends a template after that); SMS has no window.
        self.session_window: timedelta | None = WHATSAPP_WINDOW if name == WHATSAPP else None
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # it logs URLs and headers

    def routes(self, webhook: Endpoint) -> list[Route]:
        return [Route(f"/webhooks/twilio/{self.name}", webhook, methods=["POST"])]

    # -- inbound -------------------------------------------------------------------------

    async def verify(self, request: Request, body: bytes) -> None:
        """https://www.twilio.com/docs/usage/webhooks/webhooks-security: HMAC-SHA1 of the
        public URL and the sorted form fields, compared in constant time by twilio's validator."""
        token = self.settings.twilio_auth_token
        if not token:
            raise InvalidSignature("no Twilio auth token configured")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise InvalidSignature("missing signature")
        params = _form_fields(body) if _is_form(request) and len(body) <= MAX_BODY_BYTES else []
        if not RequestValidator(token).validate(self.public_url(request), _MultiValues(params), signature):
            raise InvalidSignature("signature does not match")

    def public_url(self, request: Request) -> str:
        """The URL Twilio called: the public URL, the path and the query string as received."""
        query = request.url.query
        return self.settings.public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")

    async def parse_inbound(self, request: Request, body: bytes) -> list[InboundMessage]:
        """https://www.twilio.com/docs/messaging/guides/webhook-request: a message, or a status
        callback about one of ours ([]). Only the fields below are read (never ProfileName, WaId)."""
        if not _is_form(request):
            raise BadRequest("form-encoded body expected")
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest("body too large")
        form: dict[str, str] = {}
        for key, value in _form_fields(body):
            form.setdefault(key, value)
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if status and status not in INBOUND_STATUSES:
            self._note(form.get("MessageSid") or form.get("SmsSid") or "")  # one of our replies
            logger.info(
                "status callback channel=%s sid=%s status=%s error=%s",
                self.name,
                _safe_id(form.get("MessageSid") or form.get("SmsSid")),
                _safe_id(status),
                _safe_id(form.get("ErrorCode")) or "-",
            )
            return []
        address = form.get("From", "").strip()
        delivery_id = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
        if not address or not delivery_id:
            raise BadRequest("From and MessageSid expected")
        if len(address) > MAX_ID_CHARS or len(delivery_id) > MAX_ID_CHARS:
            raise BadRequest("From or MessageSid too long")
        if not self.owns(address):
            raise BadRequest(f"the sender is not a {self.name} address")
        text = form.get("Body", "")
        if self.name == WHATSAPP and not text.strip():
            text = form.get("ButtonPayload") or form.get("ButtonText") or text  # a quick-reply button
        return [InboundMessage(self.name, address, text, delivery_id=delivery_id, media=_media(form))]

    def owns(self, address: str) -> bool:
        """True for an address of this channel: "whatsapp:+502..." on WhatsApp, a number
        (or short code) without any "scheme:" on SMS."""
        if self.prefix:
            return address.startswith(self.prefix) and len(address) > len(self.prefix)
        return ":" not in address

    # -- outbound ------------------------------------------------------------------------

    def parts(self, replies: list[Reply]) -> list[str]:
        """The message bodies for replies: SMS folded to GSM-7 and cut at two segments a part;
        WhatsApp as written, cut only past Twilio's 1600 characters."""
        bodies: list[str] = []
        for reply in replies:
            if self.name == SMS:
                bodies.extend(split_sms(to_gsm7(reply.text)))
            else:
                bodies.extend(split_text(reply.text, TWILIO_MAX_CHARS))
        return bodies

    def render(self, inbound: InboundMessage | None, replies: list[Reply]) -> Response:
        """https://www.twilio.com/docs/messaging/twiml: one <Message> per part; <Response/>
        without replies (a status callback, a duplicate). The message answered (and its
        media) is noted for deletion; each <Message>'s `action` asks Twilio for status
        callbacks at this channel's webhook, which tell the reply's SID."""
        if inbound is not None and self.owns(inbound.address):
            self._note(inbound.delivery_id, *(_media_sid(media.url, inbound.delivery_id) for media in inbound.media))
        twiml = MessagingResponse()
        action = self.settings.public_url.rstrip("/") + WEBHOOK_PATHS[self.name]
        for body in self.parts(replies):
            twiml.message(body, action=action, method="POST")
        return Response(str(twiml), media_type="application/xml")

    async def send(self, address: str, replies: list[Reply]) -> SendResult:
        """https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource:
        one Message per part, in order; the SIDs in SendResult.provider_ids. A failure stops the
        sending (the parts before it are sent) and raises a SendError."""
        sender = self._sender()
        if not self.owns(address):
            raise ProviderRejected("invalid_address", f"not a {self.name} address")
        bodies = self.parts(replies)
        if not bodies:
            return SendResult()
        sids = await asyncio.to_thread(self._send_sync, sender, address, [{"body": body} for body in bodies])
        self._note(*sids)
        logger.info("sent channel=%s parts=%d sids=%s", self.name, len(sids), ",".join(sids))
        return SendResult(provider_ids=tuple(sids))

    async def send_template(self, address: str) -> SendResult:
        """https://www.twilio.com/docs/content/send-templates-created-with-the-content-template-builder:
        the approved template of the settings (ContentSid, no variables: it carries nothing of
        the person or the staff text), for a person outside WhatsApp's 24-hour window. The
        template is checked first (check_template)."""
        sender = self._sender()
        if self.session_window is None:
            raise ConfigError(f"no templates on {self.name}")
        if not self.owns(address):
            raise ProviderRejected("invalid_address", f"not a {self.name} address")
        content_sid = await self.check_template()
        sids = await asyncio.to_thread(self._send_sync, sender, address, [{"content_sid": content_sid}])
        self._note(*sids)
        logger.info("template sent channel=%s sids=%s", self.name, ",".join(sids))
        return SendResult(provider_ids=tuple(sids))

    async def check_template(self) -> str:
        """The template's SID once Twilio's Content API says it exists
        (GET /v1/Content/{sid}), WhatsApp approved it (GET /v1/Content/{sid}/ApprovalRequests)
        and its words are all fit for a watched phone (content/discreet.yml). Raises
        TemplateRefused saying which. Asked before every template (templates are rare: one
        per silent person), so that a template WhatsApp paused or rejected meanwhile is never
        sent; the gateway also asks once at start (channels/app.py) to log a bad setting."""
        sid = self.settings.twilio_whatsapp_template_sid
        if not sid:
            raise TemplateRefused("template_missing", "TWILIO_WHATSAPP_TEMPLATE_SID is not set")
        if not _CONTENT_SID.match(sid):
            raise TemplateRefused("template_unknown", "not a Content SID (HX and 32 hex digits)")
        content = await self._content_api(f"/v1/Content/{sid}")
        if content is None:
            raise TemplateRefused("template_unknown", "Twilio's Content API does not know it")
        found = sensitive_words_in(" ".join(_strings(content.get("types"))))
        if found:
            raise TemplateRefused("template_not_discreet", f"{len(found)} sensitive word(s)")
        approval = await self._content_api(f"/v1/Content/{sid}/ApprovalRequests") or {}
        whatsapp = approval.get("whatsapp")
        status = str(whatsapp.get("status", "")) if isinstance(whatsapp, dict) else ""
        if status.lower() != "approved":
            raise TemplateRefused("template_unapproved", f"WhatsApp status {_safe_id(status) or 'none'}")
        return sid

    async def _content_api(self, path: str) -> dict[str, Any] | None:
        """A GET on Twilio's Content API (account credentials); None on 404."""
        s = self.settings
        if not s.twilio_account_sid or not s.twilio_auth_token:
            raise ConfigError("Twilio credentials are not configured")
        try:
            async with httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS) as client:
                response = await client.get(
                    s.twilio_content_api_url + path, auth=(s.twilio_account_sid, s.twilio_auth_token)
                )
        except httpx.HTTPError:
            raise ConnectionFailed("Content API unreachable") from None
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise ConfigError("Twilio refused the credentials")
        if response.status_code == 429:
            raise Throttled("Content API HTTP 429")
        if response.status_code >= 500:
            raise ConnectionFailed(f"Content API HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise ProviderRejected(str(response.status_code), "Content API answer is not JSON") from None
        if response.status_code != 200 or not isinstance(data, dict):
            raise ProviderRejected(str(response.status_code), "Content API refused the request")
        return data

    def _sender(self) -> _Sender:
        s = self.settings
        origin = s.twilio_sms_from if self.name == SMS else s.twilio_whatsapp_from
        if not s.twilio_account_sid or not s.twilio_auth_token or not origin:
            raise ConfigError(f"Twilio credentials or the {self.name} sender are not configured")
        if origin.startswith("MG"):
            return _Sender(s.twilio_account_sid, s.twilio_auth_token, None, origin)
        if self.prefix and not origin.startswith(self.prefix):
            origin = self.prefix + origin  # TWILIO_WHATSAPP_FROM given as a bare number
        return _Sender(s.twilio_account_sid, s.twilio_auth_token, origin, None)

    def _send_sync(self, sender: _Sender, address: str, messages: list[dict[str, str]]) -> list[str]:
        """One Message per item ({"body": ...} or {"content_sid": ...}), in order."""
        http = _ApiHttpClient(self.settings.twilio_api_url)
        client = Client(sender.account_sid, sender.auth_token, http_client=http, environment=_NO_ENVIRONMENT)
        origin = {"from_": sender.from_} if sender.from_ else {"messaging_service_sid": sender.messaging_service_sid}
        sids: list[str] = []
        try:
            for content in messages:
                try:
                    message = client.messages.create(to=address, **content, **origin)
                except (TwilioException, requests.RequestException, ValueError) as error:
                    mapped = _send_error(error, address)
                    logger.warning("send failed channel=%s error=%s sent_before=%d", self.name, mapped.code, len(sids))
                    raise mapped from None  # the original carries the number in its text
                sids.append(str(message.sid))
        finally:
            http.close()
        return sids

    async def fetch_media(self, media: Media) -> bytes:
        """https://www.twilio.com/docs/messaging/api/media-resource: the media URL of an
        inbound message, read with the account's credentials (HTTP basic auth); Twilio
        redirects to the file, which we follow. At most MAX_DOWNLOAD_BYTES."""
        s = self.settings
        if not s.twilio_account_sid or not s.twilio_auth_token:
            raise ConfigError("Twilio credentials are not configured")
        if not media.url.startswith(TWILIO_API_URL + "/"):
            raise ProviderRejected("media_url", "not a Twilio media URL")
        url = s.twilio_api_url + media.url[len(TWILIO_API_URL) :]
        try:
            async with (
                httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS, follow_redirects=True) as client,
                client.stream("GET", url, auth=(s.twilio_account_sid, s.twilio_auth_token)) as response,
            ):
                if response.status_code != 200:
                    raise ProviderRejected(str(response.status_code), "media not available")
                content = b""
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > MAX_DOWNLOAD_BYTES:
                        raise ProviderRejected("too_large", "media over the size limit")
        except httpx.HTTPError:
            raise ConnectionFailed("media download failed") from None
        return content

    # -- Twilio's copies (channels/provider_cleanup.py) --------------------------------------

    def _note(self, message_sid: str, *media_sids: str) -> None:
        """Note a message (and media of it) for deletion; ids that are not SIDs are ignored."""
        if not _SID.match(message_sid or ""):
            return
        self._records.append((message_sid, ""))
        self._records.extend((message_sid, media) for media in media_sids if _SID.match(media or ""))
        del self._records[:-MAX_KEPT_RECORDS]

    def take_provider_records(self) -> list[Record]:
        taken, self._records = self._records, []
        return taken

    def put_back_provider_records(self, records: list[Record]) -> None:
        self._records[:0] = records
        del self._records[:-MAX_KEPT_RECORDS]

    async def delete_provider_record(self, message_id: str, media_id: str) -> str:
        """https://www.twilio.com/docs/messaging/api/message-resource#delete-a-message-resource
        (and .../Media/{sid}): DELETED on 204, GONE on 404, NOT_READY when Twilio refuses a
        message not final yet (20009), FAILED otherwise."""
        s = self.settings
        if not s.twilio_account_sid or not s.twilio_auth_token:
            return FAILED
        return await asyncio.to_thread(
            self._delete_sync, s.twilio_account_sid, s.twilio_auth_token, message_id, media_id
        )

    def _delete_sync(self, account_sid: str, auth_token: str, message_id: str, media_id: str) -> str:
        http = _ApiHttpClient(self.settings.twilio_api_url)
        client = Client(account_sid, auth_token, http_client=http, environment=_NO_ENVIRONMENT)
        try:
            message = client.messages(message_id)
            (message.media(media_id) if media_id else message).delete()
            return DELETED
        except TwilioRestException as error:
            if error.status == 404:
                return GONE
            return NOT_READY if error.code == NOT_FINAL_CODE else FAILED
        except (TwilioException, requests.RequestException, ValueError):
            return FAILED
        finally:
            http.close()

    async def delete_messages(self, address: str, message_ids: list[str]) -> int:
        """Nothing: an SMS or a WhatsApp message cannot be taken back from the phone. Twilio's
        own copies are deleted anyway, once answered (delete_provider_record)."""
        return 0


def twilio_channels(settings: GatewaySettings) -> dict[str, TwilioChannel]:
    """Both Twilio channels, for the registry: {"sms": ..., "whatsapp": ...}."""
    return {name: TwilioChannel(name, settings) for name in ADDRESS_PREFIXES}


# -- helpers -------------------------------------------------------------------------------


class _MultiValues:
    """The form as twilio's validator reads repeated fields (getall)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self.pairs))

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def getall(self, key: str) -> list[str]:
        return [value for k, value in self.pairs if k == key]


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_CONTENT_TYPE


def _form_fields(body: bytes) -> list[tuple[str, str]]:
    """The form's fields in order; bytes that are not UTF-8 become U+FFFD instead of an error."""
    try:
        return parse_qsl(
            body.decode("utf-8", "replace"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:
        raise BadRequest("too many form fields") from None


def _media(form: Mapping[str, str]) -> tuple[Media, ...]:
    try:
        count = int(form.get("NumMedia") or 0)
    except ValueError:
        raise BadRequest("NumMedia is not a number") from None
    media = []
    for n in range(max(0, min(count, MAX_MEDIA))):
        url = form.get(f"MediaUrl{n}", "").strip()
        if url:
            media.append(Media(url, form.get(f"MediaContentType{n}", "").strip()))
    return tuple(media)


def _media_sid(url: str, message_sid: str) -> str:
    """The Media SID in an inbound media URL (.../Messages/MM.../Media/ME...), when the URL
    belongs to this message; "" otherwise."""
    found = _MEDIA_SIDS.search(url)
    return found.group(2) if found and found.group(1) == message_sid else ""


def _safe_id(value: str | None) -> str:
    """An id fit for a log line: letters and digits only, at most 64."""
    return re.sub(r"[^A-Za-z0-9]", "", value or "")[:MAX_ID_CHARS]


def _send_error(error: Exception, address: str) -> SendError:
    """Twilio's answer as one of the typed send errors (their retry rules are in channels.base)."""
    if isinstance(error, requests.RequestException):
        return ConnectionFailed(type(error).__name__)
    status = getattr(error, "status", None)
    code = getattr(error, "code", None)
    if not isinstance(status, int):
        return ProviderRejected("unknown", type(error).__name__)
    if status >= 500:
        return ConnectionFailed(f"HTTP {status}")
    if status == 429 or code in THROTTLED_CODES:
        return Throttled(f"HTTP {status} code {code}")
    if code in STOPPED_CODES:
        return ContactStopped(f"code {code}")
    if code == OUTSIDE_WINDOW_CODE:
        return OutsideWindow(f"code {code}")
    if code == INVALID_CONTENT_CODE:
        return TemplateRefused("template_unknown", f"code {code}")
    if status == 401 or code == AUTH_FAILED_CODE:
        return ConfigError("Twilio refused the credentials")
    reason = str(getattr(error, "msg", None) or getattr(error, "detail", None) or getattr(error, "title", ""))
    return ProviderRejected(str(code or status), _redact(reason, address))


def _strings(value: object) -> list[str]:
    """Every string inside a JSON value (a template's texts, buttons and titles)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _redact(reason: str, address: str) -> str:
    """Twilio's error text without the number it may quote ("The 'To' number +502... is ...")."""
    number = address.removeprefix(WHATSAPP_PREFIX)
    if number:
        reason = reason.replace(number, "<number>")
    return _PHONE_LIKE.sub("<number>", reason)[:200]
