"""The channel gateway: one ASGI app (uvicorn) with a webhook per channel, the phone
simulator in development mode only, the staff console's signed internal relay
(channels/relay.py) and a health check. `python -m channels.app` serves it on 127.0.0.1:8000
(HOTLINE_GATEWAY_HOST / HOTLINE_GATEWAY_PORT). It holds the staff public key only: the
console (the one process with the private key) is its own process and reaches it through
the relay.

Answers: 403 for a forged or missing signature (nothing processed), 400 for a malformed
request, 413 for a body over 64 kB, 200 for what we ignore; a 500 only for our own bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from channels import metrics, provider_cleanup, public_page, relay
from channels.base import BadRequest, ChannelAdapter, InboundMessage, InvalidSignature, SendError
from channels.config import GatewaySettings, load_gateway_settings
from channels.core import Gateway, RequestIdFilter, build_gateway
from channels.registry import all_adapters
from reports.db import make_engine
from reports.health import Readiness, database_probe, http_probe, rasa_loaded, ready_answer, with_redis
from reports.keys import KeyringError, load_relay_key
from reports.leases import run_leased
from reports.metrics import serve_metrics

logger = logging.getLogger("channels.app")

MAX_BODY_BYTES = 64 * 1024
DRAIN_EVERY_SECONDS = 10.0
PURGE_EVERY_SECONDS = 3600.0


async def read_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ValueError("body too large")
    return body


def webhook(channel: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        adapter: ChannelAdapter = gateway.adapters[channel]
        try:
            body = await read_body(request)
        except ValueError:
            return rejected(channel, 413, "body too large")
        try:
            await adapter.verify(request, body)
        except InvalidSignature:
            logger.warning("rejected: invalid signature channel=%s", channel)
            return rejected(channel, 403, "forbidden")
        try:
            inbound = await adapter.parse_inbound(request, body)
        except BadRequest as error:
            logger.info("bad request channel=%s: %s", channel, error.code)
            return rejected(channel, 400, "bad request")
        if not inbound:
            return adapter.render(None, [])
        if adapter.answers_in_webhook:
            replies = [reply for m in inbound for reply in await gateway.handle(m)]
            metrics.MESSAGES_OUT.labels(metrics.channel(channel), "webhook").inc(len(replies))
            return adapter.render(inbound[0], replies)
        return answer_then_handle(gateway, adapter, inbound)

    return endpoint


def rejected(channel: str, status: int, text: str) -> Response:
    metrics.WEBHOOK_REJECTIONS.labels(metrics.channel(channel), str(status)).inc()
    return PlainTextResponse(text, status_code=status)


def answer_then_handle(gateway: Gateway, adapter: ChannelAdapter, inbound: list[InboundMessage]) -> Response:
    """Answer the webhook at once (Telegram retries a slow webhook), then take each message
    through the gateway and send the replies through the channel's API."""
    response = adapter.render(inbound[0], [])  # in this task: it may carry the callback answer

    async def handle_and_send() -> None:
        for message in inbound:
            replies = await gateway.handle(message)
            if not replies:
                continue
            try:
                await gateway.deliver(message, replies)
            except SendError as error:
                logger.warning("replies not sent channel=%s: %s", message.channel, error.code)
                metrics.ERRORS.labels("send").inc()

    response.background = BackgroundTask(handle_and_send)
    return response


async def health(request: Request) -> Response:
    """Liveness: the process answers (whatever its dependencies do)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness (reports/health.py): the database, each Rasa server, Redis when configured."""
    status, body = ready_answer(await request.app.state.readiness.states())
    return JSONResponse(body, status_code=status)


def gateway_readiness(gateway: Gateway) -> Readiness:
    """One check per dependency; several Rasa servers are "rasa-1", "rasa-2"... in the order
    of HOTLINE_RASA_URLS (never their URLs)."""
    urls = gateway.settings.rasa_urls
    names = ["rasa"] if len(urls) == 1 else [f"rasa-{n}" for n in range(1, len(urls) + 1)]
    token = {"token": gateway.rasa_token}
    probes = {"database": database_probe(lambda: gateway.engine)}
    for name, url in zip(names, urls, strict=True):
        probes[name] = http_probe(f"{url}/status", token, rasa_loaded)
    return Readiness(with_redis(probes))


async def background_work(gateway: Gateway) -> None:
    """Answer kept messages when Rasa is back, hand back idle hand-offs, delete the
    providers' copies; forget old deliveries every hour. With several gateways, each job
    runs in one of them at a time (a lease each, reports/leases.py); each gateway stores
    the provider ids it noted itself (they are in its memory)."""
    since_purge = PURGE_EVERY_SECONDS
    while True:
        try:
            await one_round(gateway, purge=since_purge >= PURGE_EVERY_SECONDS)
            if since_purge >= PURGE_EVERY_SECONDS:
                since_purge = 0.0
        except Exception:
            logger.exception("background work failed")
            metrics.ERRORS.labels("background").inc()
        await asyncio.sleep(DRAIN_EVERY_SECONDS)
        since_purge += DRAIN_EVERY_SECONDS


async def flush_questions(gateway: Gateway) -> None:
    """Add this gateway's own counts of topics answered to the database (no lease: each
    gateway holds its own); when the database fails they stay kept for the next round."""
    try:
        await asyncio.to_thread(gateway.questions.flush, gateway.engine)
    except Exception as error:
        logger.warning("question counts kept for the next round (%s)", type(error).__name__)
        metrics.ERRORS.labels("background").inc()


async def one_round(gateway: Gateway, purge: bool = False) -> None:
    """One round of the background work, each job under its lease (skipped when another
    gateway holds it)."""
    engine = gateway.engine
    await provider_cleanup.record(engine, gateway.adapters)
    await flush_questions(gateway)
    await run_leased(engine, "gateway-drain-pending", gateway.drain_pending)
    await run_leased(engine, "gateway-sweep-handoffs", gateway.sweep_handoffs)
    await run_leased(engine, "gateway-provider-cleanup", lambda: provider_cleanup.delete_due(engine, gateway.adapters))
    if purge:
        await run_leased(engine, "gateway-purge", lambda: asyncio.to_thread(gateway.purge))


def create_app(settings: GatewaySettings | None = None, gateway: Gateway | None = None) -> Starlette:
    """The gateway's app: each channel module brings its own routes (channels/registry.py
    decides which exist: the simulator only in development mode), the relay and /health."""
    chosen = gateway.settings if gateway else settings or load_gateway_settings()
    adapters = gateway.adapters if gateway else all_adapters(chosen)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.gateway = gateway or build_gateway(chosen, adapters)
        app.state.relay_key = relay_key(chosen)
        app.state.relay_nonces = relay.NonceMemory(app.state.gateway.shared)
        app.state.readiness = gateway_readiness(app.state.gateway)
        app.state.public_page = public_page.PublicPage()
        worker = asyncio.create_task(background_work(app.state.gateway))
        checked = asyncio.create_task(check_templates(app.state.gateway))
        try:
            yield
        finally:
            worker.cancel()
            await flush_questions(app.state.gateway)
            checked.cancel()
            await app.state.gateway.http.aclose()
            app.state.gateway.close_shared()
            for adapter in app.state.gateway.adapters.values():
                close = getattr(adapter, "aclose", None)
                if close is not None:
                    await close()

    routes = [route for name, adapter in adapters.items() for route in adapter.routes(webhook(name))]
    routes.append(Route("/health", health, methods=["GET"]))
    routes.append(Route("/ready", ready, methods=["GET"]))
    return Starlette(routes=routes + relay.routes() + public_page.routes(), lifespan=lifespan)


async def check_templates(gateway: Gateway) -> None:
    """At start: a channel with templates (WhatsApp) whose template setting is missing,
    unknown to Twilio, unapproved or not discreet is logged (staff messages after the 24-hour
    window would be refused until it is fixed; everything else works)."""
    for name, adapter in gateway.adapters.items():
        check = getattr(adapter, "check_template", None)
        if check is None or getattr(adapter, "session_window", None) is None:
            continue  # SMS, Telegram: no templates
        try:
            await check()
            logger.info("template checked channel=%s", name)
        except SendError as error:
            logger.warning("template unusable channel=%s: %s", name, error.code)


def relay_key(settings: GatewaySettings) -> bytes | None:
    """The console relay's key (keys/relay.key or HOTLINE_RELAY_KEY); without it every relay
    call is refused. Only this key: the staff private key never enters the gateway."""
    try:
        return load_relay_key(settings.keyring())
    except (KeyringError, ValueError) as error:
        logger.warning("console relay disabled: %s", error)
        return None


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    for noisy in ("httpx", "httpcore", "telegram", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # their URLs and bodies carry tokens and numbers
    settings = load_gateway_settings()  # read once, here: the one place that builds the gateway
    # HOTLINE_METRICS_PORT, never the public port; the gauges' queries have their own small pool.
    serve_metrics("gateway", [metrics.state_gauges(make_engine(settings.database_url))])
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, proxy_headers=False, log_level="info")


if __name__ == "__main__":
    main()
