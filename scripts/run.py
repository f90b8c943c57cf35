"""`make run`: start the hotline locally and open the terminal chat; Ctrl-C, Ctrl-D or SIGTERM
(what a process manager sends) stops all. The jobs cron runs in production run here too: the
retention purge (python -m reports.jobs purge) at start and then every hour, and the staff
alert outbox (python -m reports.jobs notify-pending) every two minutes."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from channels import terminal
from scripts.stack import ROOT, Stack, running_stack

PURGE_EVERY_SECONDS = 3600
NOTIFY_EVERY_SECONDS = 120  # alerts the action server could not send right after filing
ESCALATE_EVERY_SECONDS = 30  # on call: page and escalate (reports/oncall.py)
JOB_POLL_SECONDS = 0.5  # how often a running job looks whether `make run` is stopping
JOB_THREADS: list[threading.Thread] = []  # joined at the end: no job outlives `make run`


def schedule_purge(stack: Stack, stop: threading.Event) -> threading.Thread:
    """Run the purge now and every hour until `stop` is set (its output goes to a log)."""
    return schedule_job(stack, stop, "purge", PURGE_EVERY_SECONDS)


def schedule_job(stack: Stack, stop: threading.Event, job: str, every_seconds: float) -> threading.Thread:
    """Run `python -m reports.jobs <job>` now and every `every_seconds` until `stop` is set."""
    env = {**os.environ, "HOTLINE_DATABASE_URL": stack.database_url, "HOTLINE_TRACKER_URL": stack.tracker_url}
    env["HOTLINE_KEYS_DIR"] = str(stack.keys_dir)

    def loop() -> None:
        while not stop.is_set():
            with open(stack.log_dir / f"{job}.log", "ab") as log:
                command = [sys.executable, "-m", "reports.jobs", job]
                running = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
                while running.poll() is None:
                    if stop.wait(JOB_POLL_SECONDS):  # `make run` is stopping: so is the job
                        running.terminate()
                        running.wait(timeout=10)
            stop.wait(every_seconds)

    thread = threading.Thread(target=loop, name=job, daemon=True)
    thread.start()
    JOB_THREADS.append(thread)
    return thread


def stop_on_termination() -> None:
    """SIGTERM and SIGHUP leave the way Ctrl-C does, through the stack's `stop`: its servers run
    in their own sessions and would otherwise outlive this process. Once: stopping is not
    interrupted by a second signal."""

    def leave(signum: int, frame: object) -> None:
        for name in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Ports and log directory: the defaults are `make run`'s; tests pass free ones."""
    parser = argparse.ArgumentParser(prog="python -m scripts.run", description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "logs")
    parser.add_argument("--rasa-port", type=int, default=5005)
    parser.add_argument("--actions-port", type=int, default=5055)
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument("--console-port", type=int, default=8100)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_termination()
    os.umask(0o077)  # logs and databases made from here are for this user only
    log_dir: Path = args.log_dir
    print("==> Starting the Rasa server, the action server, the channel gateway and the staff console (20-40 s)...")
    started = time.monotonic()
    stop = threading.Event()
    ports = {
        "rasa_port": args.rasa_port,
        "actions_port": args.actions_port,
        "gateway_port": args.gateway_port,
        "console_port": args.console_port,
    }
    try:
        with running_stack(log_dir, **ports) as stack:
            schedule_purge(stack, stop)
            schedule_job(stack, stop, "notify-pending", NOTIFY_EVERY_SECONDS)
            schedule_job(stack, stop, "escalate", ESCALATE_EVERY_SECONDS)
            print(f"==> Ready in {time.monotonic() - started:.0f} s")
            print(f"    Rasa server (HTTP API on)  {stack.rasa_url}   logs: {log_dir / 'rasa.log'}")
            print(f"    Action server              {stack.actions_url}   logs: {log_dir / 'actions.log'}")
            print(f"    Conversations (encrypted)  {stack.tracker_url}")
            print(f"    Reports (sealed)           {stack.database_url}   keys: {stack.keys_dir}")
            print(f"    Retention purge            hourly, log: {log_dir / 'purge.log'}")
            print(f"    Staff alert outbox         every 2 min, log: {log_dir / 'notify-pending.log'}")
            print(f"    On call (escalation)       every 30 s, log: {log_dir / 'escalate.log'}")
            print(f"    Channel gateway            {stack.gateway_url}   logs: {log_dir / 'gateway.log'}")
            print("      webhooks                 /webhooks/twilio/sms  /webhooks/twilio/whatsapp  /webhooks/telegram")
            print(f"    Phone simulator (browser)  {stack.gateway_url}/simulator")
            print(f"    Gateway's keyring          {stack.gateway_keys_dir}   (public key only)")
            print(f"    Staff console (browser)    {stack.console_url}   logs: {log_dir / 'console.log'}")
            print("      its own process, the only one with the private key (make console-admin USERNAME=you)")
            print(f"    Rasa message webhook       {stack.webhook}   (the gateway's only, with the Rasa token)")
            print("    This chat goes through the gateway, as an SMS from a made-up number.")
            return terminal.main(["--url", f"{stack.gateway_url}/simulator/messages", "--sender", "+50255550000"])
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        for thread in JOB_THREADS:
            thread.join(timeout=15)
        print("==> Stopped.")


if __name__ == "__main__":
    sys.exit(main())
