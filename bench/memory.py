"""Memory per process, for the resource requests and limits of deploy/k8s/.

    python -m bench.memory

Starts the local stack (scripts/stack.py) on free ports, drives 20 conversations through Rasa
and the action server (response and custom-action turns), then reads VmRSS and VmHWM (peak)
of every process in each process group from /proc. Also runs one retention purge (the jobs
process's work) and HAProxy with deploy/haproxy.cfg, and writes the section
"Memory per process (deploy/ resource requests)" of bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

from bench.latency import action_turn, concurrent, response_turn
from bench.results import replace_section
from scripts.stack import ROOT, free_port, running_stack, sqlite_url

TITLE = "Memory per process (deploy/ resource requests)"


def group_memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory in MB of a process group: VmRSS and VmHWM summed."""
    found = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    current = peak = 0
    for member in {pid, *(int(p) for p in found)}:
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        current += int(fields["VmRSS"].split()[0])
        peak += int(fields["VmHWM"].split()[0])
    return current / 1024, peak / 1024


def purge_peak_mb(env: dict[str, str]) -> float:
    """Peak resident memory of one `python -m reports.jobs purge` (the jobs' heaviest task),
    read by a fresh parent: this process's own children (the stack) would count too."""
    parent = (
        "import resource, subprocess, sys; "
        "subprocess.run([sys.executable, '-m', 'reports.jobs', 'purge'], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", parent], env=env, cwd=ROOT, check=True, capture_output=True)
    return int(result.stdout.split()[-1]) / 1024


def haproxy_mb(work: Path) -> float | None:
    """HAProxy with deploy/haproxy.cfg on a free port (its servers unresolved: idle), if installed."""
    if not Path("/usr/sbin/haproxy").exists():
        return None
    port = free_port()
    config = (ROOT / "deploy" / "haproxy.cfg").read_text().replace("bind :8080", f"bind 127.0.0.1:{port}")
    (work / "haproxy.cfg").write_text(config.replace("nameserver dns 127.0.0.11:53", "parse-resolv-conf"))
    process = subprocess.Popen(
        ["/usr/sbin/haproxy", "-f", str(work / "haproxy.cfg")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return group_memory_mb(process.pid)[0]
            except httpx.HTTPError:
                time.sleep(0.1)  # polling while HAProxy starts
        return None
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure() -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tracker, database = sqlite_url(work / "tracker.db"), sqlite_url(work / "reports.db")
        with running_stack(
            work / "logs",
            rasa_port=free_port(),
            actions_port=free_port(),
            gateway_port=free_port(),
            console_port=free_port(),
            tracker_url=tracker,
            database_url=database,
            keys_dir=work / "keys",
        ) as stack:
            results.update({f"{name} (idle)": group_memory_mb(p.pid) for name, p in stack.processes.items()})
            asyncio.run(concurrent(stack, response_turn, 20, 10, "mem-r"))
            asyncio.run(concurrent(stack, action_turn, 20, 2, "mem-a"))
            with httpx.Client(timeout=5) as client:
                for _ in range(50):
                    client.get(f"{stack.gateway_url}/health").raise_for_status()
                    client.get(f"{stack.console_url}/health").raise_for_status()
            results.update({name: group_memory_mb(p.pid) for name, p in stack.processes.items()})
        env = {**os.environ, "HOTLINE_DATABASE_URL": database, "HOTLINE_TRACKER_URL": tracker}
        peak = purge_peak_mb(env)
        results["jobs (one purge)"] = (peak, peak)
        balancer = haproxy_mb(work)
        if balancer is not None:
            results["loadbalancer (HAProxy, idle)"] = (balancer, balancer)
    return results


def table(results: dict[str, tuple[float, float]]) -> str:
    lines = [
        f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores) with `python -m bench.memory`: "
        "the local stack (SQLite stores), after 20 people wrote at once (200 answer turns, 40 job-offer "
        "checklists through the action server). RSS and peak (VmHWM) of each process group, MB. "
        "deploy/k8s/ requests memory near the loaded RSS and limits it at about 1.5 times the peak.",
        "",
        "| process | RSS (MB) | peak (MB) |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {now:.0f} | {peak:.0f} |" for name, (now, peak) in results.items()]
    return "\n".join(lines)


def main() -> None:
    text = table(measure())
    print(text)
    replace_section(ROOT / "bench" / "RESULTS.md", TITLE, text)


if __name__ == "__main__":
    main()
