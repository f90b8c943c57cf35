"""Latency, throughput, memory and start-up of the assistant through Rasa's REST webhook.

Runs the real servers (scripts/stack.py) on their own ports with a fresh SQLite tracker
store. `make bench-latency` (or `.venv/bin/python -m bench.latency [--quick]`). Prints a
table beside the baseline the issue measured, and rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import httpx

from bench.results import replace_section
from scripts.stack import (
    MODEL,
    RASA,
    RASA_PROJECT_ARGS,
    ROOT,
    Stack,
    free_port,
    rasa_environment,
    running_stack,
    sqlite_url,
)

RASA_PORT, ACTIONS_PORT, GATEWAY_PORT, CONSOLE_PORT = (free_port() for _ in range(4))  # from the OS
RESPONSE_TURNS = ["que papeles llevo", "que es la trata", "como viajar seguro al norte", "puedo pedir asilo", "hola"]
JOB_ANSWERS = ["me ofrecen chamba en cancun es real?", "si", "no", "no", "no"]  # then "si" runs the action
# What the issue measured on this machine kind (rasa 3.6.21, one process, in-memory tracker).
BASELINE = {
    "response_p50_ms": "18",
    "action_p50_ms": "69",
    "response_rps_20": "44",
    "action_rps_20": "12.6",
    "turn_ratio": "7× (300th vs 1st)",
    "train_s": "474 (DIET, 100 epochs); 30 (LogisticRegression)",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_say(client: httpx.AsyncClient, stack: Stack, sender: str, text: str) -> float:
    started = time.perf_counter()
    response = await client.post(stack.webhook, params=stack.rasa_params, json={"sender": sender, "message": text})
    response.raise_for_status()
    assert response.json(), f"no answer to {text!r}"
    return (time.perf_counter() - started) * 1000


async def response_turn(client: httpx.AsyncClient, stack: Stack, sender: str, i: int) -> float:
    return await timed_say(client, stack, sender, RESPONSE_TURNS[i % len(RESPONSE_TURNS)])


async def action_turn(client: httpx.AsyncClient, stack: Stack, sender: str, i: int) -> float:
    """One job checklist; only the last answer, which runs the custom action, is timed."""
    for text in JOB_ANSWERS:
        await timed_say(client, stack, sender, text)
    return await timed_say(client, stack, sender, "si")


Turn = Callable[[httpx.AsyncClient, Stack, str, int], Awaitable[float]]


async def sequential(stack: Stack, turn: Turn, count: int, tag: str) -> list[float]:
    async with httpx.AsyncClient(timeout=60) as client:
        return [await turn(client, stack, f"{tag}-{i % 10}", i) for i in range(count)]


async def concurrent(stack: Stack, turn: Turn, users: int, per_user: int, tag: str) -> float:
    """Timed turns per second with `users` people writing at once."""

    async def user(u: int, client: httpx.AsyncClient) -> int:
        for i in range(per_user):
            await turn(client, stack, f"{tag}-{u}", i)
        return per_user

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=users)) as client:
        started = time.perf_counter()
        done = sum(await asyncio.gather(*(user(u, client) for u in range(users))))
        return done / (time.perf_counter() - started)


async def first_vs_nth(stack: Stack, conversations: int, turns: int) -> tuple[float, float]:
    firsts, lasts = [], []
    async with httpx.AsyncClient(timeout=60) as client:
        for c in range(conversations):
            times = [await response_turn(client, stack, f"long-{c}", i) for i in range(turns)]
            firsts.append(times[0])
            lasts.append(times[-1])
    return statistics.median(firsts), statistics.median(lasts)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the Rasa CLI forks nothing, sanic may)."""
    total = 0
    pids = [pid] + [
        int(p) for p in subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    ]
    for p in set(pids):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return total / 1024


def training_seconds(workdir: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [str(RASA), "train", "--force", *RASA_PROJECT_ARGS, "--out", str(workdir)],
        cwd=ROOT,
        env=rasa_environment(),
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def measure(quick: bool) -> dict[str, float]:
    scale = 0.2 if quick else 1.0
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.monotonic()
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
            asyncio.run(sequential(stack, response_turn, 1, "warm"))
            results["startup_s"] = time.monotonic() - started
            n = int(300 * scale)
            response = asyncio.run(sequential(stack, response_turn, n, "seq-r"))
            action = asyncio.run(sequential(stack, action_turn, max(10, int(100 * scale)), "seq-a"))
            results.update(
                response_p50_ms=percentile(response, 0.5),
                response_p95_ms=percentile(response, 0.95),
                action_p50_ms=percentile(action, 0.5),
                action_p95_ms=percentile(action, 0.95),
                n_response=n,
                n_action=len(action),
            )
            for users in (20,):
                results[f"response_rps_{users}"] = asyncio.run(
                    concurrent(stack, response_turn, users, int(15 * scale) or 3, f"c{users}r")
                )
                results[f"action_rps_{users}"] = asyncio.run(
                    concurrent(stack, action_turn, users, max(2, int(5 * scale)), f"c{users}a")
                )
            first, hundredth = asyncio.run(first_vs_nth(stack, max(3, int(10 * scale)), 100))
            results.update(turn1_ms=first, turn100_ms=hundredth)
            results["rasa_rss_mb"] = rss_mb(stack.processes["rasa"].pid)
            results["actions_rss_mb"] = rss_mb(stack.processes["actions"].pid)
        results["model_mb"] = MODEL.stat().st_size / 1e6
        if not quick:
            results["train_s"] = training_seconds(work / "models")
    return results


def table(r: dict[str, float]) -> str:
    def row(label: str, ours: str, baseline: str = "") -> str:
        return f"| {label} | {ours} | {baseline} |"

    lines = [
        f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores), rasa 3.6.21, SQLite tracker "
        "store, Rasa server and action server as `make run` starts them.",
        "",
        "| metric | this project | baseline (issue's probe) |",
        "|---|---|---|",
        row(
            f"response turn p50 / p95 (ms, {int(r['n_response'])} sequential)",
            f"{r['response_p50_ms']:.1f} / {r['response_p95_ms']:.1f}",
            BASELINE["response_p50_ms"] + " (p50)",
        ),
        row(
            f"custom-action turn p50 / p95 (ms, {int(r['n_action'])} sequential)",
            f"{r['action_p50_ms']:.1f} / {r['action_p95_ms']:.1f}",
            BASELINE["action_p50_ms"] + " (p50)",
        ),
        row("response turns per second, 20 users", f"{r['response_rps_20']:.1f}", BASELINE["response_rps_20"]),
        row(
            "job checklists per second, 20 users (6 messages each, the last runs the custom action)",
            f"{r['action_rps_20']:.1f} ({r['action_rps_20'] * (len(JOB_ANSWERS) + 1):.1f} messages/s)",
            BASELINE["action_rps_20"] + " (custom-action turns/s)",
        ),
        row(
            "1st turn vs 100th turn of one conversation (ms, median)",
            f"{r['turn1_ms']:.1f} vs {r['turn100_ms']:.1f} ({r['turn100_ms'] / r['turn1_ms']:.2f}×)",
            BASELINE["turn_ratio"],
        ),
        row("start-up until the bot answers (s)", f"{r['startup_s']:.1f}", ""),
        row("memory: Rasa server / action server (MB RSS)", f"{r['rasa_rss_mb']:.0f} / {r['actions_rss_mb']:.0f}", ""),
        row("model size (MB)", f"{r['model_mb']:.1f}", "41 (DIET); 1.4 (LogisticRegression)"),
    ]
    if "train_s" in r:
        lines.append(row("training time, full model (s)", f"{r['train_s']:.0f}", BASELINE["train_s"]))
    lines += [
        "",
        "Content turns (topics, menu, emergency) are plain responses built from content/ and need no action "
        "server call; only the job-offer verdict runs a custom action.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages; do not record")
    args = parser.parse_args()
    results = measure(args.quick)
    text = table(results)
    print(text)
    if not args.quick:
        replace_section(ROOT / "bench" / "RESULTS.md", "Latency, throughput, memory and start-up", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
