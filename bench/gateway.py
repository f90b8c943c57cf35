"""The gateway's overhead: the same conversations sent straight to Rasa's REST webhook and
through the gateway as signed Twilio SMS webhooks (signature check, duplicate check,
pseudonym, sealed reply address, TwiML), side by side in one run, at 20 and 50 concurrent
senders. `make bench-gateway` (or `.venv/bin/python -m bench.gateway [--quick]`). Prints a
table and rewrites its section of bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from bench.latency import percentile
from bench.results import replace_section
from scripts.stack import ROOT, Stack, free_port, running_stack, sqlite_url

RASA_PORT, ACTIONS_PORT, GATEWAY_PORT, CONSOLE_PORT = (free_port() for _ in range(4))  # from the OS
TOKEN = secrets.token_hex(16)  # a throwaway Twilio auth token for this run
TURNS = ["hola", "que es la trata", "que papeles llevo", "donde hay un albergue", "gracias"]

Send = Callable[[httpx.AsyncClient, Stack, str, str], Awaitable[None]]


async def direct(client: httpx.AsyncClient, stack: Stack, sender: str, text: str) -> None:
    response = await client.post(stack.webhook, params=stack.rasa_params, json={"sender": sender, "message": text})
    response.raise_for_status()
    assert response.json(), text


async def through_gateway(client: httpx.AsyncClient, stack: Stack, sender: str, text: str) -> None:
    url = f"{stack.gateway_url}/webhooks/twilio/sms"
    form = {"From": sender, "To": "+15005550006", "Body": text, "MessageSid": "SM" + secrets.token_hex(16)}
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    response.raise_for_status()
    assert "<Message" in response.text, response.text


async def run(stack: Stack, send: Send, senders: int, turns_each: int, tag: str) -> dict[str, float]:
    times: list[float] = []

    async def sender(n: int, client: httpx.AsyncClient) -> None:
        address = f"+5025{n:07d}" if send is through_gateway else f"{tag}-{n}"
        for i in range(turns_each):
            started = time.perf_counter()
            await send(client, stack, address, TURNS[i % len(TURNS)])
            times.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=senders)) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(n, client) for n in range(senders)))
        elapsed = time.perf_counter() - started
    return {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95), "rps": len(times) / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description="Gateway overhead against Rasa's REST webhook")
    parser.add_argument("--quick", action="store_true", help="2 turns per sender instead of 5")
    args = parser.parse_args()
    turns_each = 2 if args.quick else 5
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {
            "TWILIO_AUTH_TOKEN": TOKEN,
            "HOTLINE_MESSAGES_PER_MINUTE": "1000",  # the flood guard is not what is measured
            "HOTLINE_PUBLIC_URL": f"http://127.0.0.1:{GATEWAY_PORT}",  # what the signatures are computed for
        }
        with running_stack(
            work / "logs",
            RASA_PORT,
            ACTIONS_PORT,
            GATEWAY_PORT,
            CONSOLE_PORT,
            tracker_url=sqlite_url(work / "tracker.db"),
            database_url=sqlite_url(work / "reports.db"),
            keys_dir=work / "keys",
            extra_env=env,
        ) as stack:
            asyncio.run(run(stack, direct, 5, 2, "warm"))  # load the model's caches first
            for senders in (20, 50):
                rest = asyncio.run(run(stack, direct, senders, turns_each, f"rest{senders}"))
                gateway = asyncio.run(run(stack, through_gateway, senders, turns_each, f"gw{senders}"))
                rows.append((senders, rest, gateway))
    header = (
        "| senders | Rasa REST p50 ms | p95 ms | msg/s | gateway (signed SMS) p50 ms | p95 ms | msg/s "
        "| p50 ratio | msg/s ratio |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = "".join(
        f"| {n} | {r['p50']:.0f} | {r['p95']:.0f} | {r['rps']:.1f} | {g['p50']:.0f} | {g['p95']:.0f} | {g['rps']:.1f} "
        f"| {g['p50'] / r['p50']:.2f}× | {g['rps'] / r['rps']:.2f}× |\n"
        for n, r, g in rows
    )
    body = (
        f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores): {turns_each} turns per sender, "
        "the same texts straight to Rasa's REST webhook and through the gateway as signed Twilio SMS webhooks "
        "(one process each: Rasa, actions, gateway on uvicorn; SQLite). Baseline (the issue's): Rasa's REST webhook "
        "called directly, in the same run.\n\n" + header + lines
    )
    print(header + lines)
    replace_section(ROOT / "bench" / "RESULTS.md", "Gateway overhead (issue 4)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
