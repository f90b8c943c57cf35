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
from reports.db import make_engine, transaction
from reports.models import ROLES, StaffAccount, utcnow


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Contraseña: ")
    if first != getpass.getpass("Repita la contraseña: "):
        raise auth.AccountError("Las contraseñas no coinciden.")
    return first


def _create(engine: Engine, args: argparse.Namespace, console_key: bytes) -> int:
    password = _read_password(args.password_stdin)
    account = auth.create_account(engine, args.username, args.role, password, utcnow(), created_by="command line")
    print(f"cuenta creada: {account.username} ({args.role})")
    if args.totp:
        secret = auth.start_enrolment(engine, account.id, console_key)
        uri = auth.provisioning_uri(secret, account.username)
        print(f"alta del segundo factor (se confirma con el primer código al entrar): {uri}")
    return 0


def _list(engine: Engine) -> int:
    with transaction(engine) as session:
        for account in session.scalars(select(StaffAccount).order_by(StaffAccount.username)):
            state = "desactivada" if account.disabled else "activa"
            totp = "totp" if account.totp_confirmed else "sin totp"
            print(f"{account.id}\t{account.username}\t{account.role}\t{state}\t{totp}")
    return 0


def _disable(engine: Engine, username: str) -> int:
    with transaction(engine) as session:
        account_id = session.scalar(select(StaffAccount.id).where(StaffAccount.username == username))
    if account_id is None:
        print(f"no existe la cuenta {username!r}", file=sys.stderr)
        return 1
    auth.set_disabled(engine, account_id, True, utcnow(), actor="command line")
    print(f"cuenta desactivada: {username}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.accounts", description="Cuentas del personal.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="crear una cuenta")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--password-stdin", action="store_true", help="leer la contraseña de la entrada estándar")
    create.add_argument("--totp", action="store_true", help="dar de alta el segundo factor ahora y mostrar su URI")
    commands.add_parser("list", help="listar las cuentas")
    disable = commands.add_parser("disable", help="desactivar una cuenta")
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
