"""`make run`: start the hotline locally and open the terminal chat; Ctrl-C stops all."""

from __future__ import annotations

import sys
import time

from channels import terminal
from scripts.stack import ROOT, running_stack


def main() -> int:
    log_dir = ROOT / "build" / "logs"
    print("==> Starting the Rasa server and the action server (about 20-40 s)...")
    started = time.monotonic()
    try:
        with running_stack(log_dir) as stack:
            print(f"==> Ready in {time.monotonic() - started:.0f} s")
            print(f"    Rasa server (HTTP API on)  {stack.rasa_url}   logs: {log_dir / 'rasa.log'}")
            print(f"    Action server              {stack.actions_url}   logs: {log_dir / 'actions.log'}")
            print(f"    Conversations (SQLite)     {stack.tracker_db}")
            print(f"    REST webhook               {stack.webhook}")
            return terminal.main(["--url", stack.webhook])
    except KeyboardInterrupt:
        return 0
    finally:
        print("==> Stopped.")


if __name__ == "__main__":
    sys.exit(main())
