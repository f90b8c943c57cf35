"""What each layer of the cluster costs, in one run: the same conversations (50 concurrent
senders, 5 turns each) against

1. bare Rasa: its webhook called directly (the baseline), one process each, SQLite;
2. `make run`'s stack through its gateway (signed Twilio SMS), SQLite tracker store;
3. the same stack on PostgreSQL (tracker store and reports);
4. the cluster scaled to one of each (PostgreSQL, Redis lock store), through HAProxy;
5. the cluster as deploy/cluster.yml runs it (two Rasa, two actions, two gateways),
   through HAProxy;
6. the same cluster, straight to one gateway (no load balancer).

`make bench-cluster` (or `.venv/bin/python -m bench.cluster [--quick]`). Prints a table
and rewrites its section of bench/RESULTS.md. The client runs on the same 2 cores."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from bench.latency import percentile
from bench.results import replace_section
from scripts.cluster import running_cluster
from scripts.stack import ROOT, free_port, running_stack, sqlite_url
from tests.db_fixtures import temporary_postgres_database

TOKEN = secrets.token_hex(16)  # a throwaway Twilio auth token for this run
TURNS = ["hola", "que es la trata", "que papeles llevo", "donde hay un albergue", "gracias"]
ENV = {"TWILIO_AUTH_TOKEN": TOKEN, "HOTLINE_MESSAGES_PER_MINUTE": "1000"}  # the flood guard is not measured


@dataclass
class Target:
    """Where a message goes: Rasa's webhook (with its token) or a gateway's Twilio webhook,
    signed for the public URL the gateways were started with."""

    url: str
    rasa_params: dict[str, str] | None = None
    public_url: str = ""

    async def send(self, client: httpx.AsyncClient, sender: str, text: str) -> None:
        if self.rasa_params is not None:
            body = {"sender": sender, "message": text}
            response = await client.post(self.url, params=self.rasa_params, json=body)
            response.raise_for_status()
            assert response.json(), text
            return
        form = {"From": sender, "To": "+15005550006", "Body": text, "MessageSid": "SM" + secrets.token_hex(16)}
        signature = RequestValidator(TOKEN).compute_signature(f"{self.public_url}/webhooks/twilio/sms", form)
        response = await client.post(
            f"{self.url}/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
        )
        response.raise_for_status()
        assert "<Message" in response.text, response.text


async def load(target: Target, senders: int, turns_each: int) -> dict[str, float]:
    times: list[float] = []
    tag = secrets.token_hex(3)

    async def sender(n: int, client: httpx.AsyncClient) -> None:
        address = f"+5026{int(tag, 16) % 1000:03d}{n:04d}"
        for i in range(turns_each):
            started = time.perf_counter()
            await target.send(client, address, TURNS[i % len(TURNS)])
            times.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=senders)) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(n, client) for n in range(senders)))
        elapsed = time.perf_counter() - started
    return {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95), "rps": len(times) / elapsed}


def measure(target: Target, senders: int, turns_each: int) -> dict[str, float]:
    asyncio.run(load(target, 5, 2))  # warm the model's caches and the connection pools
    return asyncio.run(load(target, senders, turns_each))


Run = Callable[[Path], list[tuple[str, dict[str, float]]]]


@contextlib.contextmanager
def databases(work: Path, postgres: bool) -> Iterator[tuple[str, str]]:
    """(tracker URL, reports URL): two throwaway PostgreSQL databases, or SQLite files."""
    if not postgres:
        yield sqlite_url(work / "tracker.db"), sqlite_url(work / "reports.db")
        return
    with temporary_postgres_database() as tracker_url, temporary_postgres_database() as database_url:
        yield tracker_url, database_url


def stack_runs(senders: int, turns: int, postgres: bool) -> Run:
    def run(work: Path) -> list[tuple[str, dict[str, float]]]:
        gateway_port = free_port()
        env = {**ENV, "HOTLINE_PUBLIC_URL": f"http://127.0.0.1:{gateway_port}"}
        ports = (free_port(), free_port(), gateway_port, free_port())
        with (
            databases(work, postgres) as (tracker_url, database_url),
            running_stack(
                work / "logs",
                *ports,
                tracker_url=tracker_url,
                database_url=database_url,
                keys_dir=work / "keys",
                extra_env=env,
            ) as stack,
        ):
            gateway = Target(stack.gateway_url, public_url=stack.gateway_url)
            if postgres:
                return [("one of each, PostgreSQL, through the gateway", measure(gateway, senders, turns))]
            bare = Target(stack.webhook, rasa_params=stack.rasa_params)
            return [
                ("bare Rasa webhook (baseline), SQLite", measure(bare, senders, turns)),
                ("one of each (make run), SQLite, through the gateway", measure(gateway, senders, turns)),
            ]

    return run


def cluster_runs(senders: int, turns: int, scale: dict[str, int] | None) -> Run:
    def run(work: Path) -> list[tuple[str, dict[str, float]]]:
        with running_cluster(work / "logs", keys_dir=work / "keys", extra_env=ENV, drop_after=True, scale=scale) as c:
            through_lb = Target(c.gateway_url, public_url=c.gateway_url)
            if scale:
                name = "cluster, one of each, PostgreSQL + Redis, through HAProxy"
                return [(name, measure(through_lb, senders, turns))]
            direct = Target(c.url("gateway-1"), public_url=c.gateway_url)
            return [
                ("cluster, two of each, through HAProxy", measure(through_lb, senders, turns)),
                ("cluster, two of each, straight to one gateway", measure(direct, senders, turns)),
            ]

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description="What each layer of the cluster costs")
    parser.add_argument("--quick", action="store_true", help="20 senders, 2 turns each")
    args = parser.parse_args()
    senders, turns = (20, 2) if args.quick else (50, 5)
    one_of_each = {"rasa": 1, "actions": 1, "gateway": 1, "jobs": 0}
    runs = [
        stack_runs(senders, turns, postgres=False),
        stack_runs(senders, turns, postgres=True),
        cluster_runs(senders, turns, one_of_each),
        cluster_runs(senders, turns, None),
    ]
    rows: list[tuple[str, dict[str, float]]] = []
    for run in runs:
        with tempfile.TemporaryDirectory() as tmp:
            rows += run(Path(tmp))
    base = rows[0][1]
    header = "| setup | p50 ms | p95 ms | msg/s | p50 vs bare Rasa | msg/s vs bare Rasa |\n|---|---|---|---|---|---|\n"
    lines = "".join(
        f"| {name} | {r['p50']:.0f} | {r['p95']:.0f} | {r['rps']:.1f} | {r['p50'] / base['p50']:.2f}× "
        f"| {r['rps'] / base['rps']:.2f}× |\n"
        for name, r in rows
    )
    body = (
        f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores): {senders} concurrent senders, "
        f"{turns} turns each, the same texts in every setup; the client shares the cores. Baseline (the issue's): "
        "bare Rasa's webhook, in the same run.\n\n" + header + lines
    )
    print(header + lines)
    replace_section(ROOT / "bench" / "RESULTS.md", "Cluster: the cost of each layer (issue 11)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
