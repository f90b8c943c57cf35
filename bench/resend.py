"""What sending a message to Rasa again costs (rasa_plugins/gateway_channel.py): the same
turns straight to the gateway channel in four ways, side by side in one run. The baseline is
the first row, a message without an id, as every message went before ids existed (Rasa makes
its own). `make bench-resend` (or `.venv/bin/python -m bench.resend [--quick]`). Prints a
table and rewrites its section of bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from bench.latency import percentile
from bench.results import replace_section
from scripts.stack import ROOT, Stack, free_port, running_stack, sqlite_url

RASA_PORT, ACTIONS_PORT, GATEWAY_PORT, CONSOLE_PORT = (free_port() for _ in range(4))  # from the OS
TURNS = ["hola", "que es la trata", "que papeles llevo", "donde hay un albergue", "gracias"]
ROUNDS = 3
WAYS = {
    "no id (before this change)": "none",
    "first try, with its id": "first",
    "sent again, answer saved (replayed)": "replayed",
    "sent again, never taken (looked up, then taken)": "unseen",
}


async def post(client: httpx.AsyncClient, stack: Stack, body: dict[str, Any]) -> None:
    response = await client.post(stack.webhook, params=stack.rasa_params, json=body)
    response.raise_for_status()
    assert response.json(), body["message"]


async def one_turn(client: httpx.AsyncClient, stack: Stack, way: str, sender: str, text: str) -> float:
    """The time of one turn sent the given way (a replayed turn is taken once first, untimed)."""
    body: dict[str, Any] = {"sender": sender, "message": text}
    if way != "none":
        body["message_id"] = secrets.token_hex(16)
    if way == "replayed":
        await post(client, stack, body)
    if way in ("replayed", "unseen"):
        body["retry"] = True
    started = time.perf_counter()
    await post(client, stack, body)
    return (time.perf_counter() - started) * 1000


async def run(stack: Stack, way: str, senders: int, turns_each: int, times: list[float] | None = None) -> float:
    """Adds each turn's time to `times`; returns the messages per second of the run (not
    meaningful for "replayed": each timed turn follows an untimed one)."""
    times = [] if times is None else times
    run_id = secrets.token_hex(3)
    before = len(times)

    async def sender(n: int, client: httpx.AsyncClient) -> None:
        for i in range(turns_each):
            times.append(await one_turn(client, stack, way, f"resend-{way}-{run_id}-{n}", TURNS[i % len(TURNS)]))

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=senders)) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(n, client) for n in range(senders)))
        elapsed = time.perf_counter() - started
    return (len(times) - before) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="The cost of sending a message to Rasa again")
    parser.add_argument("--quick", action="store_true", help="4 turns per sender instead of 10")
    args = parser.parse_args()
    senders, turns_each = 10, 4 if args.quick else 10
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with running_stack(
            work / "logs",
            RASA_PORT,
            ACTIONS_PORT,
            GATEWAY_PORT,
            CONSOLE_PORT,
            tracker_url=sqlite_url(work / "tracker.db"),
            database_url=sqlite_url(work / "reports.db"),
            keys_dir=work / "keys",
        ) as stack:
            asyncio.run(run(stack, "none", 5, 2))  # load the model's caches first
            times: dict[str, list[float]] = {way: [] for way in WAYS.values()}
            rates: dict[str, list[float]] = {way: [] for way in WAYS.values()}
            for _ in range(ROUNDS):  # the ways take turns: drift on a busy machine hits them all alike
                for way in WAYS.values():
                    rates[way].append(asyncio.run(run(stack, way, senders, turns_each, times[way])))
    base = percentile(times["none"], 0.5)
    header = "| how the message is sent | p50 ms | p95 ms | msg/s | p50 vs no id |\n|---|---|---|---|---|\n"
    for name, way in WAYS.items():
        p50, p95 = percentile(times[way], 0.5), percentile(times[way], 0.95)
        rate = "—" if way == "replayed" else f"{sum(rates[way]) / len(rates[way]):.1f}"
        rows.append(f"| {name} | {p50:.0f} | {p95:.0f} | {rate} | {p50 / base:.2f}× |\n")
    lines = "".join(rows)
    body = (
        f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores): {senders} concurrent senders, "
        f"{turns_each} turns each, {ROUNDS} rounds taking turns, straight to the gateway channel of one Rasa "
        "server (SQLite tracker store, in-memory lock store). Baseline: the first row, a message without an id, "
        "as before ids existed. "
        "Only kept messages are ever sent again; every other message is a first try. msg/s is left out for "
        "the replayed row: each timed turn there follows an untimed first take.\n\n" + header + lines
    )
    print(header + lines)
    replace_section(ROOT / "bench" / "RESULTS.md", "Sending a message to Rasa again", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
