"""A fake Twilio REST API: a real HTTP server on 127.0.0.1 (ephemeral port, in a thread)
that records every request and answers POST /2010-04-01/Accounts/<sid>/Messages.json the
way Twilio does (201 with a JSON Message), or with the error it was told to give. DELETE of
a Message (/Messages/<sid>.json) or of one of its Media (/Messages/<sid>/Media/<sid>.json)
follows Twilio's rules: 204 and gone (a message takes its media with it); 404 (20404) for an
unknown SID; a message not in a final state refused with 20009 (the HTTP status of that
refusal is not documented; 409 here).

WhatsApp templates (Content API, https://www.twilio.com/docs/content/content-api-resources):
GET /v1/Content/<HX sid> answers a template added with `add_template` (404, 20404, for any
other), GET /v1/Content/<sid>/ApprovalRequests its WhatsApp approval. A Message with
ContentSid sends that template (21655 for an unknown one); a free-form Body to an address in
`window_closed` gets 63016 (outside WhatsApp's 24-hour window), as Twilio answers.

Strict: a request to no route above (or with a ContentSid and a Body together, or without
the account's credentials on the Content API) is answered 404 and also kept in `unexpected`;
tests assert it stays empty. Point GatewaySettings.twilio_api_url and
twilio_content_api_url at `fake.url`."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from re import fullmatch
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-" + "5e" * 8
TEMPLATE_SID = "HX" + "5a" * 16  # the approved WhatsApp template of the tests' settings

# The answers Twilio gives for the failures the channel maps (status, JSON body).
ANSWERS: dict[str, tuple[int, dict[str, object]]] = {
    "stopped": (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}),
    "blocked": (400, {"code": 63014, "message": "Channel message blocked by user action", "status": 400}),
    "window": (400, {"code": 63016, "message": "Outside the allowed window", "status": 400}),
    "invalid_to": (
        400,
        {"code": 21211, "message": "The 'To' number +50255501234 is not a valid phone number.", "status": 400},
    ),
    "auth": (401, {"code": 20003, "message": "Authenticate", "status": 401}),
    "throttled": (429, {"code": 20429, "message": "Too Many Requests", "status": 429}),
    "server_error": (500, {"code": 20500, "message": "Internal Server Error", "status": 500}),
}
NOT_FOUND = (404, {"code": 20404, "message": "The requested resource was not found", "status": 404})
INVALID_CONTENT = (400, {"code": 21655, "message": "The ContentSid is Invalid", "status": 400})
NOT_FINAL = (409, {"code": 20009, "message": "Cannot delete this resource before it is complete", "status": 409})
# https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
FINAL_STATUSES = frozenset({"received", "delivered", "undelivered", "failed", "read", "canceled"})


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    form: dict[str, list[str]]
    basic_auth: tuple[str, str] | None


class FakeTwilio:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.answer = "ok"  # "ok" or a key of ANSWERS, for every following request
        self.fail_after = 0  # answer "ok" to this many Messages requests before self.answer
        self._sids = (f"SM{n:032x}" for n in itertools.count(1))
        self._messages_seen = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.running = False
        self.media: dict[str, tuple[bytes, str]] = {}  # path -> (content, content type), served to GET with auth
        self.statuses: dict[str, str] = {}  # Message SID -> status, of every message Twilio keeps
        self.templates: dict[str, tuple[str, str]] = {}  # Content SID -> (body, WhatsApp approval status)
        self.window_closed: set[str] = set()  # "whatsapp:+..." addresses silent for 24 hours
        self.unexpected: list[Recorded] = []  # requests no route of Twilio's API would answer

    def add_template(self, sid: str, body: str, status: str = "approved") -> None:
        """A Content API template (twilio/text) and its WhatsApp approval status
        ("approved", "pending", "rejected", "unsubmitted"...)."""
        self.templates[sid] = (body, status)

    def templates_sent(self, to: str) -> list[str]:
        """The ContentSids of the messages sent to `to`, in order."""
        return [
            r.form["ContentSid"][0]
            for r in self.requests
            if r.method == "POST" and r.form.get("To") == [to] and "ContentSid" in r.form
        ]

    def add_media(self, content: bytes, content_type: str, message_sid: str | None = None) -> str:
        """A media file as Twilio hosts an inbound message's media; returns its public URL
        (https://api.twilio.com/...), which the channel rewrites to this server."""
        message_sid = message_sid or f"MM{len(self.media):032x}"
        self.statuses.setdefault(message_sid, "received")
        path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}/Media/ME{len(self.media):032x}"
        self.media[path] = (content, content_type)
        return "https://api.twilio.com" + path

    def add_inbound(self, message_sid: str) -> None:
        """A message a person sent: Twilio keeps it, "received" (final) at once."""
        self.statuses[message_sid] = "received"

    def kept(self) -> set[str]:
        """What Twilio still keeps: message SIDs and media SIDs."""
        with self._lock:
            media = {path.rsplit("/", 1)[1] for path in self.media}
            return set(self.statuses) | media

    def messages_path(self, account_sid: str = ACCOUNT_SID) -> str:
        return f"/2010-04-01/Accounts/{account_sid}/Messages.json"

    def start(self) -> None:
        self._thread.start()
        self.running = True

    def down(self) -> None:
        """Stop answering: the port is closed, a request gets "connection refused"."""
        if self.running:
            self._server.shutdown()
            self.running = False
        self._server.server_close()

    def _delete(self, path: str) -> tuple[int, dict[str, object]]:
        found = fullmatch(r"/2010-04-01/Accounts/(\w+)/Messages/(\w+)(?:/Media/(\w+))?\.json", path)
        if not found:
            return NOT_FOUND
        with self._lock:
            message_sid, media_sid = found.group(2), found.group(3)
            media_prefix = f"/2010-04-01/Accounts/{found.group(1)}/Messages/{message_sid}/Media/"
            if media_sid:
                return (204, {}) if self.media.pop(media_prefix + media_sid, None) else NOT_FOUND
            status = self.statuses.get(message_sid)
            if status is None:
                return NOT_FOUND
            if status not in FINAL_STATUSES:
                return NOT_FINAL
            del self.statuses[message_sid]
            for media_path in [p for p in self.media if p.startswith(media_prefix)]:
                del self.media[media_path]  # deleting a message deletes its media (since October 2020)
            return 204, {}

    def _get(self, path: str, authorized: bool) -> tuple[int, dict[str, object]] | None:
        """GET of media no longer kept (404), or /v1/Content/<sid>[/ApprovalRequests]; None
        for any other path."""
        if fullmatch(r"/2010-04-01/Accounts/\w+/Messages/\w+/Media/\w+", path):
            return NOT_FOUND
        found = fullmatch(r"/v1/Content/(\w+)(/ApprovalRequests)?", path)
        if not found or not authorized:
            return None
        sid = found.group(1)
        with self._lock:
            template = self.templates.get(sid)
        if template is None:
            return NOT_FOUND
        url = f"https://content.twilio.com/v1/Content/{sid}"
        if found.group(2):
            return 200, {
                "account_sid": ACCOUNT_SID,
                "sid": sid,
                "url": url + "/ApprovalRequests",
                "whatsapp": {
                    "type": "whatsapp",
                    "name": "mensaje_nuevo",
                    "category": "UTILITY",
                    "content_type": "twilio/text",
                    "status": template[1],
                    "rejection_reason": "",
                    "allow_category_change": True,
                },
            }
        return 200, {
            "account_sid": ACCOUNT_SID,
            "sid": sid,
            "friendly_name": "mensaje_nuevo",
            "language": "es",
            "variables": {},
            "types": {"twilio/text": {"body": template[0]}},
            "url": url,
            "links": {"approval_fetch": url + "/ApprovalRequests"},
        }

    def _reply(self, path: str, form: dict[str, list[str]]) -> tuple[int, dict[str, object]] | None:
        """POST .../Messages.json; None for any other path or a request Twilio refuses outright."""
        if not (path.startswith("/2010-04-01/Accounts/") and path.endswith("/Messages.json")):
            return None
        content_sid = form.get("ContentSid", [None])[0]
        if content_sid is not None and "Body" in form:
            return None  # a template is sent without a Body
        with self._lock:
            index, self._messages_seen = self._messages_seen, self._messages_seen + 1
            if self.answer != "ok" and index >= self.fail_after:
                return ANSWERS[self.answer]
            if content_sid is not None and content_sid not in self.templates:
                return INVALID_CONTENT
            if content_sid is None and form.get("To", [""])[0] in self.window_closed:
                return ANSWERS["window"]
            sid = next(self._sids)
            self.statuses[sid] = "queued"
        account = path.split("/")[3]
        return 201, {
            "sid": sid,
            "account_sid": account,
            "to": form.get("To", [""])[0],
            "from": form.get("From", [None])[0],
            "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
            "body": form.get("Body", [""])[0] if content_sid is None else self.templates[content_sid][0],
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"{path[:-5]}/{sid}.json",
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._answer()

            def do_GET(self) -> None:
                self._answer()

            def do_DELETE(self) -> None:
                self._answer()

            def _answer(self) -> None:
                if self.command == "GET" and self.path in fake.media:
                    self._media()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                form = parse_qs(raw, keep_blank_values=True)
                with fake._lock:
                    fake.requests.append(Recorded(self.command, self.path, form, _basic_auth(self.headers)))
                authorized = _basic_auth(self.headers) == (ACCOUNT_SID, AUTH_TOKEN)
                answer: tuple[int, dict[str, object]] | None
                if self.command == "DELETE":
                    answer = fake._delete(self.path) if authorized else ANSWERS["auth"]
                elif self.command == "GET":
                    answer = fake._get(self.path, authorized)
                else:
                    answer = fake._reply(self.path, form)
                if answer is None:
                    with fake._lock:
                        fake.unexpected.append(fake.requests[-1])
                    answer = NOT_FOUND
                status, payload = answer
                if status == 204:
                    self.send_response(204)
                    self.end_headers()
                    return
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _media(self) -> None:
                with fake._lock:
                    fake.requests.append(Recorded(self.command, self.path, {}, _basic_auth(self.headers)))
                if _basic_auth(self.headers) != (ACCOUNT_SID, AUTH_TOKEN):
                    self.send_response(401)
                    self.end_headers()
                    return
                content, content_type = fake.media[self.path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test asserts on `requests`

        return Handler


def _basic_auth(headers: Message) -> tuple[str, str] | None:
    value = headers.get("Authorization")
    if not isinstance(value, str) or not value.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(value[6:]).decode("utf-8").partition(":")
    return user, password


@contextmanager
def running_fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    fake.start()
    try:
        yield fake
    finally:
        fake.down()
