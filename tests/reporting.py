"""Helpers for the report tests: a tipster filling the report form over the REST
webhook, and a look into the databases as the staff console would see them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from reports.config import Settings, load_settings
from reports.db import make_engine, transaction
from reports.keys import load_private_key
from reports.models import Report
from reports.service import open_report
from scripts.stack import Stack
from tests.conftest import Conversation

CODE_IN_REPLY = re.compile(r"TRT-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]")

# Answers to questions 2-9 (question 1 and "anything else?" come first).
DEFAULT_ANSWERS = ("guatemala", "bar La Estrella, zona 1", "ayer en la noche", "como 5", "si", "1", "no", "no")


def stack_settings(stack: Stack) -> Settings:
    return load_settings({"HOTLINE_DATABASE_URL": stack.database_url, "HOTLINE_KEYS_DIR": str(stack.keys_dir)})


@contextmanager
def reports_session(stack: Stack) -> Iterator[Session]:
    engine: Engine = make_engine(stack.database_url)
    try:
        with transaction(engine) as session:
            yield session
    finally:
        engine.dispose()


def file_by_chat(
    conversation: Conversation,
    what: str,
    answers: tuple[str, ...] = DEFAULT_ANSWERS,
    metadata: dict[str, str] | None = None,
) -> tuple[str, list[list[str]]]:
    """Goes through the whole form; returns the case code shown and every reply."""
    replies = [conversation.say("quiero denunciar", metadata), conversation.say(what, metadata)]
    replies.append(conversation.say("listo", metadata))
    for answer in answers:
        replies.append(conversation.say(answer, metadata))
    replies.append(conversation.say("si", metadata))
    found = CODE_IN_REPLY.search(" ".join(replies[-1]))
    assert found, replies[-3:]
    return found.group(0), replies


def report_ids(stack: Stack) -> list[str]:
    with reports_session(stack) as session:
        return list(session.scalars(select(Report.id)))


def opened(stack: Stack, report_id: str) -> dict[str, Any]:
    """The report as the console decrypts it (needs the private key)."""
    private_key = load_private_key(stack_settings(stack))
    with reports_session(stack) as session:
        report = open_report(session, report_id, private_key)
    return {**report, **report["body"], "additions": [a["text"] for a in report["additions"]]}
