"""A fake Telegram Bot API: a real HTTP server on 127.0.0.1 (ephemeral port, one thread)
that records every request and answers as the Bot API does, `{"ok": true, "result": ...}`.

Point `GatewaySettings.telegram_api_url` at `fake.url`. Tests assert the full `calls`
list, so any unexpected call fails them. `fail` scripts the Bot API's refusals (403 bot
blocked, 429 with retry_after, 400...); `stop` takes the server down.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Hotline", "username": "HotlineBot"}
TRUE_METHODS = {"deleteMessage", "setWebhook", "deleteWebhook", "answerCallbackQuery"}


@dataclass(frozen=True)
class Call:
    """One request as the fake received it: the Bot API method, the exact path, and the
    parameters as sent (form or JSON values, as strings: PTB JSON-encodes lists and objects)."""

    method: str
    path: str
    params: dict[str, str]

    def json(self, name: str) -> Any:
        return json.loads(self.params[name])


@dataclass(frozen=True)
class Failure:
    status: int
    description: str
    retry_after: int | None = None
    message_id: str | None = None  # only for calls about this message (kept); else the next call (used once)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.failures: dict[str, list[Failure]] = {}
        self.updates: list[dict[str, Any]] = []  # what the next getUpdates returns (then nothing)
        self.files: dict[str, bytes] = {}  # file_id -> content, for getFile and the file host
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a call arrived, updates were queued, or stop
        self._next_message_id = 500
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, name="fake-telegram", daemon=True)
        self._running = False

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.02)  # a short poll: stop() returns at once

    def start(self) -> FakeTelegram:
        self._running = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take the server down: the port refuses connections from now on."""
        with self._changed:
            self._running = False
            self._changed.notify_all()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        message_id: str | None = None,
    ) -> None:
        """The next `method` call (or every call about `message_id`) gets this error."""
        with self._lock:
            self.failures.setdefault(method, []).append(Failure(status, description, retry_after, message_id))

    def push_updates(self, *updates: dict[str, Any]) -> None:
        """Updates for the bot's next getUpdates (long polling)."""
        with self._changed:
            self.updates.extend(updates)
            self._changed.notify_all()

    def wait_for(self, method: str, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` calls of `method` arrived (False after `timeout` seconds)."""
        with self._changed:
            return self._changed.wait_for(lambda: sum(c.method == method for c in self.calls) >= count, timeout)

    # -- answering -------------------------------------------------------------------------

    def _failure(self, method: str, params: dict[str, str]) -> Failure | None:
        with self._lock:
            queue = self.failures.get(method, [])
            for failure in queue:
                if failure.message_id is not None and failure.message_id == params.get("message_id"):
                    return failure
            for failure in queue:
                if failure.message_id is None:
                    queue.remove(failure)
                    return failure
        return None

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        prefix, _, method = path.lstrip("/").partition("/")
        with self._changed:
            self.calls.append(Call(method, path, params))
            self._changed.notify_all()
        if prefix != f"bot{self.token}":
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        failure = self._failure(method, params)
        if failure is not None:
            return failure.status, failure.body()
        if method in TRUE_METHODS:
            return 200, {"ok": True, "result": True}
        if method == "getMe":
            return 200, {"ok": True, "result": BOT_USER}
        if method == "getFile":
            file_id = params.get("file_id", "")
            if file_id not in self.files:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
            result = {"file_id": file_id, "file_unique_id": "u" + file_id, "file_size": len(self.files[file_id])}
            return 200, {"ok": True, "result": {**result, "file_path": f"photos/{file_id}.jpg"}}
        if method == "getUpdates":  # long polling: wait (at most a second here) for updates
            with self._changed:
                wait = min(float(params.get("timeout") or 0), 1.0)
                self._changed.wait_for(lambda: bool(self.updates) or not self._running, wait)
                updates, self.updates = self.updates, []
            return 200, {"ok": True, "result": updates}
        if method == "sendMessage":
            if not params.get("chat_id", "").lstrip("-").isdigit() or not params.get("text"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            with self._lock:
                self._next_message_id += 1
                message_id = self._next_message_id
            message = {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "date": int(time.time()),
                "text": params["text"],
            }
            return 200, {"ok": True, "result": message}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                """The Bot API's file host: /file/bot<token>/<file_path>."""
                path = unquote(self.path)  # httpx sends the token's ":" as %3A
                prefix = f"/file/bot{fake.token}/photos/"
                file_id = path[len(prefix) :].removesuffix(".jpg") if path.startswith(prefix) else ""
                with fake._lock:
                    fake.calls.append(Call("file", self.path, {}))
                content = fake.files.get(file_id)
                self.send_response(200 if content is not None else 404)
                self.send_header("Content-Length", str(len(content or b"")))
                self.end_headers()
                self.wfile.write(content or b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                content_type = self.headers.get("Content-Type", "")
                if content_type.startswith("application/json"):
                    data = json.loads(raw or "{}")
                    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
                else:
                    params = dict(parse_qsl(raw, keep_blank_values=True))
                status, body = fake.answer(self.path, params)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a long poll cancelled on shutdown)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the request line carries the token."""

        return Handler
