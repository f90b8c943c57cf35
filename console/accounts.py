"""Staff accounts from the command line (the first admin is made here):

    python -m console.accounts create --username ana --role admin [--password-stdin] [--totp]
    python -m console.accounts list
    python -m console.accounts disable --username ana

The database is HOTLINE_DATABASE_URL (migrated: `python -m reports.db upgrade`). `--totp`
enrols the second factor now and prints its otpauth URI; otherwise it is enrolled at first login.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from sqlalchemy import Engine, select

from console import auth, keys
from console.config import load_console_settings
from console.labels import label, label_map
from reports.db import make_engine, transaction
from reports.models import ROLES, StaffAccount, utcnow

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
        "active",
        "inactive",
        "totp",
        "no_totp",
    ),
)
HELP = label_map("accounts", "cli", "help", keys=("create", "password_stdin", "totp", "list", "disable"))
PASSWORDS_DIFFER = label("auth", "invalid", "passwords_differ")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(TEXT["password_prompt"])
    if first != getpass.getpass(TEXT["repeat_prompt"]):
        raise auth.AccountError(PASSWORDS_DIFFER)
    return first


def _create(engine: Engine, args: argparse.Namespace, console_key: bytes) -> int:
    password = _read_password(args.password_stdin)
    account = auth.create_account(engine, args.username, args.role, password, utcnow(), created_by="command line")
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


def _disable(engine: Engine, username: str) -> int:
    with transaction(engine) as session:
        account_id = session.scalar(select(StaffAccount.id).where(StaffAccount.username == username))
    if account_id is None:
        print(TEXT["unknown"].format(username=username), file=sys.stderr)
        return 1
    auth.set_disabled(engine, account_id, True, utcnow(), actor="command line")
    print(TEXT["disabled"].format(username=username))
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
    disable = commands.add_parser("disable", help=HELP["disable"])
    disable.add_argument("--username", required=True)
    args = parser.parse_args(argv)

    settings = load_console_settings()
    engine = make_engine(settings.database_url)
    try:
        if args.command == "create":
            env = {"HOTLINE_CONSOLE_KEY": settings.console_key} if settings.console_key else {}
            return _create(engine, args, keys.load_console_key(settings.keys_dir, env))
        if args.command == "list":
            return _list(engine)
        return _disable(engine, args.username)
    except auth.AccountError as error:
        print(error, file=sys.stderr)
        return 2
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
