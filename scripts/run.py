"""`make run`: start the hotline locally and open the terminal chat; Ctrl-C stops all.
The retention purge (python -m reports.jobs purge) runs at start and then every hour."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from channels import terminal
from scripts.stack import ROOT, Stack, running_stack

PURGE_EVERY_SECONDS = 3600


def schedule_purge(stack: Stack, stop: threading.Event) -> threading.Thread:
    """Run the purge now and every hour until `stop` is set (its output goes to a log)."""
    env = {**os.environ, "HOTLINE_DATABASE_URL": stack.database_url, "HOTLINE_TRACKER_URL": stack.tracker_url}
    env["HOTLINE_KEYS_DIR"] = str(stack.keys_dir)

    def loop() -> None:
        while not stop.is_set():
            with open(stack.log_dir / "purge.log", "ab") as log:
                subprocess.run(
                    [sys.executable, "-m", "reports.jobs", "purge"], cwd=ROOT, env=env, stdout=log, stderr=log
                )
            stop.wait(PURGE_EVERY_SECONDS)

    thread = threading.Thread(target=loop, name="purge", daemon=True)
    thread.start()
    return thread


def main() -> int:
    log_dir = ROOT / "build" / "logs"
    print("==> Starting the Rasa server, the action server, the channel gateway and the staff console (20-40 s)...")
    started = time.monotonic()
    stop = threading.Event()
    try:
        with running_stack(log_dir) as stack:
            schedule_purge(stack, stop)
            print(f"==> Ready in {time.monotonic() - started:.0f} s")
            print(f"    Rasa server (HTTP API on)  {stack.rasa_url}   logs: {log_dir / 'rasa.log'}")
            print(f"    Action server              {stack.actions_url}   logs: {log_dir / 'actions.log'}")
            print(f"    Conversations (encrypted)  {stack.tracker_url}")
            print(f"    Reports (sealed)           {stack.database_url}   keys: {stack.keys_dir}")
            print(f"    Retention purge            hourly, log: {log_dir / 'purge.log'}")
            print(f"    Channel gateway            {stack.gateway_url}   logs: {log_dir / 'gateway.log'}")
            print("      webhooks                 /webhooks/twilio/sms  /webhooks/twilio/whatsapp  /webhooks/telegram")
            print(f"    Phone simulator (browser)  {stack.gateway_url}/simulator")
            print(f"    Gateway's keyring          {stack.gateway_keys_dir}   (public key only)")
            print(f"    Staff console (browser)    {stack.console_url}   logs: {log_dir / 'console.log'}")
            print("      its own process, the only one with the private key (make console-admin USERNAME=you)")
            print(f"    Rasa REST webhook          {stack.webhook}")
            print("    This chat goes through the gateway, as an SMS from a made-up number.")
            return terminal.main(["--url", f"{stack.gateway_url}/simulator/messages", "--sender", "+50255550000"])
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        print("==> Stopped.")


if __name__ == "__main__":
    sys.exit(main())
