"""Time to file a report server-side, under 20 concurrent tipsters, on SQLite and on
PostgreSQL: the action server's `action_submit_report` over its real HTTP webhook, as the
Rasa server calls it at the end of the report form (validation, Argon2id hash of the new
code, sealing, triage, one transaction). `make bench-reports` (or `.venv/bin/python -m
bench.reports [--quick]`). Prints a table and rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx

from bench.latency import percentile
from bench.results import replace_section
from reports.crypto import slow_hash
from scripts.stack import ROOT, action_server_command, prepare_keys_and_database, spawn, sqlite_url
from tests.db_fixtures import temporary_postgres_database

PORT = 5265
TIPSTERS = 20
SLOTS = {
    "report_what": "En el bar de la esquina tienen a unas muchachas encerradas, no las dejan salir.",
    "report_more": "done",
    "report_country": "GT",
    "report_place": "Zona 1, bar La Estrella",
    "report_when": "ayer",
    "report_people": "como 5",
    "report_minors": "yes",
    "report_kind": "sexual",
    "report_danger": "no",
    "report_contact": "no",
    "report_confirm": "yes",
}


def submit_request(sender: str) -> dict[str, object]:
    """The body Rasa posts to the action server when the report form completes."""
    return {
        "next_action": "action_submit_report",
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": sender,
            "slots": SLOTS,
            "latest_message": {"text": "si", "intent": {"name": "affirm", "confidence": 1.0}, "entities": []},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "report_form",
            "latest_input_channel": "rest",
        },
    }


@contextmanager
def action_server(work: Path, database_url: str) -> Iterator[str]:
    keys_dir = work / "keys"
    prepare_keys_and_database(keys_dir, database_url)
    env = {**os.environ, "SANIC_HOST": "127.0.0.1", "HOTLINE_DATABASE_URL": database_url}
    env.update(HOTLINE_KEYS_DIR=str(keys_dir), PYTHONPATH=str(ROOT))
    process = spawn("actions", action_server_command(PORT), env, work)
    url = f"http://127.0.0.1:{PORT}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"action server did not start; see {work / 'actions.log'}")
            time.sleep(0.2)  # polling while the server starts
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


async def file_reports(url: str, tipsters: int, per_tipster: int) -> tuple[list[float], float]:
    async def tipster(client: httpx.AsyncClient, n: int) -> list[float]:
        times = []
        for _ in range(per_tipster):
            started = time.perf_counter()
            response = await client.post(f"{url}/webhook", json=submit_request(f"bench-{n}-{secrets.token_hex(4)}"))
            response.raise_for_status()
            responses = [m.get("response") for m in response.json()["responses"]]
            assert "utter_report_filed" in responses, responses
            times.append((time.perf_counter() - started) * 1000)
        return times

    async with httpx.AsyncClient(timeout=120) as client:
        await client.post(f"{url}/webhook", json=submit_request("bench-warmup"))
        started = time.perf_counter()
        results = await asyncio.gather(*(tipster(client, n) for n in range(tipsters)))
        elapsed = time.perf_counter() - started
    return [t for times in results for t in times], elapsed


def measure(name: str, database_url: str, per_tipster: int, tipsters: int = TIPSTERS) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp, action_server(Path(tmp), database_url) as url:
        times, elapsed = asyncio.run(file_reports(url, tipsters, per_tipster))
    return {
        "database": name,
        "tipsters": str(tipsters),
        "reports": str(len(times)),
        "p50_ms": f"{percentile(times, 0.5):.0f}",
        "p95_ms": f"{percentile(times, 0.95):.0f}",
        "max_ms": f"{max(times):.0f}",
        "per_s": f"{len(times) / elapsed:.1f}",
    }


def hash_ms(rounds: int = 10) -> float:
    salt = secrets.token_bytes(16)
    started = time.perf_counter()
    for _ in range(rounds):
        slow_hash("7K4MQ2XH", salt)
    return (time.perf_counter() - started) * 1000 / rounds


def main() -> int:
    parser = argparse.ArgumentParser(description="Report filing time under concurrent tipsters")
    parser.add_argument("--quick", action="store_true", help="2 reports per tipster instead of 10")
    args = parser.parse_args()
    per_tipster = 2 if args.quick else 10
    rows = []
    for tipsters, reports_each in ((1, per_tipster * 2), (TIPSTERS, per_tipster)):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = sqlite_url(Path(tmp) / "reports.db")
            rows.append(measure("SQLite (WAL, embedded)", sqlite, reports_each, tipsters))
        with temporary_postgres_database() as url:
            rows.append(measure("PostgreSQL 15 (127.0.0.1)", url, reports_each, tipsters))
    one_hash = hash_ms()
    header = "| database | concurrent tipsters | reports | p50 ms | p95 ms | max ms | reports/s |\n"
    header += "|---|---|---|---|---|---|---|\n"
    lines = "".join(
        f"| {r['database']} | {r['tipsters']} | {r['reports']} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} "
        f"| {r['per_s']} |\n"
        for r in rows
    )
    body = (
        f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores): `action_submit_report` over the "
        f"action server's HTTP webhook, one tipster alone, then {TIPSTERS} at once ({per_tipster} reports each). "
        f"One Argon2id code hash alone (t=3, 64 MiB, p=1): {one_hash:.0f} ms, the floor of every filing; at most one "
        "hash per core runs at a time, so under load reports/s is bounded by cores / hash time and the wait shows in "
        "p50. No baseline was named in the issue: SQLite and PostgreSQL side by side.\n\n" + header + lines
    )
    print(header + lines + f"\nArgon2id hash alone: {one_hash:.0f} ms")
    replace_section(ROOT / "bench" / "RESULTS.md", "Filing a report (issue 3)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
