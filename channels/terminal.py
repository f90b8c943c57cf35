"""Chat with the hotline in a terminal as a phone user would, through Rasa's REST webhook
or the gateway's phone simulator (development mode, as `make run` starts it).

Each reply is shown as the SMS the person would receive (accents that cost a segment
folded) with its segment count. `python -m channels.terminal [--url URL] [--sender ID]`.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys

import httpx

from hotline.sms import sms_segments, to_gsm7

DEFAULT_URL = "http://127.0.0.1:8000/simulator/messages"  # the gateway: Rasa takes messages from it alone
TOKEN_META = re.compile(r'<meta name="simulator-token" content="([A-Za-z0-9_-]+)">')
TIMEOUT_SECONDS = 30.0


def token_in(page: str) -> str:
    """The simulator's per-process token, as its page carries it."""
    match = TOKEN_META.search(page)
    if match is None:
        raise ValueError("no simulator token in the page")
    return match.group(1)


def simulator_token(client: httpx.Client, url: str) -> str:
    """Read from the simulator page, as the browser does (the gateway trusts no address)."""
    response = client.get(url.removesuffix("/messages"))
    response.raise_for_status()
    return token_in(response.text)


def send(client: httpx.Client, url: str, sender: str, text: str, token: str = "") -> list[str]:
    """Through the gateway's simulator endpoint, the path real SMS take (`token` from
    simulator_token). Rasa itself takes messages only from the gateway, with its token."""
    body = {"look": "sms", "phone": sender, "text": text, "id": secrets.token_hex(8)}
    response = client.post(url, json=body, headers={"X-Simulator-Token": token})
    response.raise_for_status()
    return [r["text"] for r in response.json()["replies"]]


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
        try:
            token = simulator_token(client, args.url)
        except (httpx.HTTPError, ValueError) as error:
            print(f"(no simulator: {error.__class__.__name__}; is HOTLINE_MODE=development?)", file=sys.stderr)
            return 1
        while True:
            try:
                line = input("\n> ")
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            try:
                for reply in send(client, args.url, args.sender, line, token):
                    show(reply)
            except httpx.HTTPError as error:
                print(f"(no answer from the assistant: {error.__class__.__name__})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
