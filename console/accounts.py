"""Staff accounts from the command line (the first admin is made here, and an admin who is
locked out gets back in here):

    python -m console.accounts create --username ana --role admin [--password-stdin] [--totp]
    python -m console.accounts list
    python -m console.accounts disable --username ana
    python -m console.accounts enable --username ana         (also lifts a login lock)
    python -m console.accounts reset-totp --username ana     (the next login enrols a new one)
    python -m console.accounts set-password --username ana   (asks it twice; reads one line
                                                              from stdin when it is not a tty)

The database is HOTLINE_DATABASE_URL (migrated: `python -m reports.db upgrade`). `--totp`
enrols the second factor now and prints its otpauth URI; otherwise it is enrolled at first login.
Every change is audited with the actor "cli"; reset-totp and set-password end the account's
sessions. Exit status: 0 done, 1 no such account, 2 input refused (nothing changed).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select

from console import auth, keys
from console.config import load_console_settings
from console.labels import label, label_map
from reports.db import make_engine, transaction
from reports.models import ROLES, StaffAccount, utcnow

ACTOR = "cli"
TEXT = label_map(
    "accounts",
    "cli",
    keys=(
        "description",
        "password_prompt",
        "repeat_prompt",
        "created",
        "totp_uri",
        "unknown",
        "disabled",
        "enabled",
        "totp_reset",
        "password_set",
        "active",
        "inactive",
        "totp",
        "no_totp",
    ),
)
HELP = label_map(
    "accounts",
    "cli",
    "help",
    keys=("create", "password_stdin", "totp", "list", "disable", "enable", "reset_totp", "set_password"),
)
PASSWORDS_DIFFER = label("auth", "invalid", "passwords_differ")


def _read_password(from_stdin: bool) -> str:
    """One line of stdin when asked to or when stdin is not a terminal; else asked twice."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(TEXT["password_prompt"])
    if first != getpass.getpass(TEXT["repeat_prompt"]):
        raise auth.AccountError(PASSWORDS_DIFFER)
    return first


def _create(engine: Engine, args: argparse.Namespace, console_key: bytes) -> int:
    password = _read_password(args.password_stdin)
    account = auth.create_account(engine, args.username, args.role, password, utcnow(), created_by=ACTOR)
    print(TEXT["created"].format(username=account.username, role=args.role))
    if args.totp:
        secret = auth.start_enrolment(engine, account.id, console_key)
        uri = auth.provisioning_uri(secret, account.username)
        print(TEXT["totp_uri"].format(uri=uri))
    return 0


def _list(engine: Engine) -> int:
    with transaction(engine) as session:
        for account in session.scalars(select(StaffAccount).order_by(StaffAccount.username)):
            state = TEXT["inactive"] if account.disabled else TEXT["active"]
            totp = TEXT["totp"] if account.totp_confirmed else TEXT["no_totp"]
            print(f"{account.id}\t{account.username}\t{account.role}\t{state}\t{totp}")
    return 0


def _on_account(engine: Engine, username: str, done: str, work: Callable[[int], object]) -> int:
    """Runs `work(account id)` for `username` and prints `done`; 1 when there is no such account."""
    with transaction(engine) as session:
        account_id = session.scalar(select(StaffAccount.id).where(StaffAccount.username == username))
    if account_id is None:
        print(TEXT["unknown"].format(username=username), file=sys.stderr)
        return 1
    work(account_id)
    print(TEXT[done].format(username=username))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.accounts", description=TEXT["description"])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help=HELP["create"])
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--password-stdin", action="store_true", help=HELP["password_stdin"])
    create.add_argument("--totp", action="store_true", help=HELP["totp"])
    commands.add_parser("list", help=HELP["list"])
    for command, key in (
        ("disable", "disable"),
        ("enable", "enable"),
        ("reset-totp", "reset_totp"),
        ("set-password", "set_password"),
    ):
        commands.add_parser(command, help=HELP[key]).add_argument("--username", required=True)
    args = parser.parse_args(argv)

    settings = load_console_settings()
    engine = make_engine(settings.database_url)
    try:
        if args.command == "create":
            env = {"HOTLINE_CONSOLE_KEY": settings.console_key} if settings.console_key else {}
            return _create(engine, args, keys.load_console_key(settings.keys_dir, env))
        if args.command == "list":
            return _list(engine)
        if args.command == "set-password":
            password = _read_password(False)
            auth.validate_password(password)  # before looking the account up: nothing changes

            def set_password(account_id: int) -> object:
                return auth.set_password(engine, account_id, password, utcnow(), ACTOR)

            return _on_account(engine, args.username, "password_set", set_password)
        work: dict[str, tuple[str, Callable[[int], object]]] = {
            "disable": ("disabled", lambda account_id: auth.set_disabled(engine, account_id, True, utcnow(), ACTOR)),
            "enable": ("enabled", lambda account_id: auth.set_disabled(engine, account_id, False, utcnow(), ACTOR)),
            "reset-totp": ("totp_reset", lambda account_id: auth.reset_totp(engine, account_id, utcnow(), ACTOR)),
        }
        done, action = work[args.command]
        return _on_account(engine, args.username, done, action)
    except auth.AccountError as error:
        print(error, file=sys.stderr)
        return 2
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
