"""Chat with the hotline in a terminal as a phone user would, through Rasa's REST webhook.

Each reply is shown as the SMS the person would receive (accents that cost a segment
folded) with its segment count. `python -m channels.terminal [--url URL] [--sender ID]`.
"""

from __future__ import annotations

import argparse
import secrets
import sys

import httpx

from hotline.sms import sms_segments, to_gsm7

DEFAULT_URL = "http://127.0.0.1:5005/webhooks/rest/webhook"
TIMEOUT_SECONDS = 30.0


def as_user_text(line: str) -> str:
    """What a phone user typed, made safe for Rasa: a leading "/" would otherwise be read
    as an intent command (for example "/restart")."""
    return line.lstrip("/ ") if line.lstrip().startswith("/") else line


def send(client: httpx.Client, url: str, sender: str, text: str) -> list[str]:
    """Through the gateway's simulator endpoint (the path real SMS take) or straight to
    Rasa's REST webhook."""
    if url.endswith("/simulator/messages"):
        body = {"look": "sms", "phone": sender, "text": text, "id": secrets.token_hex(8)}
        response = client.post(url, json=body)
        response.raise_for_status()
        return [r["text"] for r in response.json()["replies"]]
    response = client.post(url, json={"sender": sender, "message": as_user_text(text)})
    response.raise_for_status()
    return [m["text"] for m in response.json() if m.get("text")]


def show(reply: str) -> None:
    sms = to_gsm7(reply)
    print(f"\n\033[36m{sms}\033[0m  [{sms_segments(reply)} SMS]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--sender", default=f"terminal-{secrets.token_hex(4)}", help="conversation id (a pseudonym)")
    args = parser.parse_args(argv)
    print("Escribe como en un teléfono (por ejemplo: hola, menu, 3, auxilio). Ctrl-C o Ctrl-D para salir.")
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        while True:
            try:
                line = input("\n> ")
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            try:
                for reply in send(client, args.url, args.sender, line):
                    show(reply)
            except httpx.HTTPError as error:
                print(f"(no answer from the assistant: {error.__class__.__name__})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
