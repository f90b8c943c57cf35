"""The anonymity scan: everything a database dump or a log file would show, searched
for a phone number, a report's words and its case code in clear."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from scripts.stack import Stack


def pseudonym(channel: str, address: str) -> str:
    """What the channel edge does before anything else sees an address (keyed HMAC)."""
    return hmac.new(b"test-gateway-key", f"{channel}:{address}".encode(), hashlib.sha256).hexdigest()[:32]


def stored_bytes(url: str) -> bytes:
    """A database as an attacker with a dump would see it: SQLite's files (with the
    write-ahead log), or PostgreSQL's pg_dump."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        files = [path, Path(f"{path}-wal"), Path(f"{path}-journal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    dump = subprocess.run(
        [
            "pg_dump",
            "-h",
            parsed.host or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
            str(parsed.database),
        ],
        capture_output=True,
        check=True,
    )
    return dump.stdout


def log_bytes(stack: Stack) -> bytes:
    return b"".join(p.read_bytes() for p in Path(stack.log_dir).glob("*.log"))


def leaks(haystacks: dict[str, bytes], secrets_in_clear: list[str]) -> list[tuple[str, str]]:
    """Which secret shows in which place, in UTF-8 or UTF-16 (how SQLite or a log may hold it)."""
    found = []
    for place, data in haystacks.items():
        folded = data.lower()
        for secret in secrets_in_clear:
            for encoded in (secret.lower().encode("utf-8"), secret.lower().encode("utf-16-le")):
                if encoded in folded:
                    found.append((place, secret))
                    break
    return found


def scan(stack: Stack, secrets_in_clear: list[str]) -> list[tuple[str, str]]:
    return leaks(
        {
            "reports database": stored_bytes(stack.database_url),
            "tracker store": stored_bytes(stack.tracker_url),
            "logs": log_bytes(stack),
        },
        secrets_in_clear,
    )


PHONE = "+50255507788"
REPORT_TEXT = "En la cantina El Farol de Tecun Uman tienen a cuatro muchachas encerradas"
PLACE = "Barrio La Ceiba junto al rio Suchiate"
ADDITION = "El dueno se llama Rigoberto Quintanilla y maneja una camioneta gris"


def scripted_secrets(code: str) -> list[str]:
    """What must never be readable: the number (as typed and as digits), the words of the
    report, its place, the addition, and the case code (with and without dashes)."""
    return [
        PHONE,
        PHONE.lstrip("+"),
        "55507788",
        "cantina El Farol",
        "cuatro muchachas encerradas",
        PLACE,
        "Rigoberto Quintanilla",
        code,
        code.replace("-", ""),
    ]
